"""Buying licenses in the console: the quote calculator (R1 breakdown, R2 price at the
tenant's contract price), prefilled from a device's cameras, then a new-licenses order that a
double submit creates once (one idempotency key per rendered form). Bad input is a form
error that changes nothing; viewers and suspended tenants cannot buy (R9)."""

import re
from decimal import Decimal

import pytest

from billing.models import IdempotencyKey, Order
from console.models import AuditEvent, Tenant
from console.tests.factories import CameraFactory, DeviceFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


GUIDE = "w1=1280&h1=720&w2=640&h2=480&w3=640&h3=480"


def value(html: str, element_id: str) -> str:
    return re.search(rf'id="{element_id}">(?:<strong>)?([^<]*)<', html).group(1)


def form_key(html: str) -> str:
    return re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1)


# --- the quote (R1, R2) -----------------------------------------------------------------------


def test_the_guides_example_costs_7200_cny_a_year(owner):
    """R1 + R2: 1280×720 + 2 × 640×480 → 1,536,000 px → 1.67 → 2 licenses → 7200 CNY/year."""
    html = owner.get(f"/orders/new/?{GUIDE}&years=1").content.decode()
    assert value(html, "quote-pixels") == "1,536,000"
    assert value(html, "quote-ratio") == "1.67"
    assert value(html, "quote-licenses") == "2"
    assert value(html, "quote-total") == "7200.00 CNY"
    # The order form is prefilled from the quote.
    assert re.search(r'name="quantity" value="2"', html)


def test_the_quote_uses_the_contract_price_and_years(owner, tenant):
    tenant.contract_unit_price = Decimal("3333.33")
    tenant.save()
    html = owner.get(f"/orders/new/?{GUIDE}&years=3").content.decode()
    assert value(html, "quote-total") == "19999.98 CNY"  # 2 × 3333.33 × 3
    assert "3333.33 CNY" in html


def test_max_concurrent_streams_counts_the_largest(owner):
    html = owner.get(f"/orders/new/?{GUIDE}&max_concurrent_streams=1").content.decode()
    assert value(html, "quote-pixels") == "921,600"
    assert value(html, "quote-licenses") == "1"
    assert value(html, "quote-total") == "3600.00 CNY"


def test_years_default_to_one(owner):
    html = owner.get("/orders/new/?w1=1920&h1=1080").content.decode()
    assert value(html, "quote-licenses") == "2"  # 2.25 → 2
    assert value(html, "quote-total") == "7200.00 CNY"


def test_a_device_prefills_its_enabled_cameras(owner, tenant):
    device = DeviceFactory(tenant=tenant, serial="truck01", max_concurrent_streams=3)
    CameraFactory(device=device, width=1280, height=720)
    CameraFactory(device=device, width=640, height=480)
    CameraFactory(device=device, width=640, height=480)
    CameraFactory(device=device, width=3840, height=2160, enabled=False)
    html = owner.get(f"/orders/new/?device={device.pk}").content.decode()
    assert 'name="w1" value="1280"' in html
    assert 'name="h3" value="480"' in html
    assert 'name="w4"' in html and 'name="w4" value' not in html
    assert 'name="max_concurrent_streams" value="3"' in html
    assert value(html, "quote-total") == "7200.00 CNY"


def test_another_tenants_device_cannot_prefill(owner, other_tenant):
    theirs = DeviceFactory(tenant=other_tenant)
    CameraFactory(device=theirs)
    assert owner.get(f"/orders/new/?device={theirs.pk}").status_code == 404
    assert owner.get("/orders/new/?device=abc").status_code == 404


def test_the_first_visit_shows_an_empty_calculator(owner):
    html = owner.get("/orders/new/").content.decode()
    assert 'id="quote-total"' not in html
    assert 'class="errorlist' not in html
    assert 'name="quantity" value="1"' in html


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("w1=0&h1=720", "greater than or equal to 1"),
        ("w1=7681&h1=720", "less than or equal to 7680"),
        ("w1=8000&h1=5000", "less than or equal to 7680"),
        ("w1=7680&h1=4321", "at most 7680 × 4320 (33,177,600) pixels"),
        ("w1=1280&h1=", "Enter both width and height."),
        ("w1=abc&h1=720", "Enter a whole number."),
        ("w1=&h1=&years=1", "Enter at least one camera"),
        (f"{GUIDE}&years=0", "greater than or equal to 1"),
        (f"{GUIDE}&years=11", "less than or equal to 10"),
        (f"{GUIDE}&max_concurrent_streams=9", "less than or equal to 8"),
        (f"{GUIDE}&max_concurrent_streams=0", "greater than or equal to 1"),
    ],
)
def test_bad_quote_input_is_a_form_error(owner, query, message):
    response = owner.get(f"/orders/new/?{query}")
    assert response.status_code == 200
    html = response.content.decode()
    assert message in html
    assert 'id="quote-total"' not in html


def test_at_most_eight_cameras_are_quoted(owner):
    """R1: a device carries at most 8 streams: the calculator has 8 rows, a 9th is ignored."""
    eight = "&".join(f"w{i}=1280&h{i}=720" for i in range(1, 10))
    html = owner.get(f"/orders/new/?{eight}").content.decode()
    assert 'name="w8"' in html and 'name="w9"' not in html
    assert value(html, "quote-licenses") == "8"


# --- placing the order ------------------------------------------------------------------------


def test_owner_places_a_new_licenses_order(owner, tenant, alice):
    page = owner.get(f"/orders/new/?{GUIDE}").content.decode()
    key = form_key(page)
    response = owner.post(
        f"/orders/new/?{GUIDE}", {"quantity": "2", "years": "1", "idempotency_key": key}
    )
    order = Order.objects.get(tenant=tenant)
    assert response.status_code == 302
    assert response.url == f"/orders/{order.pk}/"
    assert (order.kind, order.quantity, order.years) == (Order.Kind.NEW, 2, 1)
    assert order.total == Decimal("7200.00")
    assert order.status == Order.Status.PENDING_PAYMENT
    assert order.created_by == alice.email
    assert AuditEvent.objects.get(action="order.created").actor == alice
    detail = owner.get(response.url).content.decode()
    assert f"Order #{order.pk} is placed." in detail
    assert 'id="payment-instructions"' in detail


def test_a_double_submit_creates_one_order(owner, tenant):
    key = form_key(owner.get("/orders/new/").content.decode())
    data = {"quantity": "3", "years": "2", "idempotency_key": key}
    first = owner.post("/orders/new/", data)
    second = owner.post("/orders/new/", data)
    assert Order.objects.filter(tenant=tenant).count() == 1
    assert first.url == second.url == f"/orders/{Order.objects.get().pk}/"
    assert IdempotencyKey.objects.get().key == key


def test_each_rendered_form_has_its_own_key(owner, tenant):
    first = form_key(owner.get("/orders/new/").content.decode())
    second = form_key(owner.get("/orders/new/").content.decode())
    assert first != second
    owner.post("/orders/new/", {"quantity": "1", "years": "1", "idempotency_key": first})
    owner.post("/orders/new/", {"quantity": "1", "years": "1", "idempotency_key": second})
    assert Order.objects.filter(tenant=tenant).count() == 2


def test_the_same_form_sent_back_with_other_values_places_nothing_more(owner, tenant):
    key = form_key(owner.get("/orders/new/").content.decode())
    owner.post("/orders/new/", {"quantity": "1", "years": "1", "idempotency_key": key})
    response = owner.post("/orders/new/", {"quantity": "5", "years": "1", "idempotency_key": key})
    assert response.status_code == 200
    html = response.content.decode()
    assert "This form was already used to place order" in html
    assert form_key(html) != key  # a fresh form to submit again
    assert Order.objects.filter(tenant=tenant).count() == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"quantity": "0", "years": "1"}, "greater than or equal to 1"),
        ({"quantity": "-2", "years": "1"}, "greater than or equal to 1"),
        ({"quantity": "", "years": "1"}, "This field is required."),
        ({"quantity": "two", "years": "1"}, "Enter a whole number."),
        ({"quantity": "100001", "years": "1"}, "less than or equal to 100000"),
        ({"quantity": "2", "years": "0"}, "greater than or equal to 1"),
        ({"quantity": "2", "years": "11"}, "less than or equal to 10"),
    ],
)
def test_bad_order_input_is_a_form_error(owner, tenant, data, message):
    response = owner.post("/orders/new/", {**data, "idempotency_key": "web-test"})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Order.objects.exists()


def test_an_order_without_its_key_is_refused(owner):
    response = owner.post("/orders/new/", {"quantity": "1", "years": "1"})
    assert response.status_code == 200
    assert not Order.objects.exists()


def test_a_total_too_large_for_one_order_is_a_form_error(owner, tenant):
    tenant.contract_unit_price = Decimal("9999999999.99")
    tenant.save()
    response = owner.post(
        "/orders/new/", {"quantity": "100000", "years": "10", "idempotency_key": "web-big"}
    )
    assert response.status_code == 200
    assert "The total must not exceed" in response.content.decode()
    assert not Order.objects.exists()


# --- who may buy ------------------------------------------------------------------------------


def test_viewer_sees_the_quote_but_cannot_buy(viewer):
    html = viewer.get(f"/orders/new/?{GUIDE}").content.decode()
    assert value(html, "quote-total") == "7200.00 CNY"
    assert 'name="quantity"' not in html
    response = viewer.post("/orders/new/", {"quantity": "1", "years": "1", "idempotency_key": "k"})
    assert response.status_code == 403
    assert not Order.objects.exists()


def test_a_suspended_tenant_cannot_buy(owner, tenant):
    """R9: only an active tenant can buy."""
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)
    html = owner.get(f"/orders/new/?{GUIDE}").content.decode()
    assert "banner-warning" in html
    assert 'name="quantity"' not in html
    response = owner.post("/orders/new/", {"quantity": "1", "years": "1", "idempotency_key": "k"})
    assert response.status_code == 403
    assert not Order.objects.exists()


def test_anonymous_visitors_are_sent_to_login(client):
    response = client.get("/orders/new/")
    assert response.status_code == 302
    assert response.url.startswith("/login/")
