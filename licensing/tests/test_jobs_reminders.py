"""R11: renewal reminders at 30, 7 and 1 days before the expiry date and on it, counted in
Asia/Shanghai calendar days; one reminder per tenant, milestone and expiry date: one email to
each of its owners and admins, in each one's language, through the outbox (R13); re-runs
never send twice; failed sends are retried; missed milestones are sent late unless a later
one has come."""

import datetime as dt
from io import StringIO
from smtplib import SMTPRecipientsRefused

import pytest
import time_machine
from django.core.mail.backends import locmem
from django.core.management import call_command
from django.db import OperationalError

from console import outbox
from console.celery import app as celery_app
from console.models import Membership, OutboundEmail
from console.tests.factories import (
    CameraFactory,
    DeviceFactory,
    MembershipFactory,
    TenantFactory,
    UserFactory,
)
from console.timeutils import BUSINESS_TZ
from licensing import expiry, reminders
from licensing.models import License, SentReminder
from licensing.services import licenses_issue, licenses_renew

pytestmark = pytest.mark.django_db


def cst(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BUSINESS_TZ)


PAID = cst(2026, 3, 15, 10, 0)
# R3: last service date 2027-03-15; expiry date (first day without service) 2027-03-16.
EXPIRY_DATE = dt.date(2027, 3, 16)
MILESTONE_DAYS = {
    30: dt.date(2027, 2, 14),
    7: dt.date(2027, 3, 9),
    1: dt.date(2027, 3, 15),
    0: dt.date(2027, 3, 16),
}


@pytest.fixture
def team(tenant, alice, bob):
    """alice owner, dave admin (both written to); bob viewer and an inactive owner (not)."""
    dave = UserFactory(email="dave@example.com")
    MembershipFactory(user=dave, tenant=tenant, role=Membership.Role.ADMIN)
    gone = UserFactory(email="gone@example.com", is_active=False)
    MembershipFactory(user=gone, tenant=tenant, role=Membership.Role.OWNER)
    tenant.language = "en"
    tenant.save()
    return tenant


def issue(tenant, quantity=1, paid_at=PAID, years=1):
    with time_machine.travel(paid_at, tick=False):
        return licenses_issue(tenant=tenant, quantity=quantity, years=years, paid_at=paid_at)


def run_reminders(at, capture):
    with time_machine.travel(at, tick=False), capture(execute=True):
        return reminders.reminders_send_due()


def run_expiry(at, capture):
    with time_machine.travel(at, tick=False), capture(execute=True):
        return expiry.licenses_expire_due()


def to_alice(mailoutbox):
    """The emails to alice: every reminder of `team` is one email to alice and one to dave."""
    return [m for m in mailoutbox if m.to == ["alice@example.com"]]


def deliver_due(at):
    """The outbox's sweep (R13) at `at`."""
    with time_machine.travel(at, tick=False):
        return outbox.outbound_emails_deliver()


def milestones_sent():
    return list(
        SentReminder.objects.filter(status=SentReminder.Status.SENT)
        .order_by("-milestone")
        .values_list("milestone", flat=True)
    )


@pytest.mark.parametrize("milestone", [30, 7, 1, 0])
def test_r11_milestone_for_days_left(milestone):
    assert reminders.milestone_due(milestone) == milestone


def test_r11_latest_milestone_that_has_come():
    assert reminders.milestone_due(31) is None
    assert [reminders.milestone_due(d) for d in (29, 8, 6, 2, -1, -40)] == [30, 30, 7, 7, 0, 0]


def test_r11_every_milestone_once_over_fifty_days_of_both_jobs(
    team, django_capture_on_commit_callbacks, mailoutbox
):
    """Both jobs run every day at their R12 times from 2027-02-01 to 2027-03-22: exactly four
    emails, each on its milestone's date, to the active owners and admins only."""
    issue(team, 2)
    sent_on: dict[int, dt.date] = {}
    day = dt.date(2027, 2, 1)
    while day <= dt.date(2027, 3, 22):
        for at in (cst(day.year, day.month, day.day, 0, 5), cst(day.year, day.month, day.day, 9)):
            before = len(mailoutbox)
            if at.hour == 0:
                run_expiry(at, django_capture_on_commit_callbacks)
            else:
                run_reminders(at, django_capture_on_commit_callbacks)
            for reminder in SentReminder.objects.filter(status="sent"):
                sent_on.setdefault(reminder.milestone, day)
            assert len(mailoutbox) - before in (0, 2)  # one email to each: alice, dave
        day += dt.timedelta(days=1)
    assert sent_on == MILESTONE_DAYS
    assert len(mailoutbox) == 8
    assert (
        sorted(m.to[0] for m in mailoutbox) == ["alice@example.com"] * 4 + ["dave@example.com"] * 4
    )
    subjects = [m.subject for m in to_alice(mailoutbox)]
    dated = "Acme Mining: 2 licenses expire on 2027-03-16 (last day of service 2027-03-15)"
    assert subjects == [dated, dated, dated, "Acme Mining: 2 licenses expired on 2027-03-16"]
    bodies = [m.body for m in to_alice(mailoutbox)]
    assert "30 days after 2027-02-14, when this reminder was written" in bodies[0]
    assert "7 days after 2027-03-09, when this reminder was written" in bodies[1]
    assert "2027-03-15, the day this reminder was written, is the last day of service" in bodies[2]
    # the expiry-date notice went out with the 00:05 expiry job, not at 09:00
    notice = SentReminder.objects.get(milestone=0)
    assert notice.sent_at == cst(2027, 3, 16, 0, 5)


def test_r11_days_are_counted_in_shanghai_not_utc(team, django_capture_on_commit_callbacks):
    """2027-02-13 23:59 CST is 15:59 UTC: still 31 days to go. Two minutes later it is
    2027-02-14 in Shanghai (still 02-13 in UTC): the 30-day reminder is due."""
    issue(team, 1)
    assert run_reminders(cst(2027, 2, 13, 23, 59), django_capture_on_commit_callbacks).claimed == {}
    run = run_reminders(cst(2027, 2, 14, 0, 1), django_capture_on_commit_callbacks)
    assert run.claimed == {30: 1}


def test_r11_rerun_the_same_day_sends_nothing_more(
    team, django_capture_on_commit_callbacks, mailoutbox
):
    issue(team, 1)
    at = cst(2027, 3, 9, 9)
    assert run_reminders(at, django_capture_on_commit_callbacks).claimed == {7: 1}
    for minutes in (1, 45, 600):
        run = run_reminders(at + dt.timedelta(minutes=minutes), django_capture_on_commit_callbacks)
        assert run.claimed == {}
    assert len(mailoutbox) == 2


def test_r11_missed_milestones_the_latest_is_sent_late_earlier_ones_never(
    team, django_capture_on_commit_callbacks, mailoutbox
):
    """The job was down from 2027-02-10 to 2027-03-11: on 03-12 only the 7-day reminder goes
    out (late), saying the real number of days left (4); the 30-day one is superseded for
    ever."""
    issue(team, 1)
    run_reminders(cst(2027, 2, 10, 9), django_capture_on_commit_callbacks)
    assert mailoutbox == []
    run = run_reminders(cst(2027, 3, 12, 9), django_capture_on_commit_callbacks)
    assert run.claimed == {7: 1}
    assert mailoutbox[0].subject == (
        "Acme Mining: 1 license expires on 2027-03-16 (last day of service 2027-03-15)"
    )
    late = "expires on 2027-03-16 at 00:00 Asia/Shanghai time, 4 days after 2027-03-12, when"
    assert late in mailoutbox[0].body
    assert late in mailoutbox[0].alternatives[0][0]
    for day in range(12, 15):
        run_reminders(cst(2027, 3, day, 9), django_capture_on_commit_callbacks)
    assert milestones_sent() == [7]
    assert not SentReminder.objects.filter(milestone=30).exists()


def test_r11_down_past_the_expiry_date_only_the_expiry_notice_is_sent(
    team, django_capture_on_commit_callbacks, mailoutbox
):
    issue(team, 1)
    run = run_reminders(cst(2027, 3, 19, 9), django_capture_on_commit_callbacks)
    assert run.claimed == {0: 1}
    assert milestones_sent() == [0]
    assert mailoutbox[0].subject == "Acme Mining: 1 license expired on 2027-03-16"
    run_reminders(cst(2027, 3, 20, 9), django_capture_on_commit_callbacks)
    assert len(mailoutbox) == 2


def test_r11_one_email_per_tenant_milestone_and_expiry_date(
    team, charlie, other_tenant, django_capture_on_commit_callbacks, mailoutbox
):
    other_tenant.language = "en"
    other_tenant.save()
    issue(team, 2)
    issue(team, 1, paid_at=PAID + dt.timedelta(days=3))  # expiry date 2027-03-19
    issue(other_tenant, 1)
    run = run_reminders(cst(2027, 3, 9, 9), django_capture_on_commit_callbacks)
    # acme: 7 days to 03-16, 10 days to 03-19 (still the 30-day one); other: 7 days
    assert run.claimed == {7: 2, 30: 1}
    by_to = sorted((m.to, m.subject) for m in mailoutbox)
    # the 30-day reminder, saying the days really left
    in_10 = "Acme Mining: 1 license expires on 2027-03-19 (last day of service 2027-03-18)"
    in_7 = "Acme Mining: 2 licenses expire on 2027-03-16 (last day of service 2027-03-15)"
    other = "Other Ports: 1 license expires on 2027-03-16 (last day of service 2027-03-15)"
    assert by_to == [
        (["alice@example.com"], in_10),
        (["alice@example.com"], in_7),
        (["charlie@example.com"], other),
        (["dave@example.com"], in_10),
        (["dave@example.com"], in_7),
    ]
    bodies = [m.body for m in mailoutbox]
    assert sum("10 days after 2027-03-09, when this reminder was written" in b for b in bodies) == 2


def test_r11_r4_renewed_licenses_drop_out_of_the_reminders(
    team, django_capture_on_commit_callbacks, mailoutbox
):
    keep, renew = issue(team, 2)
    run_reminders(cst(2027, 2, 14, 9), django_capture_on_commit_callbacks)
    assert "2 licenses" in to_alice(mailoutbox)[0].subject
    licenses_renew(tenant=team, license_ids=[renew.pk], years=1, at=cst(2027, 3, 1))
    run_reminders(cst(2027, 3, 9, 9), django_capture_on_commit_callbacks)
    second = to_alice(mailoutbox)[1]
    assert "1 license " in second.subject
    assert f"L-{keep.pk}" in second.body
    assert f"L-{renew.pk}" not in second.body
    # renewing the last one leaves nothing to remind about on 03-15
    licenses_renew(tenant=team, license_ids=[keep.pk], years=1, at=cst(2027, 3, 10))
    run_reminders(cst(2027, 3, 15, 9), django_capture_on_commit_callbacks)
    assert len(to_alice(mailoutbox)) == 2


def test_r11_refunded_licenses_are_not_reminded(
    team, django_capture_on_commit_callbacks, mailoutbox
):
    [lic] = issue(team, 1)
    License.objects.filter(pk=lic.pk).update(status=License.Status.REFUNDED)
    run = run_reminders(cst(2027, 3, 9, 9), django_capture_on_commit_callbacks)
    assert run.claimed == {}
    assert mailoutbox == []


def test_r11_claimed_but_renewed_before_sending_is_skipped_not_sent(
    team, django_capture_on_commit_callbacks, mailoutbox
):
    [lic] = issue(team, 1)
    with time_machine.travel(cst(2027, 3, 9, 9), tick=False):
        [reminder_id] = reminders.reminders_claim(wanted=[(team.pk, EXPIRY_DATE, 7)])
        licenses_renew(tenant=team, license_ids=[lic.pk], years=1)
        assert reminders.reminder_send(reminder_id=reminder_id) == "skipped"
    assert SentReminder.objects.get().status == SentReminder.Status.SKIPPED
    assert mailoutbox == []


def test_r11_no_owner_or_admin_is_recorded_not_crashed(
    django_capture_on_commit_callbacks, mailoutbox
):
    lonely = TenantFactory()
    issue(lonely, 1)
    run_reminders(cst(2027, 3, 9, 9), django_capture_on_commit_callbacks)
    reminder = SentReminder.objects.get()
    assert reminder.status == SentReminder.Status.SKIPPED
    assert "owner" in reminder.note
    assert mailoutbox == []


# --- failures and retries -------------------------------------------------------------------


@pytest.fixture
def smtp_failures(monkeypatch):
    """The mail server refuses the next `n` messages (421: try again later)."""
    state = {"left": 0, "calls": 0}
    real_send = locmem.EmailBackend.send_messages

    def send_messages(self, messages):
        state["calls"] += 1
        if state["left"] > 0:
            state["left"] -= 1
            raise SMTPRecipientsRefused({m.to[0]: (421, b"try again later") for m in messages})
        return real_send(self, messages)

    monkeypatch.setattr(locmem.EmailBackend, "send_messages", send_messages)
    # Eager tasks that propagate errors raise Celery's Retry instead of retrying; without
    # propagation an eager task retries at once, through the task's real autoretry settings.
    propagates = celery_app.conf.task_eager_propagates
    celery_app.conf.task_eager_propagates = False
    yield state
    celery_app.conf.task_eager_propagates = propagates


def test_r11_r13_a_failed_send_is_retried_by_the_outbox(
    team, smtp_failures, django_capture_on_commit_callbacks, mailoutbox
):
    """The mail server refuses the reminder's emails: the reminder is stored (sent, once)
    and its emails wait in the outbox, retried with backoff, same Message-ID."""
    issue(team, 1)
    smtp_failures["left"] = 2
    at = cst(2027, 3, 9, 9)
    run_reminders(at, django_capture_on_commit_callbacks)
    reminder = SentReminder.objects.get()
    assert (reminder.status, reminder.attempts) == (SentReminder.Status.SENT, 1)
    assert sorted(reminder.recipients) == ["alice@example.com", "dave@example.com"]
    assert mailoutbox == []
    emails = OutboundEmail.objects.order_by("to")
    assert [(e.to, e.status, e.attempts) for e in emails] == [
        ("alice@example.com", "pending", 1),
        ("dave@example.com", "pending", 1),
    ]
    assert "421" in emails[0].last_error
    # not before the first retry is due (1 minute)…
    assert deliver_due(at + dt.timedelta(seconds=30)).sent == 0
    # …then both go out, with the Message-ID they were stored with
    assert deliver_due(at + dt.timedelta(minutes=1)).sent == 2
    assert sorted(m.extra_headers["Message-ID"] for m in mailoutbox) == sorted(
        e.message_id for e in emails
    )
    # the reminder job does not send them again
    run_reminders(at + dt.timedelta(hours=1), django_capture_on_commit_callbacks)
    assert len(mailoutbox) == 2


def test_r11_a_reminder_that_could_not_be_stored_stays_pending_and_the_next_run_sends_it(
    team, monkeypatch, django_capture_on_commit_callbacks, mailoutbox
):
    """Building the emails fails (a database error, say): nothing is half stored, the
    reminder stays pending with its lease released, and a later run sends it."""
    issue(team, 1)
    real_store = reminders.reminder_emails_store

    def broken(**kwargs):
        real_store(**kwargs)  # stored, then rolled back with the failure
        raise OperationalError("database went away")

    monkeypatch.setattr(reminders, "reminder_emails_store", broken)
    propagates = celery_app.conf.task_eager_propagates
    celery_app.conf.task_eager_propagates = False
    try:
        run_reminders(cst(2027, 3, 16, 9), django_capture_on_commit_callbacks)
    finally:
        celery_app.conf.task_eager_propagates = propagates
    reminder = SentReminder.objects.get()
    assert reminder.status == SentReminder.Status.PENDING
    assert reminder.attempts == 18  # in its chunk, then on its own: first try and 16 retries
    assert "database went away" in reminder.note
    assert reminder.lease_until is None
    assert not OutboundEmail.objects.exists()
    assert mailoutbox == []

    monkeypatch.setattr(reminders, "reminder_emails_store", real_store)
    # a re-run within REQUEUE_AFTER leaves it to the retries already under way…
    run = run_reminders(cst(2027, 3, 16, 9, 10), django_capture_on_commit_callbacks)
    assert run.requeued == 0
    # …the next run after it sends it (late is fine for the expiry-date notice)
    run = run_reminders(cst(2027, 3, 17, 9), django_capture_on_commit_callbacks)
    assert run.requeued == 1
    assert len(mailoutbox) == 2
    assert SentReminder.objects.get().status == SentReminder.Status.SENT


def test_r11_r13_a_mail_server_down_for_days_fails_the_email_and_later_ones_go_out(
    team, smtp_failures, django_capture_on_commit_callbacks, mailoutbox
):
    """The 30-day reminder's emails fail for three days: the outbox gives up on them
    (failed, for staff to see and retry) and the 7-day reminder goes out on its day."""
    issue(team, 1)
    smtp_failures["left"] = 1000
    at = cst(2027, 2, 14, 9)
    run_reminders(at, django_capture_on_commit_callbacks)
    for hours in range(1, 24 * 4):
        deliver_due(at + dt.timedelta(hours=hours))
    assert set(OutboundEmail.objects.values_list("status", "attempts")) == {
        ("failed", outbox.MAX_ATTEMPTS)
    }
    smtp_failures["left"] = 0
    run_reminders(cst(2027, 3, 9, 9), django_capture_on_commit_callbacks)
    assert len(mailoutbox) == 2
    assert all("7 days after 2027-03-09" in m.body for m in mailoutbox)
    statuses = dict(SentReminder.objects.values_list("milestone", "status"))
    assert statuses == {30: "sent", 7: "sent"}


@pytest.mark.parametrize(
    ("written", "delivered", "says"),
    [
        (
            cst(2027, 3, 9, 9),
            cst(2027, 3, 10, 15),
            "2 licenses of Acme Mining expire on 2027-03-16 at 00:00 Asia/Shanghai time, "
            "7 days after 2027-03-09, when this reminder was written.",
        ),
        (
            cst(2027, 3, 15, 9),
            cst(2027, 3, 16, 10),  # a day late: after the expiry instant even
            "2027-03-15, the day this reminder was written, is the last day of service of "
            "2 licenses of Acme Mining: they expire that night at 00:00 Asia/Shanghai time, "
            "at the start of 2027-03-16.",
        ),
    ],
    ids=["7-days-sent-a-day-late", "last-day-sent-a-day-late"],
)
def test_r11_r13_a_reminder_the_outbox_delivers_late_says_nothing_untrue(
    team,
    alice,
    smtp_failures,
    django_capture_on_commit_callbacks,
    mailoutbox,
    written,
    delivered,
    says,
):
    """The outbox delivers what was rendered when the reminder was stored. With the mail
    server down until the next day, the email still says only what stays true: the dates,
    and the day count with the date it counts from, never "in N days", "today" or
    "tonight" on their own. In each recipient's language."""
    alice.language = "zh-hans"
    alice.save(update_fields=["language"])
    issue(team, 2)
    smtp_failures["left"] = 1000
    run_reminders(written, django_capture_on_commit_callbacks)
    assert mailoutbox == []
    assert OutboundEmail.objects.filter(status="pending").count() == 2
    smtp_failures["left"] = 0
    deliver_due(delivered)
    by_to = {m.to[0]: m for m in mailoutbox}
    en, zh = by_to["dave@example.com"], by_to["alice@example.com"]
    assert en.subject == (
        "Acme Mining: 2 licenses expire on 2027-03-16 (last day of service 2027-03-15)"
    )
    for text in (en.body, en.alternatives[0][0]):
        assert says in text
        for untrue in ("Today", "today", "tonight", "in 7 days", "in 1 days", "tomorrow"):
            assert untrue not in text
    # Chinese: the same dates, the date written, no English left.
    written_on = (written.date()).isoformat()
    for text in (zh.subject, zh.body):
        assert "2027-03-16" in text and "Acme Mining" in text
    assert written_on in zh.body and "撰写" in zh.body
    assert " of Acme Mining" not in zh.body and "this reminder" not in zh.body
    assert "今天" not in zh.body and "今晚" not in zh.body


def test_r11_a_worker_that_died_mid_send_is_resent_after_its_lease(
    team, django_capture_on_commit_callbacks, mailoutbox
):
    issue(team, 1)
    at = cst(2027, 3, 9, 9)
    with time_machine.travel(at, tick=False):
        [reminder_id] = reminders.reminders_claim(wanted=[(team.pk, EXPIRY_DATE, 7)])
    # a sender took the lease, then its process was killed before sending
    SentReminder.objects.filter(pk=reminder_id).update(lease_until=at + reminders.SEND_LEASE)
    with time_machine.travel(at + reminders.SEND_LEASE / 2, tick=False):
        assert reminders.reminder_send(reminder_id=reminder_id) == "not_claimed"
    run = run_reminders(at + dt.timedelta(hours=1), django_capture_on_commit_callbacks)
    assert run.requeued == 1
    assert len(mailoutbox) == 2


def test_r11_the_same_reminder_sent_twice_goes_out_once(
    team, mailoutbox, django_capture_on_commit_callbacks
):
    issue(team, 1)
    with (
        time_machine.travel(cst(2027, 3, 9, 9), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        [reminder_id] = reminders.reminders_claim(wanted=[(team.pk, EXPIRY_DATE, 7)])
        assert reminders.reminder_send(reminder_id=reminder_id) == "sent"
        assert reminders.reminder_send(reminder_id=reminder_id) == "not_claimed"
    assert len(mailoutbox) == 2
    assert OutboundEmail.objects.count() == 2


def test_r11_claims_are_unique_and_a_claim_returns_only_its_own_rows(team):
    with time_machine.travel(cst(2027, 3, 9, 9), tick=False):
        first = reminders.reminders_claim(wanted=[(team.pk, EXPIRY_DATE, 7)])
        second = reminders.reminders_claim(
            wanted=[(team.pk, EXPIRY_DATE, 7), (team.pk, EXPIRY_DATE, 1)]
        )
    assert list(first.values()) == [7]
    assert list(second.values()) == [1]
    assert SentReminder.objects.get(pk=next(iter(second))).milestone == 1


# --- content ---------------------------------------------------------------------------------


def test_r11_r6_email_lists_licenses_and_what_each_device_loses(
    team, django_capture_on_commit_callbacks, mailoutbox
):
    """truck: 2 cameras of 720p need 2 licenses, both expire → full → none.
    crane: same cameras, 1 of its 2 licenses expires, 1 runs a year longer → full → degraded
    (1 of 2 cameras). The unbound license is listed without a device."""
    truck = DeviceFactory(tenant=team, serial="truck_1", name="Truck 1")
    crane = DeviceFactory(tenant=team, serial="crane_1", name="Crane 1")
    for device in (truck, crane):
        CameraFactory(device=device, priority=5)
        CameraFactory(device=device)
    expiring = issue(team, 4)
    lasting = issue(team, 1, years=2)
    License.objects.filter(pk__in=[expiring[0].pk, expiring[1].pk]).update(device=truck)
    License.objects.filter(pk__in=[expiring[2].pk, lasting[0].pk]).update(device=crane)

    run_reminders(cst(2027, 3, 9, 9), django_capture_on_commit_callbacks)
    [message] = to_alice(mailoutbox)
    text = message.body
    html = message.alternatives[0][0]
    assert "4 licenses of Acme Mining expire on 2027-03-16 at 00:00 Asia/Shanghai time" in text
    assert "7 days after 2027-03-09, when this reminder was written" in text
    assert "Devices concerned (service on 2027-03-09 → from 2027-03-16):" in text
    assert "Their last day of service is 2027-03-15" in text
    assert f"L-{expiring[0].pk} · device truck_1" in text
    assert f"L-{expiring[3].pk} · not bound to a device" in text
    assert f"L-{lasting[0].pk}" not in text
    assert "Truck 1 (truck_1): full service → no service" in text
    assert "cameras streaming: 2 of 2 → 0 of 2; valid licenses: 2 → 0 (2 needed)" in text
    assert "Crane 1 (crane_1): full service → degraded service" in text
    assert "cameras streaming: 2 of 2 → 1 of 2; valid licenses: 2 → 1 (2 needed)" in text
    assert "Truck 1" in html and "no service" in html
    assert message.alternatives[0][1] == "text/html"


def test_r11_links_are_absolute_from_site_url(
    team, settings, django_capture_on_commit_callbacks, mailoutbox
):
    settings.SITE_URL = "https://console.example.com"
    issue(team, 1)
    run_reminders(cst(2027, 3, 9, 9), django_capture_on_commit_callbacks)
    [message] = to_alice(mailoutbox)
    assert "https://console.example.com/licenses/" in message.body
    assert 'href="https://console.example.com/licenses/"' in message.alternatives[0][0]


def test_r11_expiry_notice_says_which_devices_lost_service(
    team, django_capture_on_commit_callbacks, mailoutbox
):
    truck = DeviceFactory(tenant=team, serial="truck_1", name="Truck 1")
    CameraFactory(device=truck)
    [lic] = issue(team, 1)
    License.objects.filter(pk=lic.pk).update(device=truck)
    run_expiry(cst(2027, 3, 16, 0, 5), django_capture_on_commit_callbacks)
    [message] = to_alice(mailoutbox)
    assert message.subject == "Acme Mining: 1 license expired on 2027-03-16"
    assert "expired on 2027-03-16 at 00:00 Asia/Shanghai time" in message.body
    assert "Truck 1 (truck_1): full service → no service" in message.body
    assert "Buy new licenses" in message.body


def test_r11_email_uses_the_tenants_language(
    tenant, alice, django_capture_on_commit_callbacks, mailoutbox
):
    """The tenant's language, not the site default or the current request's."""
    tenant.language = "zh-hans"
    tenant.save()
    issue(tenant, 1)
    run_reminders(cst(2027, 3, 9, 9), django_capture_on_commit_callbacks)
    english = TenantFactory(language="en")
    MembershipFactory(tenant=english, user=UserFactory(), role=Membership.Role.OWNER)
    issue(english, 1, paid_at=PAID + dt.timedelta(days=1))
    run_reminders(cst(2027, 3, 10, 9), django_capture_on_commit_callbacks)
    zh, en = mailoutbox
    assert '<html lang="zh-hans">' in zh.alternatives[0][0]
    assert '<html lang="en">' in en.alternatives[0][0]


def test_r11_r13_each_recipient_reads_it_in_their_own_language(
    team, alice, django_capture_on_commit_callbacks, mailoutbox
):
    """alice chose Chinese; dave chose nothing, so he gets the tenant's English."""
    alice.language = "zh-hans"
    alice.save(update_fields=["language"])
    issue(team, 1)
    run_reminders(cst(2027, 3, 9, 9), django_capture_on_commit_callbacks)
    by_to = {m.to[0]: m for m in mailoutbox}
    assert sorted(by_to) == ["alice@example.com", "dave@example.com"]
    zh, en = by_to["alice@example.com"], by_to["dave@example.com"]
    assert '<html lang="zh-hans">' in zh.alternatives[0][0]
    assert '<html lang="en">' in en.alternatives[0][0]
    assert en.subject == (
        "Acme Mining: 1 license expires on 2027-03-16 (last day of service 2027-03-15)"
    )
    assert zh.subject != en.subject and "2027-03-16" in zh.subject
    assert dict(OutboundEmail.objects.values_list("to", "language")) == {
        "alice@example.com": "zh-hans",
        "dave@example.com": "en",
    }


def test_r11_command_runs_the_same_job(team, django_capture_on_commit_callbacks, mailoutbox):
    issue(team, 1)
    out = StringIO()
    with (
        time_machine.travel(cst(2027, 3, 9, 9), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        call_command("sendrenewalreminders", stdout=out)
    assert "7d: 1" in out.getvalue()
    assert len(mailoutbox) == 2


def test_r11_command_send_now_sends_in_process(
    team, settings, django_capture_on_commit_callbacks, mailoutbox
):
    settings.CELERY_TASK_ALWAYS_EAGER = False  # no worker: --send-now must not need one
    issue(team, 1)
    with (
        time_machine.travel(cst(2027, 3, 9, 9), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        call_command("sendrenewalreminders", "--send-now", stdout=StringIO())
    assert len(mailoutbox) == 2


def test_r11_sends_are_queued_in_chunks_and_one_failure_does_not_stop_a_chunk(
    monkeypatch, smtp_failures, django_capture_on_commit_callbacks, mailoutbox
):
    """Five tenants due, chunks of two: three send tasks. The first email fails once: the
    outbox retries it and the rest goes out meanwhile; every reminder is stored at once."""
    monkeypatch.setattr(reminders, "SEND_CHUNK", 2)
    chunks = []
    task = celery_app.tasks[reminders.SEND_CHUNK_TASK]
    real = task.apply_async
    monkeypatch.setattr(
        task, "apply_async", lambda args, **kw: (chunks.append(args[0]), real(args, **kw))[1]
    )
    for i in range(5):
        tenant = TenantFactory(language="en")
        MembershipFactory(tenant=tenant, user=UserFactory(email=f"o{i}@example.com"))
        issue(tenant, 1)
    smtp_failures["left"] = 1
    run_reminders(cst(2027, 3, 9, 9), django_capture_on_commit_callbacks)
    assert [len(c) for c in chunks] == [2, 2, 1]
    assert len(mailoutbox) == 4
    assert SentReminder.objects.filter(status="sent").count() == 5
    assert sorted(SentReminder.objects.values_list("attempts", flat=True)) == [1] * 5
    deliver_due(cst(2027, 3, 9, 9, 1))
    assert len(mailoutbox) == 5


def test_r11_claim_statements_do_not_grow_with_licenses(monkeypatch):
    """Set-based: the claim reads (tenant, expiry) pairs, not licenses; three tenants with
    40 licenses each cost a handful of statements, and the pairs query returns pairs."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _i in range(3):
        tenant = TenantFactory()
        MembershipFactory(tenant=tenant)
        issue(tenant, 40)
    monkeypatch.setattr(reminders, "reminders_dispatch", lambda **kwargs: None)
    with (
        time_machine.travel(cst(2027, 3, 9, 9), tick=False),
        CaptureQueriesContext(connection) as ctx,
    ):
        run = reminders.reminders_send_due()
    assert run.claimed == {7: 3}
    assert len(ctx.captured_queries) <= 6
    pairs_sql = ctx.captured_queries[0]["sql"]
    assert "DISTINCT" in pairs_sql
    assert '"licensing_license"."id"' not in pairs_sql
