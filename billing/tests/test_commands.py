"""`confirmpayment ORDER_ID --reference REF` and `grantlicenses SLUG --quantity N [--years Y]`
(CONTRACT.md): both go through the one payment confirmation."""

import io
import time

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from billing.models import Order, OrderLicense, Payment
from billing.tests.utils import cst, new_order, paid_new_order, renewal_order
from console.models import AuditEvent
from licensing.models import License

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


# --- confirmpayment ------------------------------------------------------------------------


def test_confirmpayment_issues_and_prints_license_ids(tenant):
    order = new_order(tenant, quantity=2)
    with time_machine.travel(cst(2026, 3, 15, 10), tick=False):
        out, _err = run("confirmpayment", str(order.pk), "--reference", "ICBC-1")
    order.refresh_from_db()
    assert order.status == Order.Status.PAID
    ids = sorted(License.objects.values_list("id", flat=True))
    lines = out.strip().splitlines()
    assert f"#{order.pk}" in lines[0]
    assert "ICBC-1" in lines[0]
    assert sorted(int(x) for x in lines[1:]) == ids
    assert Payment.objects.get(order=order).confirmed_by == "command:confirmpayment"
    assert all(lic.expires_at == cst(2027, 3, 16, 0, 0) for lic in License.objects.all())


def test_confirmpayment_renewal_prints_renewed_ids(tenant):
    lic = paid_new_order(tenant, quantity=1).licenses.get()
    renewal = renewal_order(tenant, [lic])
    out, _err = run("confirmpayment", str(renewal.pk), "--reference", "R-2")
    assert out.strip().splitlines()[1:] == [str(lic.pk)]
    assert "renewed" in out


def test_confirmpayment_twice_says_already_paid_and_changes_nothing(tenant):
    order = new_order(tenant, quantity=2)
    run("confirmpayment", str(order.pk), "--reference", "FIRST")
    with pytest.raises(CommandError, match="already paid"):
        run("confirmpayment", str(order.pk), "--reference", "SECOND")
    assert License.objects.count() == 2
    assert Payment.objects.get().reference == "FIRST"


def test_confirmpayment_unknown_order(db):
    with pytest.raises(CommandError, match="does not exist"):
        run("confirmpayment", "999999", "--reference", "X")


def test_confirmpayment_empty_reference(tenant):
    order = new_order(tenant)
    with pytest.raises(CommandError, match="reference"):
        run("confirmpayment", str(order.pk), "--reference", "  ")
    order.refresh_from_db()
    assert order.status == Order.Status.PENDING_PAYMENT


def test_confirmpayment_needs_a_reference_option(tenant):
    order = new_order(tenant)
    with pytest.raises(CommandError):
        run("confirmpayment", str(order.pk))


def test_confirmpayment_cancelled_order(tenant):
    from billing import services

    order = new_order(tenant)
    services.order_cancel(order=order)
    with pytest.raises(CommandError, match="not pending"):
        run("confirmpayment", str(order.pk), "--reference", "X")


def test_r4_confirmpayment_of_late_renewal_cancels_it_with_a_clear_message(tenant):
    with time_machine.travel(cst(2026, 3, 15, 10), tick=False):
        lic = paid_new_order(tenant, quantity=1).licenses.get()
        renewal = renewal_order(tenant, [lic])
    with (
        time_machine.travel(cst(2027, 4, 1), tick=False),
        pytest.raises(CommandError, match="cancelled"),
    ):
        run("confirmpayment", str(renewal.pk), "--reference", "LATE")
    renewal.refresh_from_db()
    assert renewal.status == Order.Status.CANCELLED


# --- grantlicenses ---------------------------------------------------------------------------


def test_grantlicenses_issues_paid_licenses_through_an_offline_order(tenant):
    with time_machine.travel(cst(2026, 3, 15, 10), tick=False):
        out, err = run("grantlicenses", "acme", "--quantity", "3", "--years", "2")
    ids = [int(x) for x in out.split()]
    assert len(ids) == 3
    licenses = License.objects.filter(pk__in=ids, tenant=tenant)
    assert licenses.count() == 3
    assert all(lic.expires_at == cst(2028, 3, 16, 0, 0) for lic in licenses)
    assert all(lic.starts_at == cst(2026, 3, 15, 10) for lic in licenses)
    order = Order.objects.get()
    assert order.channel == Order.Channel.OFFLINE
    assert order.kind == Order.Kind.NEW
    assert order.status == Order.Status.PAID
    assert str(order.total) == "21600.00"  # 3 × 3600.00 × 2 at the contract price
    assert order.payment.reference == "offline-grant"
    assert order.created_by == "command:grantlicenses"
    assert sorted(ids) == sorted(order.licenses.values_list("id", flat=True))
    assert f"#{order.pk}" in err


def test_grantlicenses_years_default_to_one(tenant):
    with time_machine.travel(cst(2026, 3, 15, 10), tick=False):
        out, _err = run("grantlicenses", "acme", "--quantity", "1")
    assert License.objects.get(pk=int(out)).expires_at == cst(2027, 3, 16, 0, 0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuch", "--quantity", "1"], "No tenant"),
        (["acme", "--quantity", "0"], "Quantity"),
        (["acme", "--quantity", "-3"], "Quantity"),
        (["acme", "--quantity", "100001"], "Quantity"),
        (["acme", "--quantity", "1", "--years", "0"], "Years"),
        (["acme", "--quantity", "1", "--years", "11"], "Years"),
        (["acme", "--quantity", "many"], "invalid int"),
        (["acme"], "quantity"),
    ],
)
def test_grantlicenses_bad_input_creates_nothing(tenant, args, message):
    with pytest.raises(CommandError, match=message):
        run("grantlicenses", *args)
    assert not Order.objects.exists()
    assert not License.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="order.").exists()


def test_grantlicenses_in_bulk_with_bounded_queries(tenant):
    """20,000 licenses in a bounded number of SQL statements (batches, never one per
    license): a 100,000-license grant takes seconds."""
    started = time.monotonic()
    with CaptureQueriesContext(connection) as queries:
        out, _err = run("grantlicenses", "acme", "--quantity", "20000")
    elapsed = time.monotonic() - started
    assert len(out.split()) == 20_000
    assert License.objects.filter(tenant=tenant).count() == 20_000
    assert OrderLicense.objects.count() == 20_000
    issued = AuditEvent.objects.filter(action="license.issued")
    audited = [pk for event in issued for pk in event.data["ids"]]
    assert sorted(audited) == sorted(int(i) for i in out.split())
    assert issued.count() == 20  # one event per thousand licenses
    # PostgreSQL inserts thousands of rows per statement; SQLite's 999-variable cap keeps
    # its batches near a hundred rows: either way far from one statement per license.
    limit = 40 if connection.vendor == "postgresql" else 20_000 // 40
    assert len(queries) < limit, len(queries)
    assert elapsed < 30
