"""POST /api/v1/quote (CONTRACT.md): R1 licenses and R2 price for the calling tenant."""

from decimal import Decimal

import pytest

from console.models import Tenant

pytestmark = pytest.mark.django_db

URL = "/api/v1/quote"
GUIDE = {
    "cameras": [
        {"width": 1280, "height": 720},
        {"width": 640, "height": 480},
        {"width": 640, "height": 480},
    ],
    "max_concurrent_streams": None,
    "years": 1,
}


def test_r1_r2_purchase_guide_example(admin_api):
    response = admin_api.post(URL, GUIDE, format="json")
    assert response.status_code == 200, response.json()
    assert response.json() == {
        "aggregate_pixels": 1536000,
        "standard_pixels": 921600,
        "ratio": "1.67",
        "licenses": 2,
        "unit_price": "3600.00",
        "years": 1,
        "total": "7200.00",
        "currency": "CNY",
    }


@pytest.mark.parametrize("client_fixture", ["viewer_api", "operator_api", "admin_api"])
def test_any_key_role_may_ask(request, client_fixture):
    response = request.getfixturevalue(client_fixture).post(URL, GUIDE, format="json")
    assert response.status_code == 200
    assert response.json()["licenses"] == 2


def test_r2_unit_price_is_the_calling_tenants_contract_price(admin_api, other_api, tenant):
    tenant.contract_unit_price = Decimal("3000.50")
    tenant.save()
    body = {**GUIDE, "years": 3}
    mine = admin_api.post(URL, body, format="json").json()
    assert mine["unit_price"] == "3000.50"
    assert mine["total"] == "18003.00"  # 2 × 3000.50 × 3
    # Another tenant still pays its own (list) price.
    theirs = other_api.post(URL, body, format="json").json()
    assert theirs["unit_price"] == "3600.00"
    assert theirs["total"] == "21600.00"


def test_r1_ratio_display_rounds_half_up_but_licenses_use_exact_ratio(viewer_api):
    # 1472 × 936 = 1,377,792 px → exact 1.495 → shown "1.50", 1 license.
    body = {"cameras": [{"width": 1472, "height": 936}], "years": 1}
    data = viewer_api.post(URL, body, format="json").json()
    assert data["ratio"] == "1.50"
    assert data["licenses"] == 1
    assert data["total"] == "3600.00"


def test_r1_max_concurrent_streams_sums_the_k_largest(viewer_api):
    body = {**GUIDE, "max_concurrent_streams": 1}
    data = viewer_api.post(URL, body, format="json").json()
    assert data["aggregate_pixels"] == 921600
    assert data["licenses"] == 1


def test_years_default_to_one(viewer_api):
    data = viewer_api.post(URL, {"cameras": GUIDE["cameras"]}, format="json").json()
    assert data["years"] == 1
    assert data["total"] == "7200.00"


def test_r1_largest_allowed_camera(viewer_api):
    body = {"cameras": [{"width": 7680, "height": 4320}] * 8, "years": 10}
    data = viewer_api.post(URL, body, format="json").json()
    assert data["licenses"] == 288  # 8 × 36
    assert data["total"] == "10368000.00"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"cameras": [], "years": 1}, "cameras"),
        ({"years": 1}, "cameras"),
        ({"cameras": [{"width": 1280, "height": 720}] * 9}, "cameras"),
        ({"cameras": [{"width": 7681, "height": 10}]}, "cameras.0.width"),
        ({"cameras": [{"width": 0, "height": 720}]}, "cameras.0.width"),
        ({"cameras": [{"width": 1280, "height": -1}]}, "cameras.0.height"),
        ({"cameras": [{"width": 7680, "height": 7680}]}, "cameras.0.width"),
        ({"cameras": [{"width": "wide", "height": 720}]}, "cameras.0.width"),
        ({"cameras": [{"height": 720}]}, "cameras.0.width"),
        ({"cameras": ["1280x720"]}, "cameras.0.non_field_errors"),
        ({"cameras": GUIDE["cameras"], "years": 0}, "years"),
        ({"cameras": GUIDE["cameras"], "years": 11}, "years"),
        ({"cameras": GUIDE["cameras"], "max_concurrent_streams": 0}, "max_concurrent_streams"),
        ({"cameras": GUIDE["cameras"], "max_concurrent_streams": 9}, "max_concurrent_streams"),
    ],
)
def test_bad_input_is_a_400_with_field_errors(viewer_api, body, field):
    response = viewer_api.post(URL, body, format="json")
    assert response.status_code == 400, response.json()
    data = response.json()
    assert data["code"] == "INVALID"
    assert field in data["errors"], data


def test_not_json_object_is_a_400(viewer_api):
    response = viewer_api.post(URL, ["not", "an", "object"], format="json")
    assert response.status_code == 400


def test_needs_a_key(anon_api):
    assert anon_api.post(URL, GUIDE, format="json").status_code == 401


def test_r9_suspended_tenant_gets_403(admin_api, tenant):
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)
    response = admin_api.post(URL, GUIDE, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "TENANT_SUSPENDED"
