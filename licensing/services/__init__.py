"""Writes owned by licensing, one module per concern: issuing (R3), binding (R7), renewal
(R4, and its refund), refunds (R10), entitlement (R6, R10) and the license check before
control (R8). Billing calls these; licensing never calls billing. The rules themselves
live in licensing.rules."""

from licensing.services.binding import (
    device_delete_unbinding,
    license_bind,
    license_unbind,
    licenses_bind_count,
)
from licensing.services.control import Lease, control_acquire, control_heartbeat, control_release
from licensing.services.entitlement import (
    DEGRADED,
    NO_VALID_LICENSE,
    VALID,
    Entitlement,
    entitlement_decide,
    licenses_mark_served,
)
from licensing.services.issuing import licenses_issue
from licensing.services.refunds import licenses_refund
from licensing.services.renewal import (
    Extension,
    licenses_check_renewable,
    licenses_renew,
    licenses_revert_renewal,
)

__all__ = [
    "DEGRADED",
    "NO_VALID_LICENSE",
    "VALID",
    "Entitlement",
    "Extension",
    "Lease",
    "control_acquire",
    "control_heartbeat",
    "control_release",
    "device_delete_unbinding",
    "entitlement_decide",
    "license_bind",
    "license_unbind",
    "licenses_bind_count",
    "licenses_check_renewable",
    "licenses_issue",
    "licenses_mark_served",
    "licenses_refund",
    "licenses_renew",
    "licenses_revert_renewal",
]
