"""The console at fleet size (issue 12): devices, licenses and orders lists paginated by
50, searched, filtered and sorted with the state in the URL, a query count that does not
grow with the data, another tenant's rows never listed; urgency marks with the days left in
both languages; the dashboard's figures on a known data set."""

import datetime as dt
import re

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from billing.models import Order
from console.tests.factories import CameraFactory, DeviceFactory, LicenseFactory
from console.timeutils import BUSINESS_TZ
from licensing import rules

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def cst(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=BUSINESS_TZ)


def devices_listed(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-device="(\d+)"', html)]


def licenses_listed(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-license="(\d+)"', html)]


def orders_listed(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-order="(\d+)"', html)]


def make_order(tenant, i: int, **kwargs) -> Order:
    values = {
        "tenant": tenant,
        "kind": Order.Kind.NEW,
        "quantity": 1,
        "years": 1,
        "unit_price": "3600.00",
        "total": "3600.00",
    }
    values.update(kwargs)
    return Order.objects.create(**values)


def fleet(tenant, n: int) -> None:
    """n devices (a third licensed, a third under-licensed, a third unlicensed), with
    cameras, 2n licenses (half bound) and n orders."""
    for i in range(n):
        device = DeviceFactory(tenant=tenant, serial=f"dev_{i:03d}", name=f"Machine {i}")
        CameraFactory(device=device, width=1920, height=1080)  # 2.25 → 2 licenses
        for _b in range(i % 3):
            LicenseFactory(tenant=tenant, device=device)
        LicenseFactory(tenant=tenant)
        make_order(tenant, i)


# --- devices ----------------------------------------------------------------------------------


def test_devices_paginate_by_fifty_and_keep_the_filters_in_the_links(owner, tenant):
    for i in range(55):
        DeviceFactory(tenant=tenant, serial=f"truck{i:02d}", name="Haul truck")
    html = owner.get("/devices/?q=truck&sort=-serial").content.decode()
    assert len(devices_listed(html)) == 50
    assert "Page 1 of 2 (55 in all)" in html
    assert 'href="?q=truck&amp;sort=-serial&amp;page=2"' in html
    assert 'value="-serial" selected' in html
    second = owner.get("/devices/?q=truck&sort=-serial&page=2").content.decode()
    assert len(devices_listed(second)) == 5
    assert "truck00" in second  # descending: the smallest serial comes last


def test_devices_search_serial_and_name(owner, tenant):
    truck = DeviceFactory(tenant=tenant, serial="truck01", name="Haul truck")
    crane = DeviceFactory(tenant=tenant, serial="crane01", name="Quay crane")
    assert devices_listed(owner.get("/devices/?q=TRUCK").content.decode()) == [truck.pk]
    assert devices_listed(owner.get("/devices/?q=quay").content.decode()) == [crane.pk]
    html = owner.get("/devices/?q=nothing").content.decode()
    assert devices_listed(html) == [] and "No device matches this search." in html


def test_devices_sort(owner, tenant):
    a = DeviceFactory(tenant=tenant, serial="a1", name="Zulu")
    b = DeviceFactory(tenant=tenant, serial="b1", name="Alpha")
    assert devices_listed(owner.get("/devices/").content.decode()) == [a.pk, b.pk]
    assert devices_listed(owner.get("/devices/?sort=name").content.decode()) == [b.pk, a.pk]
    assert devices_listed(owner.get("/devices/?sort=-serial").content.decode()) == [b.pk, a.pk]
    assert devices_listed(owner.get("/devices/?sort=bogus").content.decode()) == [a.pk, b.pk]


def test_devices_filter_by_status(owner, tenant):
    licensed = DeviceFactory(tenant=tenant, serial="licensed")
    under = DeviceFactory(tenant=tenant, serial="under")
    unlicensed = DeviceFactory(tenant=tenant, serial="unlicensed")
    for device in (licensed, under, unlicensed):
        CameraFactory(device=device, width=1920, height=1080)  # 2 licenses required
    LicenseFactory.create_batch(2, tenant=tenant, device=licensed)
    LicenseFactory(tenant=tenant, device=under)
    for status, device in (
        (rules.LICENSED, licensed),
        (rules.UNDER_LICENSED, under),
        (rules.UNLICENSED, unlicensed),
    ):
        html = owner.get(f"/devices/?status={status}").content.decode()
        assert devices_listed(html) == [device.pk]
        assert f'value="{status}" selected' in html


def test_another_tenants_devices_are_never_listed(owner, tenant, other_tenant):
    mine = DeviceFactory(tenant=tenant, serial="mine")
    theirs = DeviceFactory(tenant=other_tenant, serial="mine2")
    LicenseFactory(tenant=other_tenant, device=theirs)
    for query in ("", "?q=mine", "?status=unlicensed", "?status=licensed"):
        assert theirs.pk not in devices_listed(owner.get(f"/devices/{query}").content.decode())
    assert devices_listed(owner.get("/devices/?q=mine").content.decode()) == [mine.pk]


# --- licenses ---------------------------------------------------------------------------------


def test_licenses_search_by_id_and_filter_by_device_serial(owner, tenant):
    truck = DeviceFactory(tenant=tenant, serial="truck01")
    on_truck = LicenseFactory(tenant=tenant, device=truck)
    other = LicenseFactory(tenant=tenant)
    assert licenses_listed(owner.get(f"/licenses/?q=L-{other.pk}").content.decode()) == [other.pk]
    assert licenses_listed(owner.get(f"/licenses/?q={on_truck.pk}").content.decode()) == [
        on_truck.pk
    ]
    assert licenses_listed(owner.get("/licenses/?q=xyz").content.decode()) == []
    assert licenses_listed(owner.get("/licenses/?serial=TRUCK01").content.decode()) == [on_truck.pk]


def test_licenses_expiry_window_counts_shanghai_calendar_days(owner, tenant, alice):
    """Within 7 days means an expiry date at most 7 calendar days on (R11's count)."""
    now = cst(2027, 1, 10, 12)
    seven = LicenseFactory(
        tenant=tenant, starts_at=now - dt.timedelta(days=9), expires_at=cst(2027, 1, 17)
    )
    eight = LicenseFactory(
        tenant=tenant, starts_at=now - dt.timedelta(days=9), expires_at=cst(2027, 1, 18)
    )
    ninety = LicenseFactory(
        tenant=tenant, starts_at=now - dt.timedelta(days=9), expires_at=cst(2027, 4, 10)
    )
    with time_machine.travel(now, tick=False):
        owner.force_login(alice)
        assert licenses_listed(owner.get("/licenses/?expiring=7").content.decode()) == [seven.pk]
        assert licenses_listed(owner.get("/licenses/?expiring=30").content.decode()) == [
            seven.pk,
            eight.pk,
        ]
        assert ninety.pk in licenses_listed(owner.get("/licenses/?expiring=90").content.decode())


def test_licenses_sort_and_filters_in_the_page_links(owner, tenant):
    LicenseFactory.create_batch(51, tenant=tenant)
    html = owner.get("/licenses/?sort=-id&status=active").content.decode()
    ids = licenses_listed(html)
    assert ids == sorted(ids, reverse=True)
    assert 'href="?sort=-id&amp;status=active&amp;page=2"' in html


def test_another_tenants_licenses_are_never_listed(owner, tenant, other_tenant):
    theirs = LicenseFactory(tenant=other_tenant)
    for query in ("", f"?q={theirs.pk}", "?device=none", "?expiring=90"):
        assert theirs.pk not in licenses_listed(owner.get(f"/licenses/{query}").content.decode())


def test_bind_by_serial_from_the_list(owner, tenant, other_tenant):
    truck = DeviceFactory(tenant=tenant, serial="truck01")
    DeviceFactory(tenant=other_tenant, serial="theirs")
    lic = LicenseFactory(tenant=tenant)
    response = owner.post(f"/licenses/{lic.pk}/bind/", {"serial": "theirs"}, follow=True)
    assert "No device with this serial in your organisation." in response.content.decode()
    lic.refresh_from_db()
    assert lic.device_id is None
    owner.post(f"/licenses/{lic.pk}/bind/", {"serial": "truck01"})
    lic.refresh_from_db()
    assert lic.device_id == truck.pk


# --- orders -----------------------------------------------------------------------------------


def test_orders_search_filter_sort_and_pages(owner, tenant, other_tenant):
    orders = [make_order(tenant, i, total=f"{3600 * (i + 1)}.00") for i in range(52)]
    renewal = make_order(tenant, 99, kind=Order.Kind.RENEWAL)
    theirs = make_order(other_tenant, 0)
    html = owner.get("/orders/?kind=new&sort=-total").content.decode()
    listed = orders_listed(html)
    assert len(listed) == 50 and listed[0] == orders[-1].pk and renewal.pk not in listed
    assert 'href="?kind=new&amp;sort=-total&amp;page=2"' in html
    assert orders_listed(owner.get("/orders/?kind=renewal").content.decode()) == [renewal.pk]
    assert orders_listed(owner.get(f"/orders/?q=%23{orders[3].pk}").content.decode()) == [
        orders[3].pk
    ]
    ref = orders[4].transfer_reference
    assert orders_listed(owner.get(f"/orders/?q={ref.lower()}").content.decode()) == [orders[4].pk]
    assert theirs.pk not in orders_listed(owner.get(f"/orders/?q={theirs.pk}").content.decode())


# --- query counts do not grow with the data ---------------------------------------------------

PAGES = [
    "/",
    "/devices/",
    "/devices/?q=dev&sort=-name",
    "/devices/?status=under_licensed",
    "/licenses/",
    "/licenses/?expiring=90&sort=-expires",
    "/licenses/?device=none",
    "/orders/",
    "/orders/?status=pending_payment&sort=total",
]


def _queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


def test_query_counts_are_the_same_for_3_and_30_of_everything(owner, tenant):
    fleet(tenant, 3)
    small = {url: _queries(owner, url) for url in PAGES}
    fleet_more = 27
    for i in range(fleet_more):
        device = DeviceFactory(tenant=tenant, serial=f"more_{i:03d}")
        CameraFactory(device=device, width=1920, height=1080)
        LicenseFactory(tenant=tenant, device=device)
        LicenseFactory(tenant=tenant)
        make_order(tenant, i)
    large = {url: _queries(owner, url) for url in PAGES}
    assert large == small


# --- urgency ----------------------------------------------------------------------------------


def _urgency_data(tenant):
    now = cst(2027, 1, 10, 12)
    device = DeviceFactory(tenant=tenant, serial="truck01")
    one = LicenseFactory(
        tenant=tenant,
        device=device,
        starts_at=now - dt.timedelta(days=300),
        expires_at=cst(2027, 1, 11),
    )
    seven = LicenseFactory(
        tenant=tenant,
        device=device,
        starts_at=now - dt.timedelta(days=300),
        expires_at=cst(2027, 1, 17),
    )
    thirty = LicenseFactory(
        tenant=tenant, starts_at=now - dt.timedelta(days=300), expires_at=cst(2027, 2, 9)
    )
    later = LicenseFactory(
        tenant=tenant, starts_at=now - dt.timedelta(days=300), expires_at=cst(2027, 2, 10)
    )
    return now, device, one, seven, thirty, later


def _row(html: str, lic) -> str:
    match = re.search(rf'<tr data-license="{lic.pk}"[^>]*>(.*?)</tr>', html, re.S)
    assert match
    return match.group(0)


def test_urgency_marks_on_the_list_device_page_and_dashboard(client, alice, tenant):
    now, device, one, seven, thirty, later = _urgency_data(tenant)
    with time_machine.travel(now, tick=False):
        client.force_login(alice)
        html = client.get("/licenses/").content.decode()
        assert "urgency-urgent" in _row(html, one) and "1 day left" in _row(html, one)
        assert "urgency-urgent" in _row(html, seven) and "7 days left" in _row(html, seven)
        assert "urgency-soon" in _row(html, thirty) and "30 days left" in _row(html, thirty)
        assert "urgency" not in _row(html, later) and "31 days left" in _row(html, later)
        detail = client.get(f"/devices/{device.pk}/").content.decode()
        assert "1 day left" in detail and "7 days left" in detail
        assert detail.count("urgency-urgent") == 2
        dashboard = client.get("/").content.decode()
        soonest = dashboard[dashboard.index('id="expiring-soonest"') :]
        assert "1 day left" in soonest and "urgency-urgent" in soonest
        assert "urgency-soon" in soonest


def test_urgency_in_chinese(client, alice, tenant, settings):
    now, _device, one, seven, _thirty, _later = _urgency_data(tenant)
    settings.LANGUAGE_CODE = "zh-hans"
    with time_machine.travel(now, tick=False), translation.override("zh-hans"):
        client.force_login(alice)
        client.cookies["django_language"] = "zh-hans"
        html = client.get("/licenses/").content.decode()
    assert "剩余 1 天" in _row(html, one)
    assert "剩余 7 天" in _row(html, seven)


# --- dashboard --------------------------------------------------------------------------------


def test_dashboard_figures_on_a_known_data_set(client, alice, tenant, other_tenant):
    now = cst(2027, 1, 10, 12)
    start = now - dt.timedelta(days=300)
    licensed = DeviceFactory(tenant=tenant, serial="licensed")
    under = DeviceFactory(tenant=tenant, serial="under")
    DeviceFactory(tenant=tenant, serial="unlicensed")
    for device in (licensed, under):
        CameraFactory(device=device, width=1920, height=1080)  # 2 licenses required
    # Valid: 2 bound to licensed (one expiring in 5 days), 1 bound to under, 2 unbound
    # (one expiring in 20 days, one in March); 1 expired, 1 refunded.
    LicenseFactory(tenant=tenant, device=licensed, starts_at=start, expires_at=cst(2027, 1, 15))
    LicenseFactory(tenant=tenant, device=licensed, starts_at=start, expires_at=cst(2027, 6, 1))
    LicenseFactory(tenant=tenant, device=under, starts_at=start, expires_at=cst(2027, 12, 1))
    LicenseFactory(tenant=tenant, starts_at=start, expires_at=cst(2027, 1, 30))
    LicenseFactory(tenant=tenant, starts_at=start, expires_at=cst(2027, 3, 3))
    LicenseFactory(tenant=tenant, starts_at=start, expires_at=cst(2027, 1, 1))
    LicenseFactory(tenant=tenant, starts_at=start, expires_at=cst(2027, 5, 1), status="refunded")
    LicenseFactory(tenant=other_tenant, starts_at=start, expires_at=cst(2027, 1, 15))
    with time_machine.travel(now, tick=False):
        client.force_login(alice)
        response = client.get("/")
    ctx = response.context
    stats = ctx["stats"]
    assert (stats.valid, stats.bound, stats.unbound) == (5, 3, 2)
    assert (stats.expiring_30, stats.expiring_7, stats.expired) == (2, 1, 1)
    assert ctx["devices_total"] == 3
    assert (ctx["devices_licensed"], ctx["devices_under_licensed"], ctx["devices_unlicensed"]) == (
        1,
        1,
        1,
    )
    bars = {bar["month"].strftime("%Y-%m"): bar["count"] for bar in ctx["chart"]["bars"]}
    assert len(bars) == 12 and next(iter(bars)) == "2027-01" and list(bars)[-1] == "2027-12"
    assert bars["2027-01"] == 2 and bars["2027-03"] == 1 and bars["2027-06"] == 1
    assert bars["2027-12"] == 1 and bars["2027-05"] == 0
    html = response.content.decode()
    assert 'id="expiry-chart"' in html and "<script" not in html
    assert next(row["license"].expires_at for row in ctx["soonest"]) == cst(2027, 1, 15)
    assert 'action="/orders/renew/"' in html
    # Everything done but the API key: the checklist still shows, with that step open.
    assert [item["done"] for item in ctx["checklist"]] == [True, True, False]


def test_a_new_tenant_sees_the_checklist_and_next_steps(owner, tenant):
    html = owner.get("/").content.decode()
    assert 'id="getting-started"' in html
    assert 'href="/devices/"' in html and 'href="/orders/new/"' in html and 'href="/keys/"' in html


def test_one_click_renewal_from_the_dashboard_places_a_renewal_order(owner, tenant):
    lic = LicenseFactory(tenant=tenant, expires_at=timezone.now() + dt.timedelta(days=5))
    html = owner.get("/").content.decode()
    key = re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1)
    response = owner.post(
        "/orders/renew/", {"licenses": [lic.pk], "years": 1, "idempotency_key": key}
    )
    assert response.status_code == 302
    order = Order.objects.get(tenant=tenant)
    assert order.kind == Order.Kind.RENEWAL and list(order.licenses.all()) == [lic]


def test_viewer_sees_no_renewal_button(viewer, tenant):
    LicenseFactory(tenant=tenant, expires_at=timezone.now() + dt.timedelta(days=5))
    assert 'action="/orders/renew/"' not in viewer.get("/").content.decode()
