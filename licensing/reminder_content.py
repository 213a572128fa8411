"""What a renewal reminder or an expiry-date notice says (R11, R13): the licenses of one
tenant expiring on one date and, per device they are bound to, its service before and after
that expiry instant (R6), rendered in each recipient's language.

Reads only, but for reminder_emails_store, which hands the emails to the outbox (R13):
which reminders are due, who owns each and when it is sent is licensing.reminders' work.
The rules come from licensing.rules (R5 validity, R6 service).
"""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db.models import Count, Prefetch
from django.utils.translation import gettext_lazy as _

from console.emails import render_templated_email, send_templated_email
from console.models import OutboundEmail, Tenant
from console.timeutils import start_of_business_day
from devices.models import Camera, FieldDevice
from licensing import rules
from licensing.models import License, SentReminder
from licensing.selectors import device_requirement

# An email lists at most this many licenses and devices, then "and N more".
MAX_LISTED = 100

# R6's service code in the words of the email.
SERVICE_LEVELS = {
    rules.VALID: _("full service"),
    rules.DEGRADED: _("degraded service"),
    rules.NO_VALID_LICENSE: _("no service"),
}


@dataclass
class DeviceChange:
    """One device's service (R6: rules.device_service) before the expiry instant and after."""

    device: FieldDevice
    licenses_required: int
    licenses_before: int
    licenses_after: int
    service_before: str  # rules.VALID | rules.DEGRADED | rules.NO_VALID_LICENSE
    service_after: str
    cameras_pushed: int  # what the device pushes: enabled, by priority, at most k
    cameras_before: int  # of those, the cameras granted
    cameras_after: int
    expiring: int  # of its licenses, those of this expiry date

    @property
    def changes(self) -> bool:
        return (
            self.service_before != self.service_after or self.cameras_before != self.cameras_after
        )

    @property
    def loses_all(self) -> bool:
        return self.service_after == rules.NO_VALID_LICENSE

    @property
    def service_before_display(self) -> str:
        return str(SERVICE_LEVELS[self.service_before])

    @property
    def service_after_display(self) -> str:
        return str(SERVICE_LEVELS[self.service_after])


@dataclass(frozen=True)
class ListedLicense:
    label: str
    device: str  # the bound device's serial, or "" when unbound


@dataclass
class ReminderContent:
    licenses: list[ListedLicense]  # at most MAX_LISTED
    license_count: int
    unbound_count: int
    devices: list[DeviceChange]  # at most MAX_LISTED
    device_count: int

    @property
    def more_licenses(self) -> int:
        return self.license_count - len(self.licenses)

    @property
    def more_devices(self) -> int:
        return self.device_count - len(self.devices)


def service_instants(*, expiry_date: dt.date, at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The two instants an email compares (R13: "the service now and the service from the
    expiry date on"). Before the expiry date: now, and the expiry instant. On or after it
    (the expiry-date notice, possibly sent late): the last instant of service, and now."""
    expiry_instant = start_of_business_day(expiry_date)
    last_served = expiry_instant - dt.timedelta(microseconds=1)
    return min(at, last_served), max(at, expiry_instant)


def reminder_content(
    *, tenant: Tenant, expiry_date: dt.date, at: dt.datetime | None = None
) -> ReminderContent:
    """The licenses of `tenant` expiring on `expiry_date` (not refunded; renewed ones have
    moved to a later date) and, for each device they are bound to, its service (R6) at the
    two instants of `service_instants`, with the device's current binding and cameras.
    Three statements, whatever the number of licenses and devices."""
    at = at or start_of_business_day(expiry_date)
    before, after = service_instants(expiry_date=expiry_date, at=at)
    rows = list(
        License.objects.filter(
            tenant=tenant,
            status__in=rules.NOT_REFUNDED,
            expires_at__gte=start_of_business_day(expiry_date),
            expires_at__lt=start_of_business_day(expiry_date + dt.timedelta(days=1)),
        )
        .order_by("id")
        .values_list("id", "device_id", "device__serial")
    )
    expiring_per_device: dict[int, int] = defaultdict(int)
    for _pk, device_id, _serial in rows:
        if device_id is not None:
            expiring_per_device[device_id] += 1
    devices = list(
        FieldDevice.objects.filter(tenant=tenant, pk__in=list(expiring_per_device))
        .annotate(
            lic_before=Count("licenses", filter=rules.valid_q(before, "licenses__")),
            lic_after=Count("licenses", filter=rules.valid_q(after, "licenses__")),
        )
        .prefetch_related(Prefetch("cameras", queryset=Camera.objects.order_by("id")))
        .order_by("serial")[:MAX_LISTED]
    )
    changes = []
    for device in devices:
        cameras = list(device.cameras.all())
        k = device.max_concurrent_streams
        service_before, chosen_before = rules.device_service(
            cameras, licenses_valid=device.lic_before, max_concurrent_streams=k
        )
        service_after, chosen_after = rules.device_service(
            cameras, licenses_valid=device.lic_after, max_concurrent_streams=k
        )
        changes.append(
            DeviceChange(
                device=device,
                licenses_required=device_requirement(device).licenses,
                licenses_before=device.lic_before,
                licenses_after=device.lic_after,
                service_before=service_before,
                service_after=service_after,
                cameras_pushed=len(rules.pushed_cameras(cameras, k)),
                cameras_before=len(chosen_before.kept),
                cameras_after=len(chosen_after.kept),
                expiring=expiring_per_device[device.pk],
            )
        )
    return ReminderContent(
        licenses=[ListedLicense(f"L-{pk}", serial or "") for pk, _d, serial in rows[:MAX_LISTED]],
        license_count=len(rows),
        unbound_count=sum(1 for _pk, device_id, _serial in rows if device_id is None),
        devices=changes,
        device_count=len(expiring_per_device),
    )


def reminder_email(
    *, reminder: SentReminder, content: ReminderContent, days_left: int
) -> tuple[str, dict]:
    """The template prefix and context of a reminder's email: the renewal reminder (30, 7,
    1 days before) or the expiry-date notice (which devices lost or reduced service).
    `days_left` is the real number of days to the expiry date on the day it is written,
    which differs from the milestone when the reminder goes out late (R11).

    The email is rendered once, when it is stored, and the outbox (R13) may deliver it
    hours or days later (mail server down, retries): so it never says "today", "tonight"
    or "in N days" on its own. It states the dates, and a day count only together with the
    date it counts from (`written_on`), which stays true whenever it arrives."""
    expiry_date = reminder.expiry_date
    prefix = (
        "emails/expiry_notice"
        if reminder.milestone == SentReminder.Milestone.EXPIRY_DATE
        else "emails/renewal_reminder"
    )
    return prefix, {
        "tenant": reminder.tenant,
        "milestone": reminder.milestone,
        "days_left": days_left,
        "written_on": expiry_date - dt.timedelta(days=days_left),
        "expiry_date": expiry_date,
        "last_service_date": rules.last_service_date(start_of_business_day(expiry_date)),
        "content": content,
        "licenses_url": f"{settings.SITE_URL}/licenses/",
    }


def reminder_emails_store(
    *,
    reminder: SentReminder,
    content: ReminderContent,
    recipients: list[tuple[str, str]],
    days_left: int,
) -> list[OutboundEmail]:
    """R11, R13: one email per (address, language), each rendered in its recipient's
    language (once per language), stored in the outbox in the current transaction. The
    reminder names the notice, so it is stored once per recipient."""
    prefix, context = reminder_email(reminder=reminder, content=content, days_left=days_left)
    return send_templated_email(
        recipients=recipients,
        template_prefix=prefix,
        context=context,
        dedup_key=f"sent-reminder:{reminder.pk}",
    )


def reminder_message(
    *,
    reminder: SentReminder,
    content: ReminderContent,
    recipients: list[str],
    days_left: int,
    language: str | None = None,
) -> EmailMultiAlternatives:
    """The email as a message, neither stored nor sent (previews, tests), in `language`
    (default: the tenant's)."""
    prefix, context = reminder_email(reminder=reminder, content=content, days_left=days_left)
    return render_templated_email(
        to=recipients,
        template_prefix=prefix,
        language=language or reminder.tenant.language,
        context=context,
    )
