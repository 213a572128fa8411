"""R15: the events a change stores for webhooks, in its own transaction: bindings, device
service changes, the nightly expiry (per batch), control sessions, the renewal reminders
(`license.expiring`, once per reminder)."""

import datetime as dt
import json

import pytest
import time_machine
from django.utils import timezone
from standardwebhooks import Webhook

from console import webhooks
from console.models import WebhookDelivery, WebhookEvent
from console.tests.factories import (
    CockpitFactory,
    DeviceFactory,
    LicenseFactory,
    MembershipFactory,
    TenantFactory,
    UserFactory,
)
from console.timeutils import BUSINESS_TZ, start_of_business_day
from devices.models import Camera
from devices.services import control_sessions_end_lapsed
from licensing import reminders
from licensing.expiry import licenses_expire_due
from licensing.models import License, SentReminder
from licensing.services import control_acquire, license_bind, license_unbind

pytestmark = pytest.mark.django_db


@pytest.fixture
def listening(tenant, settings):
    settings.WEBHOOK_ALLOW_PRIVATE = True
    endpoint, _secret = webhooks.webhook_endpoint_create(
        tenant=tenant, url="https://127.0.0.1/hook", events=["*"]
    )
    return endpoint


@pytest.fixture
def device(tenant):
    device = DeviceFactory(tenant=tenant)
    Camera.objects.create(device=device, name="front", width=1280, height=720, slot=1)
    return device


def events(type_=None):
    rows = WebhookEvent.objects.order_by("created_at", "type")
    if type_:
        rows = rows.filter(type=type_)
    return [(e.type, e.data) for e in rows]


def test_binding_and_unbinding_tell_the_license_and_the_service_change(tenant, device, listening):
    lic = LicenseFactory(tenant=tenant)
    license_bind(tenant=tenant, license=lic, device=device)
    assert events("license.bound")[0][1]["license"] == lic.pk
    assert events("device.service_changed") == [
        (
            "device.service_changed",
            {"device": device.pk, "code": {"before": "NO_VALID_LICENSE", "after": "VALID"}},
        )
    ]
    license_unbind(tenant=tenant, license=lic)
    assert events("license.unbound")[0][1]["device"] == device.pk
    assert events("device.service_changed")[-1][1]["code"] == {
        "before": "VALID",
        "after": "NO_VALID_LICENSE",
    }


def test_no_endpoint_no_event(tenant, device):
    lic = LicenseFactory(tenant=tenant)
    license_bind(tenant=tenant, license=lic, device=device)
    assert not WebhookEvent.objects.exists()


def test_nightly_expiry_tells_each_tenant_once_per_date(tenant, other_tenant, device, listening):
    now = timezone.now()
    expired = [
        LicenseFactory(
            tenant=tenant,
            starts_at=now - dt.timedelta(days=400),
            expires_at=now - dt.timedelta(hours=1),
            device=device if n == 0 else None,
        )
        for n in range(3)
    ]
    LicenseFactory(
        tenant=other_tenant,
        starts_at=now - dt.timedelta(days=400),
        expires_at=now - dt.timedelta(hours=1),
    )
    run = licenses_expire_due(at=now, batch_size=2)
    assert run.expired == 4
    told = events("license.expired")
    assert sorted(pk for _t, data in told for pk in data["licenses"]) == [lic.pk for lic in expired]
    assert {data["expiry_date"] for _t, data in told} == {
        str(timezone.localdate(now - dt.timedelta(hours=1)))
    }
    assert events("device.service_changed") == [
        (
            "device.service_changed",
            {"device": device.pk, "code": {"before": "VALID", "after": "NO_VALID_LICENSE"}},
        )
    ]
    # the other tenant has no endpoint: nothing stored for it
    assert set(WebhookEvent.objects.values_list("tenant_id", flat=True)) == {tenant.pk}


def test_control_started_and_ended(tenant, device, listening):
    license_bind(tenant=tenant, license=LicenseFactory(tenant=tenant), device=device)
    cockpit = CockpitFactory(tenant=tenant)
    session, _created = control_acquire(tenant=tenant, device=device, cockpit_id=cockpit.pk)
    assert events("control.started")[0][1]["session"] == session.pk
    ended = control_sessions_end_lapsed(at=timezone.now() + dt.timedelta(hours=1))
    assert ended == 1
    assert events("control.ended")[0][1]["reason"] == "lapsed"


def test_a_camera_change_tells_the_service_change(tenant, device, listening, admin_api, owner):
    """R15: a camera added, changed or deleted through the API or the console page moves
    the device's service level: one `device.service_changed` event with it."""
    LicenseFactory(tenant=tenant, device=device)  # one license: 1280×720 fits, no more
    body = {"device": device.pk, "width": 1920, "height": 1080, "name": "wide"}
    response = admin_api.post("/api/v1/cameras/", body, format="json")
    assert response.status_code == 201
    camera_id = response.json()["id"]
    codes = [data["code"] for _type, data in events("device.service_changed")]
    assert codes[-1] == {"before": "VALID", "after": "DEGRADED"}
    patched = admin_api.patch(f"/api/v1/cameras/{camera_id}/", {"enabled": False}, format="json")
    assert patched.status_code == 200
    codes = [data["code"] for _type, data in events("device.service_changed")]
    assert codes[-1] == {"before": "DEGRADED", "after": "VALID"}
    # A change that does not move the level tells nothing.
    admin_api.patch(f"/api/v1/cameras/{camera_id}/", {"name": "wide angle"}, format="json")
    assert len(events("device.service_changed")) == len(codes)
    # The console page: re-enabled, the wide camera degrades the device again; deleting it
    # on the page restores full service, told once.
    admin_api.patch(f"/api/v1/cameras/{camera_id}/", {"enabled": True}, format="json")
    owner.post(f"/devices/{device.pk}/cameras/{camera_id}/delete/", {"confirmed": "1"})
    assert not device.cameras.filter(pk=camera_id).exists()
    codes = [data["code"] for _type, data in events("device.service_changed")]
    assert codes[-2:] == [
        {"before": "VALID", "after": "DEGRADED"},
        {"before": "DEGRADED", "after": "VALID"},
    ]


# --- license.expiring: R11's reminders, for webhooks ---------------------------------------------


def _cst(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BUSINESS_TZ)


def _expiring_on(tenant, day: dt.date, *, status=License.Status.ACTIVE) -> License:
    expires_at = start_of_business_day(day)  # R3: 00:00 CST of the expiry date
    return LicenseFactory(
        tenant=tenant,
        starts_at=expires_at - dt.timedelta(days=365),
        expires_at=expires_at,
        status=status,
    )


def test_license_expiring_is_recorded_once_per_reminder_for_its_tenant_only(
    settings, tenant, alice, other_tenant, charlie, monkeypatch, django_capture_on_commit_callbacks
):
    """R11 + R15 (CONTRACT: `license.expiring`, data `milestone`, `expiry_date`, `licenses`):
    each reminder the job sends records one event for its tenant, listing that tenant's
    licenses expiring on that date; re-runs record nothing more; a tenant whose endpoints do
    not want the type, or that has none, gets no event."""
    settings.WEBHOOK_ALLOW_PRIVATE = True
    sent = []

    def receiver(url, body, headers):
        sent.append((url, body, headers))
        return webhooks.AttemptResult(ok=True, status=204)

    monkeypatch.setattr(webhooks, "http_post", receiver)
    expiry, later = dt.date(2027, 3, 16), dt.date(2027, 3, 17)
    endpoint, secret = webhooks.webhook_endpoint_create(
        tenant=tenant, url="https://127.0.0.1/expiring", events=["license.expiring"]
    )
    mine = sorted(_expiring_on(tenant, expiry).pk for _ in range(2))
    _expiring_on(tenant, expiry, status=License.Status.REFUNDED)  # never counts again (R10)
    mine_later = _expiring_on(tenant, later)
    # Another tenant with licenses on the same date and an endpoint that wants other events.
    webhooks.webhook_endpoint_create(
        tenant=other_tenant, url="https://127.0.0.1/other", events=["license.expired"]
    )
    _expiring_on(other_tenant, expiry)
    # A third tenant listening to everything: its own event, its own license only.
    third = TenantFactory(name="Third Quarry", slug="third")
    MembershipFactory(user=UserFactory(email="tom@example.com"), tenant=third, role="owner")
    webhooks.webhook_endpoint_create(tenant=third, url="https://127.0.0.1/third", events=["*"])
    theirs = _expiring_on(third, expiry)

    def run(at):
        with time_machine.travel(at, tick=False), django_capture_on_commit_callbacks(execute=True):
            reminders.reminders_send_due()

    def expiring():
        return list(
            WebhookEvent.objects.filter(type="license.expiring")
            .order_by("created_at", "tenant_id", "data__expiry_date")
            .values_list("tenant_id", "data")
        )

    # 2027-03-09, 09:00 CST: 7 days before 03-16 (milestone 7), 8 before 03-17 (milestone 30).
    run(_cst(2027, 3, 9, 9, 0))
    assert sorted(expiring(), key=lambda row: (row[0], row[1]["expiry_date"])) == sorted(
        [
            (tenant.pk, {"milestone": 7, "expiry_date": "2027-03-16", "licenses": mine}),
            (
                tenant.pk,
                {"milestone": 30, "expiry_date": "2027-03-17", "licenses": [mine_later.pk]},
            ),
            (third.pk, {"milestone": 7, "expiry_date": "2027-03-16", "licenses": [theirs.pk]}),
        ],
        key=lambda row: (row[0], row[1]["expiry_date"]),
    )
    assert SentReminder.objects.filter(status=SentReminder.Status.SENT).count() == 4
    assert not WebhookEvent.objects.filter(tenant=other_tenant).exists()
    # One delivery per event and endpoint, each to its own tenant's endpoint.
    deliveries = WebhookDelivery.objects.filter(event__type="license.expiring")
    assert sorted(deliveries.values_list("endpoint__tenant_id", "event__tenant_id")) == sorted(
        [(tenant.pk, tenant.pk), (tenant.pk, tenant.pk), (third.pk, third.pk)]
    )

    # The body as delivered: Standard Webhooks, with the contract's fields.
    to_mine = [s for s in sent if s[0] == endpoint.url]
    assert len(to_mine) == 2
    with time_machine.travel(_cst(2027, 3, 9, 9, 0), tick=False):
        for _url, body, headers in to_mine:
            payload = Webhook(secret).verify(body, headers)
            assert set(payload) == {"id", "type", "timestamp", "data"}
            assert payload["type"] == "license.expiring"
            assert payload["id"] == headers["webhook-id"]
            assert set(payload["data"]) == {"milestone", "expiry_date", "licenses"}
    assert {json.loads(body)["data"]["expiry_date"] for _u, body, _h in to_mine} == {
        "2027-03-16",
        "2027-03-17",
    }

    # A re-run the same day records nothing more.
    run(_cst(2027, 3, 9, 9, 30))
    assert len(expiring()) == 3

    # 03-10: 7 days before 03-17, one new reminder, one new event; re-run: nothing more.
    run(_cst(2027, 3, 10, 9, 0))
    run(_cst(2027, 3, 10, 11, 0))
    assert [(t, d["milestone"], d["expiry_date"]) for t, d in expiring()[3:]] == [
        (tenant.pk, 7, "2027-03-17")
    ]

    # 03-15: 1 day before 03-16 (2 before 03-17: its milestone 7 was told already).
    run(_cst(2027, 3, 15, 9, 0))
    assert sorted((t, d["milestone"], d["expiry_date"]) for t, d in expiring()[4:]) == [
        (tenant.pk, 1, "2027-03-16"),
        (third.pk, 1, "2027-03-16"),
    ]
    # Per tenant, one event per reminder it was sent.
    for who in (tenant, third, other_tenant):
        told = WebhookEvent.objects.filter(tenant=who, type="license.expiring").count()
        reminded = SentReminder.objects.filter(tenant=who, status="sent").count()
        assert told == (reminded if who != other_tenant else 0)
