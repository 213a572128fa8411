"""R2: LICENSE_LIST_PRICE is the contract price a new tenant gets unless its confirmation
negotiated another, fixed when the tenant is created: a later change of the setting reprices
no existing tenant. Checked where customers see it, the quote (`POST /api/v1/quote`)."""

import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from console import beta_services
from console.models import ApiKey, AuditEvent, BetaApplication, Tenant
from console.tests.factories import BetaApplicationFactory, UserFactory, make_api_key

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

ONE_720P = {"cameras": [{"width": 1280, "height": 720}], "years": 1}


def quote(raw_key: str, body: dict = ONE_720P) -> dict:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    response = client.post("/api/v1/quote", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def createtenant(*args: str) -> str:
    """Run the command as an operator would; returns the admin API key it printed last."""
    out = io.StringIO()
    call_command("createtenant", *args, "--api-key", stdout=out)
    return out.getvalue().strip().splitlines()[-1]


def test_r2_createtenant_prices_a_new_tenant_at_the_list_price(settings):
    settings.LICENSE_LIST_PRICE = Decimal("4000.00")
    key = createtenant("Quarry Works", "--slug", "quarry", "--owner", "q@example.com")
    answer = quote(key)
    assert answer["unit_price"] == "4000.00"
    assert answer["total"] == "4000.00"
    assert quote(key, {**ONE_720P, "years": 2})["total"] == "8000.00"
    tenant = Tenant.objects.get(slug="quarry")
    assert tenant.contract_unit_price == Decimal("4000.00")
    created = AuditEvent.objects.get(action="tenant.created", tenant=tenant)
    assert created.data["contract_unit_price"] == "4000.00"


def test_r2_a_later_list_price_change_reprices_no_existing_tenant(settings):
    settings.LICENSE_LIST_PRICE = Decimal("4000.00")
    old_key = createtenant("Old Mine", "--slug", "old-mine", "--owner", "o@example.com")
    settings.LICENSE_LIST_PRICE = Decimal("4500.00")
    new_key = createtenant("New Port", "--slug", "new-port", "--owner", "n@example.com")
    assert quote(old_key)["unit_price"] == "4000.00"
    assert quote(new_key)["unit_price"] == "4500.00"


def test_r2_createtenant_price_option_wins_over_the_list_price(settings):
    settings.LICENSE_LIST_PRICE = Decimal("4000.00")
    key = createtenant("Deal Co", "--slug", "deal", "--owner", "d@example.com", "--price", "3200")
    assert quote(key)["unit_price"] == "3200.00"


def test_r2_r9_beta_confirmation_without_a_price_takes_the_list_price(settings):
    settings.LICENSE_LIST_PRICE = Decimal("4000.00")
    app = BetaApplicationFactory(state=BetaApplication.State.APPROVED)
    reviewer = UserFactory(email="rita@example.com", is_staff=True)
    tenant = beta_services.beta_application_confirm(
        application=app, actor=reviewer, slug="pit-crew"
    )
    tenant.refresh_from_db()
    assert tenant.contract_unit_price == Decimal("4000.00")
    confirmed = AuditEvent.objects.get(action="beta_application.confirmed")
    assert confirmed.data["contract_unit_price"] == "4000.00"
    settings.LICENSE_LIST_PRICE = Decimal("4800.00")
    assert quote(make_api_key(tenant, ApiKey.Role.VIEWER)[1])["unit_price"] == "4000.00"


def test_r2_r9_beta_confirmation_with_a_price_keeps_the_negotiated_one(settings):
    settings.LICENSE_LIST_PRICE = Decimal("4000.00")
    app = BetaApplicationFactory(state=BetaApplication.State.APPROVED)
    reviewer = UserFactory(email="rita@example.com", is_staff=True)
    tenant = beta_services.beta_application_confirm(
        application=app, actor=reviewer, slug="pit-crew", contract_unit_price="3300.50"
    )
    assert quote(make_api_key(tenant)[1])["unit_price"] == "3300.50"


def test_r2_the_admin_confirm_form_offers_the_list_price(settings, staff_client):
    settings.LICENSE_LIST_PRICE = Decimal("4000.00")
    app = BetaApplicationFactory(state=BetaApplication.State.APPROVED)
    page = staff_client.get(f"/admin/console/betaapplication/{app.pk}/confirm/")
    assert page.status_code == 200
    assert page.context["form"]["contract_unit_price"].value() == Decimal("4000.00")
