"""Template context for the console's shell (templates/base.html)."""

from django.urls import NoReverseMatch, reverse
from django.utils.functional import SimpleLazyObject
from django.utils.translation import gettext_lazy as _

# The member navigation. Pages that other apps add appear once their URL name exists, so
# the shell needs no edit when the devices or licenses pages arrive.
NAV_ITEMS = [
    ("dashboard", _("Dashboard")),
    ("devices", _("Devices")),
    ("licenses", _("Licenses")),
    ("orders", _("Orders")),
    ("api-keys", _("API keys")),
    ("webhooks", _("Webhooks")),
    ("cockpits", _("Cockpits")),
    ("control-sessions", _("Remote control")),
    ("team", _("Team")),
    ("audit-log", _("Audit log")),
    ("notification-settings", _("Notifications")),
]


def _nav(request) -> list[dict]:
    items = []
    for name, label in NAV_ITEMS:
        try:
            url = reverse(name)
        except NoReverseMatch:
            continue
        current = request.path == url if url == "/" else request.path.startswith(url)
        items.append({"name": name, "url": url, "label": label, "current": current})
    return items


def console(request) -> dict:
    """`console_membership` (the user's current tenant membership, or None) and
    `console_nav`, both computed only when a template uses them."""
    from console.views import current_membership

    def membership():
        cached = getattr(request, "membership", None)
        return cached if cached is not None else current_membership(request)

    def suspension_reason():
        # Read only by the shell's banner, and only for a suspended tenant's member.
        tenant = getattr(request, "tenant", None)
        if tenant is None:
            found = membership()
            tenant = found.tenant if found is not None else None
        if tenant is None or tenant.is_active:
            return ""
        return tenant_suspension_reason(tenant)

    return {
        "console_membership": SimpleLazyObject(membership),
        "console_nav": SimpleLazyObject(lambda: _nav(request)),
        "console_suspension_reason": SimpleLazyObject(suspension_reason),
    }


def tenant_suspension_reason(tenant) -> str:
    """The staff's reason from the tenant's last `tenant.suspended` audit event ("" if none)."""
    from console.models import AuditEvent

    event = (
        AuditEvent.objects.filter(tenant=tenant, action="tenant.suspended")
        .order_by("-created_at", "-id")
        .values_list("data", flat=True)
        .first()
    )
    return str((event or {}).get("reason") or "")
