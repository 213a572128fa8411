"""Extra notification recipients per kind of notice (renewal reminders; orders and
payments), on top of the tenant's owners and admins, who always hear of everything."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from console.emails import Recipient, tenant_recipients
from console.errors import InvalidInput
from console.models import NotificationRecipient, Tenant, User
from console.services import Actor, audit_record, tenant_lock

# A tenant names a handful of extra addresses, not a mailing list.
MAX_RECIPIENTS_PER_KIND = 20


def notification_recipients(tenant: Tenant, *, kind: str) -> list[Recipient]:
    """The extra addresses the tenant names for `kind`, each with its language."""
    return list(
        NotificationRecipient.objects.filter(tenant=tenant, kind=kind)
        .order_by("email")
        .values_list("email", "language")
    )


def tenant_recipients_for(tenant: Tenant, *, kind: str) -> list[Recipient]:
    """Owners and admins (console.emails.tenant_recipients), then the extra recipients of
    `kind`; an address in both is one email (send_templated_email keeps the first)."""
    return [*tenant_recipients(tenant), *notification_recipients(tenant, kind=kind)]


@transaction.atomic
def notification_recipient_add(
    *, tenant: Tenant, kind: str, email: str, language: str, actor: Actor = None
) -> NotificationRecipient:
    if kind not in NotificationRecipient.Kind.values:
        raise InvalidInput(_("Unknown kind of notice."), errors={"kind": [_("Choose a kind.")]})
    if language not in dict(settings.LANGUAGES):
        raise InvalidInput(_("Unknown language."), errors={"language": [_("Choose a language.")]})
    email = User.objects.normalize_email((email or "").strip()).lower()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise InvalidInput(
            _("Enter a valid email address."), errors={"email": [_("Enter a valid email address.")]}
        ) from exc
    tenant = tenant_lock(tenant.pk)
    existing = NotificationRecipient.objects.filter(tenant=tenant, kind=kind)
    if existing.filter(email__iexact=email).exists():
        raise InvalidInput(
            _("%(email)s already gets these notices.") % {"email": email},
            errors={"email": [_("Already a recipient of these notices.")]},
        )
    if existing.count() >= MAX_RECIPIENTS_PER_KIND:
        raise InvalidInput(
            _("At most %(max)d extra recipients per kind of notice.")
            % {"max": MAX_RECIPIENTS_PER_KIND},
            errors={"email": [_("Remove one first.")]},
        )
    try:
        with transaction.atomic():
            recipient = NotificationRecipient.objects.create(
                tenant=tenant, kind=kind, email=email, language=language
            )
    except IntegrityError as exc:
        raise InvalidInput(
            _("%(email)s already gets these notices.") % {"email": email},
            errors={"email": [_("Already a recipient of these notices.")]},
        ) from exc
    audit_record(
        tenant=tenant,
        action="notification_recipient.added",
        target=recipient,
        actor=actor,
        data={"kind": kind, "email": email, "language": language},
    )
    return recipient


@transaction.atomic
def notification_recipient_remove(
    *, tenant: Tenant, recipient: NotificationRecipient, actor: Actor = None
) -> None:
    recipient = NotificationRecipient.objects.select_for_update().get(
        pk=recipient.pk, tenant=tenant
    )
    audit_record(
        tenant=tenant,
        action="notification_recipient.removed",
        target=recipient,
        actor=actor,
        data={"kind": recipient.kind, "email": recipient.email},
    )
    recipient.delete()
