from django.apps import AppConfig
from django.db.models.signals import post_save
from django.utils.translation import gettext_lazy as _


def _refund_requested(sender, instance, created, raw=False, **kwargs):
    if created and not raw:
        from billing.staff_services import refund_request_notify_staff

        refund_request_notify_staff(instance)


class BillingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "billing"
    verbose_name = _("Billing")

    def ready(self):
        # R13: Billing hears of every new refund request. post_save runs inside the request's
        # transaction (billing.services.refunds.order_refund_request), so the staff notice is
        # stored with the request and goes out only if it commits.
        post_save.connect(
            _refund_requested,
            sender="billing.RefundRequest",
            dispatch_uid="billing_refund_requested_staff_notice",
        )
