"""R6: may this device push these streams now? The gateways' hot path: after the API key's
look-up, one SQL statement (selectors.device_entitlement_inputs) and the R1/R6 decision of
licensing.rules; a write only the first time a license serves (R10)."""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.utils import timezone
from django.utils.translation import gettext as _

from console.errors import InvalidInput, NotFound
from console.models import Tenant
from licensing import rules
from licensing.models import License
from licensing.selectors import device_entitlement_inputs

VALID = rules.VALID
DEGRADED = rules.DEGRADED
NO_VALID_LICENSE = rules.NO_VALID_LICENSE


@dataclass
class Entitlement:
    code: str
    licenses_valid: int
    licenses_required: int
    granted_cameras: list[int] = field(default_factory=list)
    denied_cameras: list[int] = field(default_factory=list)
    denied_reasons: dict[int, str] = field(default_factory=dict)
    valid_until: dt.datetime | None = None
    serial: str = ""  # the device's, for signed tokens (R14); not part of the call's answer


def licenses_mark_served(*, device_id: int, at: dt.datetime) -> int:
    """R10: every valid license bound to the device when it served gets first_served_at."""
    return (
        License.objects.filter(device_id=device_id, first_served_at__isnull=True)
        .valid_at(at)
        .update(first_served_at=at)
    )


def entitlement_decide(
    *,
    tenant: Tenant,
    device_id: int,
    camera_ids: Sequence[int] | None = None,
    at: dt.datetime | None = None,
) -> Entitlement:
    """R6 for the tenant's device `device_id`. `camera_ids` None: what the device pushes at
    once (rules.pushed_cameras), so a licensed device always gets VALID for it."""
    at = at or timezone.now()
    device = device_entitlement_inputs(tenant, device_id, at=at)
    if device is None:
        raise NotFound(_("Not found."))
    k = device.max_concurrent_streams
    if camera_ids is None:
        requested = rules.pushed_cameras(device.cameras, k)
    else:
        by_id = {c.pk: c for c in device.cameras}
        wanted = list(dict.fromkeys(camera_ids))
        unknown = [i for i in wanted if i not in by_id]
        if unknown:
            raise InvalidInput(
                _("Cameras %(ids)s are not this device's cameras.")
                % {"ids": ", ".join(str(i) for i in unknown)},
                errors={"cameras": [_("Unknown camera ids: %(ids)s.") % {"ids": unknown}]},
            )
        requested = [by_id[i] for i in wanted]
    required = rules.licenses_for_pixels(
        rules.aggregate_pixels([c.pixels for c in requested if c.enabled], k)
    )
    valid = device.lic_valid
    choice = rules.choose_cameras(requested, licenses_valid=valid, max_concurrent_streams=k)
    if choice.kept and device.lic_unserved:
        licenses_mark_served(device_id=device.pk, at=at)
    return Entitlement(
        code=rules.service_code(licenses_valid=valid, denied=choice.denied),
        licenses_valid=valid,
        licenses_required=required,
        granted_cameras=[c.pk for c in choice.kept],
        denied_cameras=[c.pk for c in choice.denied],
        denied_reasons=choice.reasons,
        valid_until=device.lic_until if valid else None,
        serial=device.serial,
    )
