"""Writes owned by the console app: tenants, memberships, API keys, audit events."""

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from console.errors import Conflict, Forbidden, InvalidInput, invalid_from_django
from console.models import ApiKey, AuditEvent, Membership, Tenant, User


def tenant_lock(tenant_id: int) -> Tenant:
    """The tenant's row, locked for the caller's transaction: every writer that changes
    several rows of one tenant (binding, renewal, team, imports, status, endpoints,
    recipients) takes it first, so they queue up instead of racing (PostgreSQL; SQLite
    serialises writers anyway). FOR NO KEY UPDATE: a plain FOR UPDATE also blocks the
    key-share lock that any insert referencing the tenant takes (an audit event), and a
    writer holding a device while inserting one deadlocked against a binder holding the
    tenant (found by the fuzz). Raises Tenant.DoesNotExist."""
    return Tenant.objects.select_for_update(no_key=True).get(pk=tenant_id)


def tenant_require_active(tenant: Tenant) -> None:
    """R9: only an active tenant can buy or call the API. The one suspension check: the API's
    authentication, billing and every other writer call this."""
    if not tenant.is_active:
        raise Forbidden(_("This tenant is suspended."), code="TENANT_SUSPENDED")


def _target_of(target: Any) -> tuple[str, str]:
    if target is None:
        return "", ""
    return target._meta.label_lower, str(target.pk)


# Who acted: a logged-in user, or a label for machines and jobs ("api-key:fc_ab12cd34",
# "command:grantlicenses", "system").
Actor = User | str | None


def _actor_fields(actor: Actor) -> tuple[User | None, str]:
    if actor is None:
        return None, "system"
    if isinstance(actor, str):
        return None, actor[:100]
    if not actor.is_authenticated:
        return None, "anonymous"
    return actor, str(actor)[:100]


def audit_record(
    *,
    tenant: Tenant | None,
    action: str,
    target: Any = None,
    actor: Actor = None,
    data: dict | None = None,
) -> AuditEvent:
    target_type, target_id = _target_of(target)
    user, label = _actor_fields(actor)
    return AuditEvent.objects.create(
        tenant=tenant,
        actor=user,
        actor_label=label,
        action=action,
        target_type=target_type,
        target_id=target_id,
        data=data or {},
        created_at=timezone.now(),
    )


def audit_record_many(
    *,
    tenant: Tenant | None,
    action: str,
    targets: Iterable[Any],
    actor: Actor = None,
    data: dict | None = None,
    batch_size: int = 2000,
) -> int:
    """One audit row per target, written in bulk (jobs and commands touching many rows)."""
    now = timezone.now()
    actor_obj, label = _actor_fields(actor)
    rows = []
    for target in targets:
        target_type, target_id = _target_of(target)
        rows.append(
            AuditEvent(
                tenant=tenant,
                actor=actor_obj,
                actor_label=label,
                action=action,
                target_type=target_type,
                target_id=target_id,
                data=data or {},
                created_at=now,
            )
        )
    AuditEvent.objects.bulk_create(rows, batch_size=batch_size)
    return len(rows)


def audit_record_ids(
    *,
    tenant: Tenant,
    action: str,
    ids: list[int],
    actor: Actor = None,
    data: dict | None = None,
    chunk_size: int = 1000,
) -> int:
    """One audit event (target: the tenant) per chunk of `chunk_size` row ids, listed in its
    data: for a change to thousands of rows at once, where a row per id would cost as much
    as the change itself (a 100,000-license grant). Returns the number of events."""
    now = timezone.now()
    actor_obj, label = _actor_fields(actor)
    target_type, target_id = _target_of(tenant)
    events = [
        AuditEvent(
            tenant=tenant,
            actor=actor_obj,
            actor_label=label,
            action=action,
            target_type=target_type,
            target_id=target_id,
            data={**(data or {}), "count": len(chunk), "ids": chunk},
            created_at=now,
        )
        for chunk in (ids[i : i + chunk_size] for i in range(0, len(ids), chunk_size))
    ]
    AuditEvent.objects.bulk_create(events)
    return len(events)


def user_get_or_create(*, email: str, password: str | None = None, full_name: str = "") -> User:
    email = User.objects.normalize_email(email).lower()
    user = User.objects.filter(email=email).first()
    if user is None:
        user = User(email=email, full_name=full_name)
        try:
            user.full_clean(exclude=["password"])
        except ValidationError as exc:
            raise invalid_from_django(exc) from exc
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
    return user


@transaction.atomic
def tenant_create(
    *,
    name: str,
    slug: str,
    owner: User,
    contract_unit_price: Decimal | None = None,
    language: str = Tenant.Language.ZH_HANS,
    actor: Actor = None,
) -> Tenant:
    tenant = Tenant(name=name, slug=slug, language=language)
    if contract_unit_price is not None:
        tenant.contract_unit_price = contract_unit_price
    try:
        tenant.full_clean()
    except ValidationError as exc:
        raise invalid_from_django(exc) from exc
    try:
        with transaction.atomic():
            tenant.save()
    except IntegrityError as exc:
        raise Conflict(_("A tenant with this slug already exists."), code="SLUG_TAKEN") from exc
    Membership.objects.create(user=owner, tenant=tenant, role=Membership.Role.OWNER)
    audit_record(
        tenant=tenant,
        action="tenant.created",
        target=tenant,
        actor=actor,
        data={"owner": owner.email, "contract_unit_price": str(tenant.contract_unit_price)},
    )
    return tenant


@transaction.atomic
def tenant_set_status(
    *, tenant: Tenant, status: str, actor: Actor = None, reason: str = ""
) -> Tenant:
    if status not in Tenant.Status.values:
        raise InvalidInput(_("Unknown tenant status."), errors={"status": [_("Unknown status.")]})
    tenant = tenant_lock(tenant.pk)
    if tenant.status != status:
        old = tenant.status
        tenant.status = status
        tenant.save(update_fields=["status"])
        audit_record(
            tenant=tenant,
            action=f"tenant.{status}",
            target=tenant,
            actor=actor,
            data={"from": old, "to": status, "reason": reason},
        )
    return tenant


def api_key_create(
    *, tenant: Tenant, name: str, role: str, actor: Actor = None
) -> tuple[ApiKey, str]:
    """Create a key; returns it with the raw key, which is never stored and shown once.
    A suspended tenant gets none (R9): a key made then would work on reactivation."""
    tenant_require_active(tenant)
    if role not in ApiKey.Role.values:
        raise InvalidInput(_("Unknown API key role."), errors={"role": [_("Unknown role.")]})
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise InvalidInput(
            _("A key needs a name of 1–100 characters."),
            errors={"name": [_("Enter 1–100 characters.")]},
        )
    raw, prefix, digest = ApiKey.generate()
    with transaction.atomic():
        key = ApiKey.objects.create(
            tenant=tenant,
            name=name,
            role=role,
            prefix=prefix,
            digest=digest,
            created_by=_actor_fields(actor)[0],
        )
        audit_record(
            tenant=tenant,
            action="api_key.created",
            target=key,
            actor=actor,
            data={"name": name, "role": role, "prefix": prefix},
        )
    return key, raw


@transaction.atomic
def api_key_revoke(*, tenant: Tenant, key: ApiKey, actor: Actor = None) -> ApiKey:
    key = ApiKey.objects.select_for_update().get(pk=key.pk, tenant=tenant)
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
        audit_record(tenant=tenant, action="api_key.revoked", target=key, actor=actor)
    return key
