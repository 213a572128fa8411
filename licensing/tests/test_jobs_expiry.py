"""R5: the nightly expiry job records expired licenses (stored status, audit, notice).

Validity never waits for it (see test_validity.py); these tests cover what it records, that
it is set-based (statements grow with batches, not with licenses) and safe to re-run.
"""

import datetime as dt
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from console.models import AuditEvent, Membership
from console.tests.factories import DeviceFactory, MembershipFactory, TenantFactory, UserFactory
from console.timeutils import BUSINESS_TZ
from licensing import expiry, reminders
from licensing.models import License, SentReminder
from licensing.services import licenses_issue

pytestmark = pytest.mark.django_db

PAID = dt.datetime(2026, 3, 15, 10, 0, tzinfo=BUSINESS_TZ)
# R3: paid 2026-03-15 for one year → last service date 2027-03-15 → expires 2027-03-16 00:00.
EXPIRES = dt.datetime(2027, 3, 16, 0, 0, tzinfo=BUSINESS_TZ)
NIGHTLY_RUN = dt.datetime(2027, 3, 16, 0, 5, tzinfo=BUSINESS_TZ)  # R12: 00:05 CST


def expired_ids(events) -> int:
    """How many licenses the audit events name, each at most once."""
    ids = [pk for event in events for pk in event.data["licenses"]]
    assert len(ids) == len(set(ids))
    return len(ids)


def issue(tenant, quantity=1, paid_at=PAID, years=1):
    return licenses_issue(tenant=tenant, quantity=quantity, years=years, paid_at=paid_at)


def expire(at, capture, **kwargs):
    with time_machine.travel(at, tick=False), capture(execute=True):
        return expiry.licenses_expire_due(**kwargs)


def test_r5_marks_due_licenses_expired_and_audits_each_once(
    tenant, alice, django_capture_on_commit_callbacks
):
    due = issue(tenant, 3)
    later = issue(tenant, 2, paid_at=PAID + dt.timedelta(days=1))
    refunded = issue(tenant, 1)[0]
    License.objects.filter(pk=refunded.pk).update(status=License.Status.REFUNDED)

    run = expire(NIGHTLY_RUN, django_capture_on_commit_callbacks)

    assert run.expired == 3
    statuses = dict(License.objects.values_list("id", "status"))
    assert {statuses[lic.pk] for lic in due} == {"expired"}
    assert {statuses[lic.pk] for lic in later} == {"active"}
    assert statuses[refunded.pk] == "refunded"
    # One audit event per tenant and expiry date, listing the licenses it expired.
    (event,) = AuditEvent.objects.filter(action="license.expired")
    assert event.data["licenses"] == sorted(lic.pk for lic in due)
    assert event.data["count"] == 3
    assert event.tenant == tenant
    assert (event.target_type, event.target_id) == ("console.tenant", str(tenant.pk))
    assert event.actor_label == "job:expirelicenses"
    assert dt.datetime.fromisoformat(event.data["expires_at"]) == EXPIRES


def test_r5_nothing_due_before_the_expiry_instant(tenant, django_capture_on_commit_callbacks):
    issue(tenant, 2)
    run = expire(EXPIRES - dt.timedelta(seconds=1), django_capture_on_commit_callbacks)
    assert run.expired == 0
    assert not License.objects.filter(status="expired").exists()
    # …and exactly at the instant they are due (expires_at is the first instant without service)
    run = expire(EXPIRES, django_capture_on_commit_callbacks)
    assert run.expired == 2


def test_r5_rerun_changes_nothing_and_audits_nothing(
    tenant, alice, django_capture_on_commit_callbacks, mailoutbox
):
    issue(tenant, 4)
    assert expire(NIGHTLY_RUN, django_capture_on_commit_callbacks).expired == 4
    again = expire(NIGHTLY_RUN + dt.timedelta(minutes=1), django_capture_on_commit_callbacks)
    assert again.expired == 0
    assert again.notices == 0
    assert expired_ids(AuditEvent.objects.filter(action="license.expired")) == 4
    assert len(mailoutbox) == 1


def test_r5_batches_cover_every_due_license(tenant, django_capture_on_commit_callbacks):
    other = TenantFactory()
    issue(tenant, 7)
    issue(other, 4)
    run = expire(NIGHTLY_RUN, django_capture_on_commit_callbacks, batch_size=3)
    assert run.expired == 11
    assert License.objects.filter(status="active").count() == 0
    assert expired_ids(AuditEvent.objects.filter(action="license.expired")) == 11
    assert expired_ids(AuditEvent.objects.filter(action="license.expired", tenant=other)) == 4
    # one expiry-date notice per tenant and expiry date, however many batches saw them
    assert SentReminder.objects.filter(milestone=0).count() == 2


def _statements(at, capture):
    with CaptureQueriesContext(connection) as ctx:
        expire(at, capture)
    return len(ctx.captured_queries)


def test_r5_statements_do_not_grow_with_the_number_of_licenses(
    django_capture_on_commit_callbacks,
):
    """Set-based: 5 due licenses or 60, one batch costs the same statements."""
    few, many = TenantFactory(), TenantFactory()
    issue(few, 5)
    issue(many, 60, paid_at=PAID + dt.timedelta(days=1))
    small = _statements(NIGHTLY_RUN, django_capture_on_commit_callbacks)
    large = _statements(NIGHTLY_RUN + dt.timedelta(days=1), django_capture_on_commit_callbacks)
    assert License.objects.filter(status="expired").count() == 65
    assert large == small


def test_r5_r11_hands_the_expiry_date_notice_over_once(
    tenant, alice, django_capture_on_commit_callbacks, mailoutbox
):
    """The expiry job sends the expiry-date notice at 00:05; the reminder job at 09:00 finds
    it claimed and sends nothing more (one email, whichever job sends it)."""
    device = DeviceFactory(tenant=tenant)
    License.objects.filter(pk__in=[lic.pk for lic in issue(tenant, 2)]).update(device=device)
    run = expire(NIGHTLY_RUN, django_capture_on_commit_callbacks)
    assert run.notices == 1
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == ["alice@example.com"]

    with (
        time_machine.travel(NIGHTLY_RUN.replace(hour=9, minute=0), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        run = reminders.reminders_send_due()
    assert run.claimed == {}
    assert len(mailoutbox) == 1
    reminder = SentReminder.objects.get()
    assert (reminder.milestone, reminder.expiry_date) == (0, dt.date(2027, 3, 16))
    assert reminder.status == SentReminder.Status.SENT


def test_r5_expiry_notice_not_sent_for_long_past_expiries(
    tenant, alice, django_capture_on_commit_callbacks, mailoutbox
):
    """Licenses that expired months before the job first ran are recorded, not announced."""
    issue(tenant, 1)
    later = NIGHTLY_RUN + dt.timedelta(days=reminders.LATE_NOTICE_DAYS + 1)
    run = expire(later, django_capture_on_commit_callbacks)
    assert run.expired == 1
    assert run.notices == 0
    assert mailoutbox == []


def test_r5_command_runs_the_same_job(tenant, django_capture_on_commit_callbacks):
    issue(tenant, 2)
    MembershipFactory(user=UserFactory(), tenant=tenant, role=Membership.Role.ADMIN)
    out = StringIO()
    with (
        time_machine.travel(NIGHTLY_RUN, tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        call_command("expirelicenses", stdout=out)
    assert "2" in out.getvalue()
    assert License.objects.filter(status="expired").count() == 2
    labels = set(
        AuditEvent.objects.filter(action="license.expired").values_list("actor_label", flat=True)
    )
    assert labels == {"command:expirelicenses"}


def test_r5_command_rejects_a_bad_batch_size():
    with pytest.raises(CommandError):
        call_command("expirelicenses", "--batch-size", "0")
