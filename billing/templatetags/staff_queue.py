"""`{% staff_work_queue as queue %}`: what waits for the staff user viewing the admin index,
per group (the reviewers' applications, billing's orders and refunds) — only the parts
their permissions let them act on."""

from django import template
from django.utils import timezone

from billing.staff_selectors import OVERDUE_AFTER, billing_queue, review_queue

register = template.Library()


@register.simple_tag(takes_context=True)
def staff_work_queue(context) -> dict:
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_active or not user.is_staff:
        return {}
    now = timezone.now()
    queue: dict = {"now": now, "overdue_after_days": OVERDUE_AFTER.days}
    if user.has_perm("console.review_betaapplication"):
        queue["reviews"] = review_queue()
    if user.has_perm("billing.view_order") or user.has_perm("billing.view_refundrequest"):
        billing = billing_queue(now=now)
        for order in billing.oldest_orders:
            order.is_overdue = order.created_at < now - OVERDUE_AFTER
        queue["billing"] = billing
        queue["can_view_orders"] = user.has_perm("billing.view_order")
        queue["can_view_refunds"] = user.has_perm("billing.view_refundrequest")
    return queue
