"""POST/GET /api/v1/orders/ (CONTRACT.md): orders, roles, tenancy and Idempotency-Key."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from billing import services
from billing.models import IdempotencyKey, Order, OrderLicense
from billing.tests.utils import cst, paid_new_order
from console.errors import Forbidden
from console.models import AuditEvent, Tenant
from console.tests.factories import LicenseFactory
from licensing.models import License

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


URL = "/api/v1/orders/"
NEW = {"kind": "new", "quantity": 2, "years": 1}


def post(client, body, key="key-1"):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(URL, body, format="json", **headers)


# --- creating orders ---------------------------------------------------------------------


def test_r2_new_order_is_pending_at_the_contract_price(admin_api, tenant):
    response = post(admin_api, NEW)
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["kind"] == "new"
    assert data["quantity"] == 2
    assert data["years"] == 1
    assert data["unit_price"] == "3600.00"
    assert data["total"] == "7200.00"
    assert data["currency"] == "CNY"
    assert data["status"] == "pending_payment"
    assert data["licenses"] == []
    assert data["receipt_url"] is None
    order = Order.objects.get(pk=data["id"])
    assert order.tenant == tenant
    assert order.total == Decimal("7200.00")
    assert order.created_by.startswith("api-key:")
    assert AuditEvent.objects.filter(action="order.created", target_id=str(order.pk)).exists()


def test_r2_unit_price_is_a_snapshot_at_order_time(admin_api, tenant):
    tenant.contract_unit_price = Decimal("2999.99")
    tenant.save()
    data = post(admin_api, {"kind": "new", "quantity": 3, "years": 2}).json()
    assert data["unit_price"] == "2999.99"
    assert data["total"] == "17999.94"
    tenant.contract_unit_price = Decimal("5000.00")
    tenant.save()
    assert Order.objects.get(pk=data["id"]).total == Decimal("17999.94")


@pytest.mark.parametrize("client_fixture", ["viewer_api", "operator_api"])
def test_only_an_admin_key_may_buy(request, client_fixture):
    response = post(request.getfixturevalue(client_fixture), NEW)
    assert response.status_code == 403
    assert not Order.objects.exists()


def test_needs_a_key(anon_api):
    assert post(anon_api, NEW).status_code == 401


def test_r9_suspended_tenant_cannot_buy(admin_api, tenant):
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)
    response = post(admin_api, NEW)
    assert response.status_code == 403
    assert response.json()["code"] == "TENANT_SUSPENDED"
    assert not Order.objects.exists()


def test_r9_service_refuses_a_suspended_tenant_too(tenant):
    Tenant.objects.filter(pk=tenant.pk).update(status=Tenant.Status.SUSPENDED)
    tenant.refresh_from_db()
    with pytest.raises(Forbidden) as exc:
        services.order_create(tenant=tenant, kind="new", quantity=1, years=1)
    assert exc.value.code == "TENANT_SUSPENDED"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kind": "new", "years": 1}, "quantity"),
        ({"kind": "new", "quantity": 0, "years": 1}, "quantity"),
        ({"kind": "new", "quantity": -2, "years": 1}, "quantity"),
        ({"kind": "new", "quantity": 100_001, "years": 1}, "quantity"),
        ({"kind": "new", "quantity": 1, "years": 0}, "years"),
        ({"kind": "new", "quantity": 1, "years": 11}, "years"),
        ({"kind": "new", "quantity": 1}, "years"),
        ({"kind": "used", "quantity": 1, "years": 1}, "kind"),
        ({"kind": "new", "quantity": 1, "years": 1, "licenses": [1]}, "licenses"),
        ({"kind": "renewal", "years": 1}, "licenses"),
        ({"kind": "renewal", "licenses": [], "years": 1}, "licenses"),
        ({"kind": "renewal", "licenses": ["x"], "years": 1}, "licenses.0"),
    ],
)
def test_bad_body_is_a_400_and_creates_nothing(admin_api, body, field):
    response = post(admin_api, body)
    assert response.status_code == 400, response.json()
    assert field in response.json()["errors"], response.json()
    assert not Order.objects.exists()
    assert not IdempotencyKey.objects.exists()


# --- idempotency -------------------------------------------------------------------------


def test_idempotency_key_is_required(admin_api):
    response = post(admin_api, NEW, key=None)
    assert response.status_code == 400
    assert response.json()["code"] == "IDEMPOTENCY_KEY_REQUIRED"
    assert not Order.objects.exists()


def test_blank_or_overlong_idempotency_key_is_refused(admin_api):
    assert post(admin_api, NEW, key="  ").json()["code"] == "IDEMPOTENCY_KEY_REQUIRED"
    response = post(admin_api, NEW, key="k" * 256)
    assert response.status_code == 400
    assert response.json()["code"] == "IDEMPOTENCY_KEY_INVALID"
    assert not Order.objects.exists()


def test_same_key_same_body_returns_the_same_order(admin_api):
    first = post(admin_api, NEW)
    second = post(admin_api, {"years": 1, "quantity": 2, "kind": "new"})  # key order differs
    assert first.status_code == 201
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert Order.objects.count() == 1


def test_same_key_other_body_is_a_409(admin_api):
    first = post(admin_api, NEW).json()
    response = post(admin_api, {**NEW, "quantity": 3})
    assert response.status_code == 409
    assert response.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert response.json()["order"] == first["id"]
    assert Order.objects.count() == 1


def test_keys_are_scoped_to_the_tenant(admin_api, other_api, tenant, other_tenant):
    mine = post(admin_api, NEW, key="shared").json()
    theirs = post(other_api, NEW, key="shared")
    assert theirs.status_code == 201
    assert theirs.json()["id"] != mine["id"]
    assert Order.objects.filter(tenant=tenant).count() == 1
    assert Order.objects.filter(tenant=other_tenant).count() == 1


def test_a_refused_request_does_not_use_up_its_key(admin_api):
    assert post(admin_api, {"kind": "new", "years": 1}, key="k").status_code == 400
    assert post(admin_api, NEW, key="k").status_code == 201


def test_replay_after_payment_shows_the_current_order(admin_api):
    order_id = post(admin_api, NEW).json()["id"]
    services.order_confirm_payment(order=order_id, reference="B1", actor="test")
    again = post(admin_api, NEW)
    assert again.status_code == 200
    assert again.json()["status"] == "paid"
    assert len(again.json()["licenses"]) == 2
    assert License.objects.count() == 2


def test_keys_are_kept_at_least_24_hours(admin_api):
    post(admin_api, NEW)
    now = timezone.now()
    # Even when asked for less, the purge keeps the last 24 hours (CONTRACT.md).
    assert services.idempotency_keys_purge(older_than=dt.timedelta(hours=1), now=now) == 0
    assert services.idempotency_keys_purge(now=now + dt.timedelta(hours=23)) == 0
    assert post(admin_api, NEW).status_code == 200
    assert services.idempotency_keys_purge(now=now + dt.timedelta(days=8)) == 1
    assert not IdempotencyKey.objects.exists()
    assert Order.objects.count() == 1  # purging a key never deletes its order


@pytest.mark.django_db(transaction=True)
def test_same_key_concurrently_creates_one_order_postgres(postgres_only, tenant):
    """Ten clients retry one key at the same moment: the unique (tenant, key) constraint
    lets one order through; the others get that order back."""
    barrier = threading.Barrier(10)
    results, errors = [], []

    def worker():
        try:
            barrier.wait()
            order, created = services.order_create_idempotent(
                tenant=tenant,
                idempotency_key="race",
                body=NEW,
                create=lambda: services.order_create(
                    tenant=tenant, kind="new", quantity=2, years=1
                ),
            )
            results.append((order.pk, created))
        except Exception as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len({pk for pk, _created in results}) == 1
    assert sum(created for _pk, created in results) == 1
    assert Order.objects.count() == 1
    assert IdempotencyKey.objects.count() == 1


# --- renewals ------------------------------------------------------------------------------


def test_r4_renewal_order_names_the_licenses(admin_api, tenant):
    order = paid_new_order(tenant, quantity=3)
    ids = list(order.licenses.order_by("id").values_list("id", flat=True))
    response = post(admin_api, {"kind": "renewal", "licenses": ids[:2], "years": 2})
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["kind"] == "renewal"
    assert data["quantity"] == 2
    assert data["licenses"] == ids[:2]
    assert data["total"] == "14400.00"
    assert OrderLicense.objects.filter(order_id=data["id"]).count() == 2


def test_renewal_of_another_tenants_or_unknown_license_is_a_400(admin_api, other_tenant):
    theirs = LicenseFactory(tenant=other_tenant)
    for ids in ([theirs.pk], [999_999]):
        response = post(admin_api, {"kind": "renewal", "licenses": ids, "years": 1}, key=str(ids))
        assert response.status_code == 400
        assert "licenses" in response.json()["errors"]
    assert not Order.objects.exists()


def test_renewal_naming_a_license_twice_is_a_400(admin_api, tenant):
    lic = LicenseFactory(tenant=tenant)
    response = post(admin_api, {"kind": "renewal", "licenses": [lic.pk, lic.pk], "years": 1})
    assert response.status_code == 400


def test_r4_renewal_of_an_expired_license_is_refused_at_order_time(admin_api, tenant):
    with time_machine.travel(cst(2026, 3, 15, 10), tick=False):
        order = paid_new_order(tenant, quantity=1)
    lic = order.licenses.get()
    with time_machine.travel(cst(2027, 3, 16, 0, 0, 1), tick=False):
        response = post(admin_api, {"kind": "renewal", "licenses": [lic.pk], "years": 1})
    assert response.status_code == 409
    assert response.json()["code"] == "LICENSE_EXPIRED"
    assert "buy new licenses" in response.json()["detail"]
    assert response.json()["licenses"] == [lic.pk]
    assert Order.objects.count() == 1


def test_renewal_of_a_refunded_license_is_refused(admin_api, tenant):
    lic = LicenseFactory(tenant=tenant, status=License.Status.REFUNDED)
    response = post(admin_api, {"kind": "renewal", "licenses": [lic.pk], "years": 1})
    assert response.status_code == 409
    assert response.json()["code"] == "LICENSE_REFUNDED"


# --- reading -------------------------------------------------------------------------------


def test_list_and_detail_for_any_role(viewer_api, admin_api, tenant, other_tenant):
    mine = post(admin_api, NEW).json()
    paid_new_order(other_tenant, quantity=1)
    listed = viewer_api.get(URL)
    assert listed.status_code == 200
    assert [o["id"] for o in listed.json()["results"]] == [mine["id"]]
    detail = viewer_api.get(f"{URL}{mine['id']}/")
    assert detail.status_code == 200
    assert detail.json()["total"] == "7200.00"


def test_list_filters_by_status_and_kind(viewer_api, tenant):
    pending = services.order_create(tenant=tenant, kind="new", quantity=1, years=1)
    paid = paid_new_order(tenant, quantity=1)
    ids = [o["id"] for o in viewer_api.get(URL, {"status": "paid"}).json()["results"]]
    assert ids == [paid.pk]
    ids = [o["id"] for o in viewer_api.get(URL, {"status": "pending_payment"}).json()["results"]]
    assert ids == [pending.pk]
    assert viewer_api.get(URL, {"kind": "renewal"}).json()["results"] == []
    assert viewer_api.get(URL, {"status": "lost"}).status_code == 400


def test_it_validates_ownership(other_api, tenant):
    order = paid_new_order(tenant, quantity=1)
    assert other_api.get(f"{URL}{order.pk}/").status_code == 404
    assert other_api.get(URL).json()["results"] == []


def test_paid_order_shows_licenses_reference_and_receipt(viewer_api, tenant):
    order = paid_new_order(tenant, quantity=2)
    data = viewer_api.get(f"{URL}{order.pk}/").json()
    assert data["status"] == "paid"
    assert data["payment_reference"] == "BANK-REF-1"
    assert sorted(data["licenses"]) == sorted(order.licenses.values_list("id", flat=True))
    assert data["receipt_url"].endswith(f"/orders/{order.pk}/receipt/")
    assert data["paid_at"] is not None
