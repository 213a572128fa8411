"""R3: issuing paid licenses (billing's payment confirmation calls this)."""

import datetime as dt

from django.db import transaction
from django.utils.translation import gettext as _

from console.errors import InvalidInput
from console.models import Tenant
from console.services import Actor, audit_record_ids
from console.timeutils import business_date
from licensing import rules
from licensing.models import License


def licenses_issue(
    *,
    tenant: Tenant,
    quantity: int,
    years: int,
    paid_at: dt.datetime,
    actor: Actor = None,
    audit_data: dict | None = None,
    batch_size: int = 5000,
) -> list[License]:
    """R3: `quantity` licenses valid from the payment instant through payment date + years.

    Bulk-created (a grant of 100,000 takes seconds). Runs in the caller's transaction when
    there is one (billing issues licenses inside the payment's transaction)."""
    if not rules.whole_number(quantity) or quantity < 1:
        raise InvalidInput(
            _("Quantity must be a positive whole number."),
            errors={"quantity": [_("Enter a positive whole number.")]},
        )
    rules.check_years(years)
    expires_at = rules.expiry_after_years(from_date=business_date(paid_at), years=years)
    with transaction.atomic():
        licenses = License.objects.bulk_create(
            [
                License(
                    tenant=tenant,
                    starts_at=paid_at,
                    expires_at=expires_at,
                    status=License.Status.ACTIVE,
                    created_at=paid_at,
                )
                for _i in range(quantity)
            ],
            batch_size=batch_size,
        )
        # One audit event per thousand licenses, listing their ids: a row per license cost
        # as much as issuing it (half of a 100,000-license grant's time).
        audit_record_ids(
            tenant=tenant,
            action="license.issued",
            ids=[lic.pk for lic in licenses],
            actor=actor,
            data={"years": years, "expires_at": expires_at.isoformat(), **(audit_data or {})},
        )
    return licenses
