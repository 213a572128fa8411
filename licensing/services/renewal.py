"""R4: renewal moves a license's last service date on; R10 takes a refunded renewal back."""

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from console.errors import Conflict, InvalidInput
from console.models import Tenant
from console.services import Actor, audit_record_many, tenant_lock
from licensing import rules
from licensing.models import License


@dataclass(frozen=True)
class Extension:
    license_id: int
    previous_expires_at: dt.datetime
    new_expires_at: dt.datetime


def licenses_check_renewable(licenses: Sequence[License], *, at: dt.datetime) -> None:
    """R4: a license is renewed only while it is valid; a refunded or expired one is refused
    (the customer buys new licenses, R6). The one check, when a renewal is ordered and again
    when it is paid."""
    refunded = [lic.pk for lic in licenses if lic.status == License.Status.REFUNDED]
    if refunded:
        raise Conflict(
            _("Licenses %(ids)s were refunded and cannot be renewed.")
            % {"ids": ", ".join(f"L-{i}" for i in refunded)},
            code="LICENSE_REFUNDED",
            extra={"licenses": refunded},
        )
    lapsed = [lic.pk for lic in licenses if not lic.is_valid_at(at)]
    if lapsed:
        raise Conflict(
            _("Licenses %(ids)s have expired and cannot be renewed; buy new licenses instead.")
            % {"ids": ", ".join(f"L-{i}" for i in lapsed)},
            code="LICENSE_EXPIRED",
            extra={"licenses": lapsed},
        )


def licenses_renew(
    *,
    tenant: Tenant,
    license_ids: Sequence[int],
    years: int,
    at: dt.datetime | None = None,
    actor: Actor = None,
) -> list[Extension]:
    """R4: move each license's last service date `years` on, from its current last service
    date (not from today), keeping its binding. All or nothing: refused when any of them is
    no longer valid at `at` (the customer buys new licenses instead). Caller's transaction."""
    rules.check_years(years)
    at = at or timezone.now()
    ids = sorted(set(license_ids))
    if not ids:
        raise InvalidInput(
            _("Name at least one license to renew."),
            errors={"licenses": [_("Name at least one license.")]},
        )
    with transaction.atomic():
        # Tenant first, as binding does: renewals and binders of one tenant queue up instead
        # of locking the same licenses in different orders (expiry vs id) and deadlocking.
        tenant_lock(tenant.pk)
        licenses = list(
            License.objects.select_for_update().filter(tenant=tenant, pk__in=ids).order_by("id")
        )
        if len(licenses) != len(ids):
            raise InvalidInput(
                _("Unknown license."), errors={"licenses": [_("No such license in this tenant.")]}
            )
        licenses_check_renewable(licenses, at=at)
        extensions = []
        # Licenses from one order share an expiry, so grouping by (from, to) turns one
        # audit insert per license into one bulk insert per distinct expiry.
        by_change: dict[tuple[dt.datetime, dt.datetime], list[License]] = defaultdict(list)
        for lic in licenses:
            new = rules.expiry_after_years(from_date=lic.last_service_date, years=years)
            extensions.append(Extension(lic.pk, lic.expires_at, new))
            by_change[(lic.expires_at, new)].append(lic)
            lic.expires_at = new
        License.objects.bulk_update(licenses, ["expires_at"], batch_size=2000)
        for (previous, new), group in by_change.items():
            audit_record_many(
                tenant=tenant,
                action="license.renewed",
                targets=group,
                actor=actor,
                data={"years": years, "from": previous.isoformat(), "to": new.isoformat()},
            )
    return extensions


def licenses_revert_renewal(
    *,
    tenant: Tenant,
    extensions: Sequence[Extension],
    actor: Actor = None,
    audit_data: dict | None = None,
) -> list[License]:
    """R10: take a renewal's extension back: each license's expires_at returns to its value
    before that renewal. Refused (all or nothing) when a license no longer ends where that
    renewal left it — a later renewal moved it, and reverting would undo that one too.
    Caller's transaction."""
    by_id = {ext.license_id: ext for ext in extensions}
    with transaction.atomic():
        licenses = list(
            License.objects.select_for_update()
            .filter(tenant=tenant, pk__in=sorted(by_id))
            .order_by("id")
        )
        if len(licenses) != len(by_id):
            raise InvalidInput(
                _("Unknown license."), errors={"licenses": [_("No such license in this tenant.")]}
            )
        moved = [lic.pk for lic in licenses if lic.expires_at != by_id[lic.pk].new_expires_at]
        if moved:
            raise Conflict(
                _("Licenses %(ids)s have been renewed again since; refund the later renewal first.")
                % {"ids": ", ".join(f"L-{i}" for i in moved)},
                code="LICENSE_RENEWED_AGAIN",
                extra={"licenses": moved},
            )
        groups: dict[tuple[dt.datetime, dt.datetime], list[License]] = {}
        for lic in licenses:
            ext = by_id[lic.pk]
            lic.expires_at = ext.previous_expires_at
            groups.setdefault((ext.new_expires_at, ext.previous_expires_at), []).append(lic)
        for (was, now_), group in groups.items():
            # One UPDATE per distinct expiry: bulk_update's CASE per row grows quadratically
            # on PostgreSQL for thousands of licenses.
            License.objects.filter(pk__in=[lic.pk for lic in group]).update(expires_at=now_)
            audit_record_many(
                tenant=tenant,
                action="license.renewal_reverted",
                targets=group,
                actor=actor,
                data={"from": was.isoformat(), "to": now_.isoformat(), **(audit_data or {})},
            )
    return licenses
