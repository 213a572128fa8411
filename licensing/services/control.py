"""R8: the license check before control, and heartbeats that end control when the device
has lost its last valid license. The lease mechanics themselves are devices.services'."""

import datetime as dt
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from console.errors import Forbidden, Gone, InvalidInput, NotFound
from console.models import Tenant
from console.services import Actor, audit_record
from console.webhooks import webhook_event_record
from devices import services as device_services
from devices.models import ControlSession, FieldDevice, RemoteCockpit
from licensing import rules
from licensing.models import License
from licensing.services.entitlement import licenses_mark_served


def _require_valid_license(tenant: Tenant, device: FieldDevice, at: dt.datetime) -> None:
    if not License.objects.filter(tenant=tenant, device=device).valid_at(at).exists():
        raise Forbidden(
            _("This device has no valid license, so it cannot be controlled."),
            code="NO_VALID_LICENSE",
        )


@transaction.atomic
def control_acquire(
    *,
    tenant: Tenant,
    device: FieldDevice,
    cockpit_id: int,
    force: bool = False,
    token: str | None = None,
    trusted: bool = False,
    at: dt.datetime | None = None,
    actor: Actor = None,
) -> tuple[ControlSession, bool]:
    """R8: take control of a device that has at least one valid license. R10: the device's
    valid licenses have served from this moment (later bindings are marked when bound)."""
    at = at or timezone.now()
    cockpit = RemoteCockpit.objects.filter(tenant=tenant, pk=cockpit_id).first()
    if cockpit is None:
        raise InvalidInput(
            _("Unknown cockpit."), errors={"cockpit": [_("No such cockpit in this tenant.")]}
        )
    # Lock the device before reading its licenses, so a concurrent unbind cannot slip between
    # the check and the grant.
    if (
        not FieldDevice.objects.select_for_update(no_key=True)
        .filter(pk=device.pk, tenant=tenant)
        .exists()
    ):
        raise NotFound(_("Not found."))
    _require_valid_license(tenant, device, at)
    session, created = device_services.control_session_acquire(
        tenant=tenant,
        device=device,
        cockpit=cockpit,
        force=force,
        token=token,
        trusted=trusted,
        at=at,
        actor=actor,
    )
    licenses_mark_served(device_id=device.pk, at=at)
    return session, created


@dataclass(frozen=True)
class Lease:
    """A control session as a heartbeat leaves it (the API's ControlSessionOutput fields)."""

    id: int
    device_id: int
    cockpit_id: int
    lease_expires_at: dt.datetime


_HEARTBEAT_SQL: dict[str, str] = {}


def _heartbeat_sql() -> str:
    """One conditional UPDATE … RETURNING (R8): a live session of the tenant's (not ended,
    lease not lapsed) is extended while its device has a valid license, and ended in the
    same statement when it has none. No row: not a live session of the tenant's, or the
    caller is neither trusted (an admin key) nor showing the session's token.

    The license condition is rules.valid_q in SQL (not refunded, started, unexpired);
    test_control_heartbeat checks the two agree. Only the models' own table and column
    names are interpolated; every value is a parameter."""
    sql = _HEARTBEAT_SQL.get(connection.vendor)
    if sql is None:
        q = connection.ops.quote_name
        session, device, lic = (q(m._meta.db_table) for m in (ControlSession, FieldDevice, License))
        has_license = f"""EXISTS (
            SELECT 1 FROM {lic} l
            WHERE l.device_id = {session}.device_id AND l.status IN (%(active)s, %(expired)s)
              AND l.starts_at <= %(at)s AND l.expires_at > %(at)s
        )"""  # noqa: S608 - model metadata only
        sql = f"""
            UPDATE {session} SET
                lease_expires_at = CASE WHEN {has_license}
                    THEN %(lease_until)s ELSE lease_expires_at END,
                ended_at = CASE WHEN {has_license} THEN NULL ELSE %(at)s END,
                end_reason = CASE WHEN {has_license} THEN '' ELSE %(no_license)s END
            WHERE id = %(id)s AND ended_at IS NULL AND lease_expires_at > %(at)s
              AND (%(trusted)s OR token_digest = %(token)s)
              AND device_id IN (SELECT d.id FROM {device} d WHERE d.tenant_id = %(tenant)s)
            RETURNING id, device_id, cockpit_id, ended_at
        """  # noqa: S608 - model metadata only; every value is a parameter
        _HEARTBEAT_SQL[connection.vendor] = sql
    return sql


def control_heartbeat(
    *,
    tenant: Tenant,
    session_id: int,
    token: str | None = None,
    trusted: bool = False,
    at: dt.datetime | None = None,
) -> Lease:
    """R8: extend a live lease by the lease length from `at`. A lapsed or ended session is
    gone (SESSION_ENDED); a device that lost its last valid license ends the session
    (NO_VALID_LICENSE). Only the session's cockpit beats it: the caller shows the session's
    `token`, unless `trusted` (an admin key) — else CONTROL_TOKEN_REQUIRED.

    Cockpits beat every few seconds while they drive, so a beat is one statement, committed
    on its own (autocommit, durable: a lease the cockpit was told of survives a crash, or a
    second cockpit could take a machine that is still driven). R10 needs no write here: the
    session's start and any later binding mark the licenses served."""
    at = at or timezone.now()
    lease_until = at + dt.timedelta(seconds=device_services.lease_seconds())
    adapt = connection.ops.adapt_datetimefield_value
    params = {
        "id": session_id,
        "tenant": tenant.pk,
        "at": adapt(at),
        "lease_until": adapt(lease_until),
        "active": rules.ACTIVE,
        "expired": rules.EXPIRED,
        "no_license": ControlSession.EndReason.NO_VALID_LICENSE.value,
        "trusted": bool(trusted),
        "token": device_services.control_token_digest(token),
    }
    with connection.cursor() as cursor:
        cursor.execute(_heartbeat_sql(), params)
        row = cursor.fetchone()
    if row is None:
        _refuse_beat(tenant=tenant, session_id=session_id, token=token, trusted=trusted, at=at)
    session_id, device_id, cockpit_id, ended_at = row
    if ended_at is not None:
        # The statement ended it; the audit event follows (the end is what protects R8).
        audit_record(
            tenant=tenant,
            action=f"control.{ControlSession.EndReason.NO_VALID_LICENSE}",
            target=ControlSession.objects.get(pk=session_id),
            data={"device": device_id, "cockpit": cockpit_id},
        )
        # R15: told with the end (the caller's transaction).
        webhook_event_record(
            tenant=tenant,
            type="control.ended",
            data={
                "session": session_id,
                "device": device_id,
                "cockpit": cockpit_id,
                "ended_at": ended_at,
                "reason": ControlSession.EndReason.NO_VALID_LICENSE.value,
            },
        )
        raise Forbidden(
            _("This device has lost its last valid license; the control session has ended."),
            code="NO_VALID_LICENSE",
        )
    return Lease(session_id, device_id, cockpit_id, lease_until)


def _require_cockpit(session: ControlSession, *, token: str | None, trusted: bool) -> None:
    if not trusted and not device_services.control_token_matches(session, token):
        raise Forbidden(
            _("Show this control session's token in the X-Control-Token header."),
            code="CONTROL_TOKEN_REQUIRED",
        )


def _refuse_beat(
    *, tenant: Tenant, session_id: int, token: str | None, trusted: bool, at: dt.datetime
) -> None:
    """Why a heartbeat extended nothing: 404 when the tenant has no such session, 403 when
    the caller is not its cockpit, else 410 — a lapsed session still open is ended
    (audited) now rather than by the per-minute clean-up."""
    with transaction.atomic():
        session = device_services.control_session_lock(tenant=tenant, session_id=session_id)
        _require_cockpit(session, token=token, trusted=trusted)
        device_services.control_session_end(tenant=tenant, session=session, at=at)
    raise Gone(_("This control session has ended."), code="SESSION_ENDED")


def control_release(
    *,
    tenant: Tenant,
    session_id: int,
    token: str | None = None,
    trusted: bool = False,
    at: dt.datetime | None = None,
    actor: Actor = None,
) -> ControlSession:
    """End a session: its cockpit (showing the session's token) or a trusted caller."""
    with transaction.atomic():
        session = device_services.control_session_lock(tenant=tenant, session_id=session_id)
        _require_cockpit(session, token=token, trusted=trusted)
        return device_services.control_session_end(
            tenant=tenant, session=session, at=at, actor=actor
        )
