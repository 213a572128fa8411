"""R9 on PostgreSQL: two reviewers acting on one application at once cannot both succeed —
the service locks the application row and re-checks its state under the lock."""

import threading
import time
from decimal import Decimal

import pytest
from django.db import connection

from console import beta_services, services
from console.errors import ServiceError
from console.models import AuditEvent, BetaApplication, Membership, Tenant
from console.tests.factories import BetaApplicationFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

S = BetaApplication.State


def race(*calls):
    """Run the calls at once, each in its own thread and database connection; returns
    each one's result or raised ServiceError."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def worker(i, call):
        try:
            barrier.wait()
            results[i] = call()
        except ServiceError as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


@pytest.fixture
def slow_tenant_create(monkeypatch):
    """Widen the window: whoever gets the lock keeps it a moment, so the other reviewer
    surely arrives while the first transaction is open."""
    real = services.tenant_create

    def slow(**kwargs):
        time.sleep(0.3)
        return real(**kwargs)

    monkeypatch.setattr(beta_services, "tenant_create", slow)


def test_r9_two_confirmations_at_once_create_one_tenant(
    postgres_only, slow_tenant_create, mailoutbox
):
    app = BetaApplicationFactory(state=S.APPROVED)
    rita = UserFactory(is_staff=True)
    rob = UserFactory(is_staff=True)

    def confirm(actor, slug):
        return lambda: beta_services.beta_application_confirm(
            application=BetaApplication.objects.get(pk=app.pk),
            actor=actor,
            contract_unit_price=Decimal("3600.00"),
            slug=slug,
        )

    results = race(confirm(rita, "first-slug"), confirm(rob, "second-slug"))

    tenants = [r for r in results if isinstance(r, Tenant)]
    errors = [r for r in results if isinstance(r, ServiceError)]
    assert len(tenants) == 1
    assert len(errors) == 1
    assert errors[0].code == "INVALID_TRANSITION"
    assert Tenant.objects.count() == 1
    assert Membership.objects.count() == 1
    app.refresh_from_db()
    assert app.state == S.CONFIRMED
    assert app.tenant == tenants[0]
    assert AuditEvent.objects.filter(action="beta_application.confirmed").count() == 1
    assert AuditEvent.objects.filter(action="tenant.created").count() == 1
    # The applicant hears of it once.
    assert [m.to for m in mailoutbox] == [[app.applicant.email]]


def test_r9_confirm_and_reject_at_once_one_wins(postgres_only, slow_tenant_create):
    app = BetaApplicationFactory(state=S.APPROVED)
    rita = UserFactory(is_staff=True)

    def confirm():
        return beta_services.beta_application_confirm(
            application=BetaApplication.objects.get(pk=app.pk),
            actor=rita,
            contract_unit_price="3600",
            slug="race",
        )

    def reject():
        time.sleep(0.05)  # let the confirmation take the lock first
        return beta_services.beta_application_reject(
            application=BetaApplication.objects.get(pk=app.pk), actor=rita, reason="late"
        )

    confirmed, rejected = race(confirm, reject)
    assert isinstance(confirmed, Tenant)
    assert isinstance(rejected, ServiceError)
    assert rejected.code == "INVALID_TRANSITION"
    app.refresh_from_db()
    assert app.state == S.CONFIRMED
    assert AuditEvent.objects.filter(target_type="console.betaapplication").count() == 1


def test_r9_two_submissions_at_once_make_one_application(postgres_only):
    applicant = UserFactory()

    def submit(name):
        return lambda: beta_services.beta_application_submit(
            applicant=applicant,
            company_name=name,
            contact_name="A",
            phone="+86 10 1234 5678",
            email=applicant.email,
            industry="ports",
            scenario="Cranes",
            expected_devices=1,
            cameras_per_device=1,
            resolution="720p",
        )

    results = race(*(submit(f"Co {i}") for i in range(4)))
    assert sum(isinstance(r, BetaApplication) for r in results) == 1
    assert all(r.code == "APPLICATION_OPEN" for r in results if isinstance(r, ServiceError))
    assert BetaApplication.objects.filter(applicant=applicant).count() == 1
