"""R5, R11 on PostgreSQL: two copies of a job running at the same moment (beat fired twice,
an operator ran the command during the nightly run) expire and audit each license once and
send each email once.

Real threads with their own connections, so transaction=True: the rows must be committed
for the other connection to see them."""

import datetime as dt
import threading

import pytest
import time_machine
from django.conf import settings
from django.db import connection, connections

from console.models import AuditEvent, Membership
from console.tests.factories import MembershipFactory, TenantFactory, UserFactory
from console.timeutils import BUSINESS_TZ
from licensing import expiry, reminders
from licensing.models import License, SentReminder
from licensing.services import licenses_issue

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        "postgresql" not in settings.DATABASES["default"]["ENGINE"],
        reason="needs PostgreSQL (set DATABASE_URL): SQLite serialises writers anyway",
    ),
]

PAID = dt.datetime(2026, 3, 15, 10, 0, tzinfo=BUSINESS_TZ)
EXPIRY_DATE = dt.date(2027, 3, 16)


def tenants_with_owners(n: int, licenses_each: int) -> list:
    tenants = []
    for i in range(n):
        tenant = TenantFactory(language="en")
        MembershipFactory(
            tenant=tenant, user=UserFactory(email=f"owner{i}@example.com"), role="owner"
        )
        licenses_issue(tenant=tenant, quantity=licenses_each, years=1, paid_at=PAID)
        tenants.append(tenant)
    return tenants


def run_at_once(copies: int, target, *args):
    """Start `copies` threads that call target(*args) together; return their results."""
    barrier = threading.Barrier(copies)
    results: list = [None] * copies
    errors: list = []

    def work(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[i] = target(*args)
        except BaseException as exc:  # surfaced in the test thread below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(copies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


def test_r5_two_expiry_runs_at_once_expire_and_audit_each_license_once(mailoutbox):
    tenants = tenants_with_owners(20, 50)  # 1,000 due licenses
    with time_machine.travel(dt.datetime(2027, 3, 16, 0, 5, tzinfo=BUSINESS_TZ), tick=False):
        runs = run_at_once(
            2, lambda: expiry.licenses_expire_due(batch_size=37, actor="job:expirelicenses")
        )
    assert sum(run.expired for run in runs) == 1000
    assert License.objects.filter(status="expired").count() == 1000
    audited = [
        pk
        for data in AuditEvent.objects.filter(action="license.expired").values_list(
            "data", flat=True
        )
        for pk in data["licenses"]
    ]
    assert len(audited) == len(set(audited)) == 1000
    # one expiry-date notice per tenant, whichever run claimed it, each sent once
    assert sum(run.notices for run in runs) == 20
    assert SentReminder.objects.filter(milestone=0, status="sent").count() == 20
    assert sorted(m.to[0] for m in mailoutbox) == sorted(
        f"owner{i}@example.com" for i in range(len(tenants))
    )


def test_r11_two_reminder_runs_at_once_send_each_email_once(mailoutbox):
    tenants_with_owners(60, 2)
    with time_machine.travel(dt.datetime(2027, 3, 9, 9, 0, tzinfo=BUSINESS_TZ), tick=False):
        runs = run_at_once(3, reminders.reminders_send_due)
    assert sum(run.claimed.get(7, 0) for run in runs) == 60
    assert SentReminder.objects.filter(milestone=7, status="sent").count() == 60
    assert len(mailoutbox) == 60
    assert len({m.to[0] for m in mailoutbox}) == 60


def test_r11_two_senders_of_one_reminder_send_it_once(mailoutbox):
    """A re-queued message and the original arrive together: the lease lets one send."""
    tenants = tenants_with_owners(5, 1)
    outcomes = []
    with time_machine.travel(dt.datetime(2027, 3, 9, 9, 0, tzinfo=BUSINESS_TZ), tick=False):
        ids = reminders.reminders_claim(wanted=[(t.pk, EXPIRY_DATE, 7) for t in tenants])
        for reminder_id in ids:
            outcomes.append(
                sorted(
                    run_at_once(2, lambda rid=reminder_id: reminders.reminder_send(reminder_id=rid))
                )
            )
    assert outcomes == [["not_claimed", "sent"]] * 5
    assert len(mailoutbox) == 5
    assert SentReminder.objects.filter(status="sent", attempts=1).count() == 5


def test_r5_the_connection_is_postgresql():
    """Guards the skip above: these tests must not silently pass elsewhere."""
    assert connection.vendor == "postgresql"
    assert Membership.objects.count() == 0
