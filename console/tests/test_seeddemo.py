"""`manage.py seeddemo`: demo data for a first look; safe to run again."""

import datetime as dt
from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIRequestFactory

from console.api_auth import ApiKeyAuthentication
from console.management.commands import seeddemo
from console.models import ApiKey, Membership, Tenant, User, api_key_digest
from devices.models import Camera, FieldDevice
from licensing import selectors
from licensing.models import License

pytestmark = pytest.mark.django_db


def run() -> str:
    out = StringIO()
    call_command("seeddemo", stdout=out)
    return out.getvalue()


def snapshot() -> dict[str, int]:
    """Row counts of every model of the apps the demo touches."""
    return {
        m._meta.label: m._default_manager.count()
        for app in ("console", "devices", "licensing")
        for m in apps.get_app_config(app).get_models()
    }


def test_seeddemo_loads_tenants_users_devices_licenses_and_keys():
    output = run()
    assert set(Tenant.objects.values_list("slug", "language")) == {
        ("demo-mining", "zh-hans"),
        ("demo-ports", "en"),
    }
    staff = User.objects.get(email=seeddemo.STAFF_EMAIL)
    assert staff.is_superuser and staff.is_staff
    assert staff.check_password(seeddemo.STAFF_PASSWORD)
    mining = Tenant.objects.get(slug="demo-mining")
    owner = Membership.objects.get(tenant=mining, role="owner").user
    assert owner.check_password(seeddemo.OWNER_PASSWORD)
    viewer = Membership.objects.get(tenant=mining, role="viewer").user
    assert viewer.check_password(seeddemo.VIEWER_PASSWORD)
    # Every login is printed with its password.
    for email, password in [
        (staff.email, seeddemo.STAFF_PASSWORD),
        (owner.email, seeddemo.OWNER_PASSWORD),
        (viewer.email, seeddemo.VIEWER_PASSWORD),
    ]:
        assert f"{email} / {password}" in output

    # The guide's example device, R1: 1280×720 + 2 × 640×480 → 2 licenses.
    truck = FieldDevice.objects.get(tenant=mining, serial="haul_truck_01")
    assert sorted(truck.cameras.values_list("width", "height")) == [
        (640, 480),
        (640, 480),
        (1280, 720),
    ]
    statuses = {
        d.serial: selectors.device_licensing(d, licenses_valid=d.lic_valid).status
        for d in selectors.devices_with_license_counts(mining)
    }
    assert statuses == {
        "haul_truck_01": "licensed",
        "haul_truck_02": "under_licensed",
        "dozer_03": "unlicensed",
    }
    # A license expiring within 30 days, bound, so the reminders have something to say.
    soon = timezone.now() + dt.timedelta(days=30)
    assert License.objects.filter(
        tenant=mining, device__isnull=False, expires_at__lte=soon
    ).exists()
    # A spare, unbound license per tenant.
    assert License.objects.filter(tenant=mining, device__isnull=True).count() == 1


def test_printed_demo_api_keys_authenticate():
    output = run()
    for tenant in Tenant.objects.all():
        line = next(line for line in output.splitlines() if line.strip().startswith(tenant.slug))
        raw = line.split(":", 1)[1].strip()
        key = ApiKey.objects.get(digest=api_key_digest(raw))
        assert key.tenant == tenant and key.role == ApiKey.Role.ADMIN
        request = APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Bearer {raw}")
        principal, _key = ApiKeyAuthentication().authenticate(request)
        assert principal.tenant == tenant


def test_seeddemo_is_idempotent():
    first = run()
    before = snapshot()
    second = run()
    assert snapshot() == before
    assert "nothing created" in second.lower() or "未创建" in second
    # The same keys are printed again.
    keys = [line for line in first.splitlines() if "fc_demo_" in line]
    assert keys and all(line in second.splitlines() for line in keys)


def test_seeddemo_keeps_existing_users_passwords():
    run()
    owner = User.objects.get(email="owner@mining.demo.example.com")
    owner.set_password("changed by the owner")
    owner.save()
    run()
    owner.refresh_from_db()
    assert owner.check_password("changed by the owner")


def test_demo_key_made_under_another_secret_is_not_shown(settings):
    run()
    before = snapshot()
    settings.SECRET_KEY = "another secret for this test"
    output = run()
    assert snapshot() == before
    assert "fc_demo_" not in output
    assert "SECRET_KEY" in output


def test_seeddemo_cameras_stay_within_limits():
    run()
    assert Camera.objects.count() == 3 + 3 + 1 + 3 + 1


def test_seeddemo_builds_its_licenses_through_paid_orders_once():
    from billing.models import Order, Payment

    run()
    for slug in ("demo-mining", "demo-ports"):
        tenant = Tenant.objects.get(slug=slug)
        orders = Order.objects.filter(tenant=tenant)
        assert orders.count() == 2 and set(orders.values_list("status", flat=True)) == {"paid"}
        licenses = License.objects.filter(tenant=tenant)
        assert licenses.count() == sum(orders.values_list("quantity", flat=True))
        # Every demo license is linked to the order that paid for it.
        assert not licenses.filter(order_links__isnull=True).exists()
    before = (Order.objects.count(), Payment.objects.count(), License.objects.count())
    run()
    assert (Order.objects.count(), Payment.objects.count(), License.objects.count()) == before


def test_seeddemo_prints_the_logins_in_english_and_chinese():
    output = run()
    assert "Demo logins (email / password):" in output
    assert "演示账号（邮箱 / 密码）：" in output
    assert output.count(f"{seeddemo.STAFF_EMAIL} / {seeddemo.STAFF_PASSWORD}") == 2
