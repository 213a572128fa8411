"""R5, R11 through the commands operators run (`expirelicenses`, `sendrenewalreminders`), on
PostgreSQL with real commits (transaction=True): the expiry job's own batches are
transactions, the emails leave only once their claims are committed (on_commit), and a
test wrapped in one outer transaction would see neither."""

import datetime as dt
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command

from console.models import AuditEvent, Membership
from console.tests.factories import (
    CameraFactory,
    DeviceFactory,
    MembershipFactory,
    TenantFactory,
    UserFactory,
)
from console.timeutils import BUSINESS_TZ
from licensing.models import License, SentReminder
from licensing.services import licenses_issue

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("postgres_only", "english"),
]


def cst(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BUSINESS_TZ)


PAID = cst(2026, 3, 15, 10, 0)
# R3: last service date 2027-03-15 → expires 2027-03-16 00:00 CST (the expiry date).
EXPIRES = cst(2027, 3, 16)
EXPIRY_DATE = dt.date(2027, 3, 16)


@pytest.fixture
def fleet():
    """Acme (owner alice, admin dave, English): a truck with two 720p cameras and both its
    licenses expiring, an unbound license expiring too, one license that lasts two years, one
    refunded. Ports (owner erin): one license expiring."""
    acme = TenantFactory(name="Acme Mining", slug="acme", language="en")
    for email, role in (("alice@example.com", "owner"), ("dave@example.com", "admin")):
        MembershipFactory(tenant=acme, user=UserFactory(email=email), role=role)
    MembershipFactory(tenant=acme, user=UserFactory(email="bob@example.com"), role="viewer")
    truck = DeviceFactory(tenant=acme, serial="truck_1", name="Truck 1")
    CameraFactory(device=truck, width=1280, height=720)
    CameraFactory(device=truck, width=1280, height=720)
    expiring = licenses_issue(tenant=acme, quantity=3, years=1, paid_at=PAID)
    lasting = licenses_issue(tenant=acme, quantity=1, years=2, paid_at=PAID)
    refunded = licenses_issue(tenant=acme, quantity=1, years=1, paid_at=PAID)
    License.objects.filter(pk__in=[expiring[0].pk, expiring[1].pk]).update(device=truck)
    License.objects.filter(pk=refunded[0].pk).update(status=License.Status.REFUNDED)

    ports = TenantFactory(name="Other Ports", slug="ports", language="en")
    MembershipFactory(tenant=ports, user=UserFactory(email="erin@example.com"), role="owner")
    ports_expiring = licenses_issue(tenant=ports, quantity=1, years=1, paid_at=PAID)
    return {
        "acme": acme,
        "ports": ports,
        "expiring": [lic.pk for lic in expiring],
        "lasting": lasting[0].pk,
        "refunded": refunded[0].pk,
        "ports_expiring": ports_expiring[0].pk,
    }


def run(command: str, at: dt.datetime, *args) -> str:
    out = StringIO()
    with time_machine.travel(at, tick=False):
        call_command(command, *args, stdout=out)
    return out.getvalue()


def statuses() -> dict[int, str]:
    return dict(License.objects.values_list("id", "status"))


def expiry_audit():
    return AuditEvent.objects.filter(action="license.expired").order_by("tenant_id")


def test_r5_expirelicenses_records_audits_and_notifies_once(fleet, mailoutbox):
    out = run("expirelicenses", cst(2027, 3, 16, 0, 5))
    assert "Expired 4 licenses; 2 expiry-date notices claimed" in out

    # licenses: the due ones are recorded expired, the others untouched
    expected = dict.fromkeys([*fleet["expiring"], fleet["ports_expiring"]], "expired")
    expected |= {fleet["lasting"]: "active", fleet["refunded"]: "refunded"}
    assert statuses() == expected

    # audit: one event per tenant and expiry date, naming its licenses, by the command
    events = list(expiry_audit())
    assert [(e.tenant_id, e.data["licenses"], e.data["count"]) for e in events] == [
        (fleet["acme"].pk, sorted(fleet["expiring"]), 3),
        (fleet["ports"].pk, [fleet["ports_expiring"]], 1),
    ]
    assert {e.actor_label for e in events} == {"command:expirelicenses"}
    assert {dt.datetime.fromisoformat(e.data["expires_at"]) for e in events} == {EXPIRES}

    # reminders: the expiry-date notice of each tenant, sent to its owners and admins
    reminders = SentReminder.objects.order_by("tenant_id")
    assert [
        (r.tenant_id, r.milestone, r.expiry_date, r.status, r.recipients, r.license_count)
        for r in reminders
    ] == [
        (fleet["acme"].pk, 0, EXPIRY_DATE, "sent", ["alice@example.com", "dave@example.com"], 3),
        (fleet["ports"].pk, 0, EXPIRY_DATE, "sent", ["erin@example.com"], 1),
    ]
    # R13: one email per recipient
    assert sorted((m.to[0], m.subject) for m in mailoutbox) == [
        ("alice@example.com", "Acme Mining: 3 licenses expired on 2027-03-16"),
        ("dave@example.com", "Acme Mining: 3 licenses expired on 2027-03-16"),
        ("erin@example.com", "Other Ports: 1 license expired on 2027-03-16"),
    ]
    acme_mail = next(m for m in mailoutbox if m.subject.startswith("Acme"))
    assert "Truck 1 (truck_1): full service → no service" in acme_mail.body

    # a second run the same night: nothing more to record, audit or send
    out = run("expirelicenses", cst(2027, 3, 16, 0, 30))
    assert "Expired 0 licenses; 0 expiry-date notices claimed" in out
    assert statuses() == expected
    assert expiry_audit().count() == 2
    assert SentReminder.objects.count() == 2
    assert len(mailoutbox) == 3


def test_r5_expirelicenses_in_small_batches_and_sending_in_process(fleet, mailoutbox):
    out = run("expirelicenses", cst(2027, 3, 16, 0, 5), "--batch-size", "1", "--send-now")
    assert "Expired 4 licenses" in out
    events = list(expiry_audit())
    # one event per batch that touched a tenant: every license named exactly once
    named = sorted(pk for e in events for pk in e.data["licenses"])
    assert named == sorted([*fleet["expiring"], fleet["ports_expiring"]])
    assert SentReminder.objects.filter(status="sent", milestone=0).count() == 2
    assert len(mailoutbox) == 3  # alice and dave (Acme), erin (Ports)


def test_r11_sendrenewalreminders_sends_each_milestone_once_and_records_nothing_else(
    fleet, mailoutbox
):
    out = run("sendrenewalreminders", cst(2027, 3, 9, 9))
    assert "7d: 2" in out
    reminders = SentReminder.objects.order_by("tenant_id")
    assert [(r.tenant_id, r.milestone, r.status, r.license_count) for r in reminders] == [
        (fleet["acme"].pk, 7, "sent", 3),
        (fleet["ports"].pk, 7, "sent", 1),
    ]
    acme_mails = [m for m in mailoutbox if m.subject.startswith("Acme")]
    assert sorted(m.to[0] for m in acme_mails) == ["alice@example.com", "dave@example.com"]
    acme_mail = acme_mails[0]
    assert acme_mail.subject == (
        "Acme Mining: 3 licenses expire on 2027-03-16 (last day of service 2027-03-15)"
    )
    assert "Truck 1 (truck_1): full service → no service" in acme_mail.body
    assert "valid licenses: 2 → 0 (2 needed)" in acme_mail.body
    # the reminder job records no license change and writes no expiry audit
    assert set(statuses().values()) == {"active", "refunded"}
    assert not expiry_audit().exists()

    # re-runs the same day, and an overlapping one an hour later: nothing more
    for at in (cst(2027, 3, 9, 9, 1), cst(2027, 3, 9, 10)):
        assert "Reminders claimed: 0" in run("sendrenewalreminders", at)
    assert len(mailoutbox) == 3


def test_r11_r5_when_the_expiry_job_was_down_the_reminder_job_sends_the_notice(fleet, mailoutbox):
    """Neither job ran from 03-09 to 03-17: at 09:00 on 03-17 the reminder job sends the
    expiry-date notice (the 1-day reminder is superseded); the expiry job run afterwards
    records and audits the expiry and sends nothing more."""
    run("sendrenewalreminders", cst(2027, 3, 17, 9))
    assert sorted(SentReminder.objects.values_list("milestone", "status")) == [
        (0, "sent"),
        (0, "sent"),
    ]
    assert sorted(m.subject for m in mailoutbox) == [
        "Acme Mining: 3 licenses expired on 2027-03-16",
        "Acme Mining: 3 licenses expired on 2027-03-16",
        "Other Ports: 1 license expired on 2027-03-16",
    ]
    assert not expiry_audit().exists()  # recorded by the expiry job only

    out = run("expirelicenses", cst(2027, 3, 17, 9, 30))
    assert "Expired 4 licenses; 0 expiry-date notices claimed" in out
    assert expiry_audit().count() == 2
    assert statuses()[fleet["lasting"]] == "active"
    assert SentReminder.objects.count() == 2
    assert len(mailoutbox) == 3


def test_r11_an_owner_who_left_is_not_written_to(fleet, mailoutbox):
    Membership.objects.filter(user__email="dave@example.com").delete()
    run("sendrenewalreminders", cst(2027, 3, 15, 9))
    acme_mail = next(m for m in mailoutbox if m.subject.startswith("Acme"))
    assert acme_mail.to == ["alice@example.com"]
    assert "2027-03-15, the day this reminder was written, is the last day" in acme_mail.body
