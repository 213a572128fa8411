"""Staff decisions on tenants (R9): suspend and reactivate, with a reason the owners and
admins are told (R13).

Each decision locks the tenant row and checks its status under the lock: a double submit
or two staff acting at once make one change, one audit event and one email; the second
one gets a Conflict saying the tenant already is in that status.
"""

from django.db import transaction
from django.utils.translation import gettext as _

from console.emails import send_templated_email, tenant_recipients
from console.errors import Conflict, InvalidInput
from console.models import Tenant
from console.services import Actor, tenant_lock, tenant_set_status

REASON_MAX_LENGTH = 2000


def _clean_reason(reason: str | None, *, required: bool) -> str:
    reason = (reason or "").strip()
    if len(reason) > REASON_MAX_LENGTH:
        raise InvalidInput(
            _("The reason is too long."),
            errors={"reason": [_("Use at most %(n)d characters.") % {"n": REASON_MAX_LENGTH}]},
        )
    if required and not reason:
        raise InvalidInput(
            _("Give a reason: the customer will read it."),
            errors={"reason": [_("This field is required.")]},
        )
    return reason


def _tenant_change_status(*, tenant: Tenant, status: str, actor: Actor, reason: str) -> Tenant:
    with transaction.atomic():
        # The lock makes the check below the truth: whoever comes second waits, then finds
        # the status already changed and changes, audits and emails nothing.
        locked = tenant_lock(tenant.pk)
        if locked.status == status:
            raise Conflict(
                _("%(tenant)s is already %(status)s; nothing was changed.")
                % {"tenant": locked.name, "status": locked.get_status_display()},
                code="TENANT_ALREADY_IN_STATUS",
            )
        locked = tenant_set_status(tenant=locked, status=status, actor=actor, reason=reason)
        send_templated_email(
            recipients=tenant_recipients(locked),
            template_prefix="emails/tenant_status",
            context={"tenant": locked, "status": status, "reason": reason},
        )
    tenant.status = locked.status
    return locked


def tenant_suspend(*, tenant: Tenant, actor: Actor, reason: str) -> Tenant:
    """R9: a suspended tenant's API calls get 403 TENANT_SUSPENDED and it cannot buy. The
    owners and admins are told why, so the reason is required."""
    reason = _clean_reason(reason, required=True)
    return _tenant_change_status(
        tenant=tenant, status=Tenant.Status.SUSPENDED, actor=actor, reason=reason
    )


def tenant_reactivate(*, tenant: Tenant, actor: Actor, reason: str = "") -> Tenant:
    reason = _clean_reason(reason, required=False)
    return _tenant_change_status(
        tenant=tenant, status=Tenant.Status.ACTIVE, actor=actor, reason=reason
    )
