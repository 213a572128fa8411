"""Cockpits and remote control in the console: managing cockpits, who drives what now with
the lease's time left, ending a session (owners and admins, audited, confirmed first), a
device's session history and its hours under remote control per day."""

import datetime as dt

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from console.models import AuditEvent, Membership
from console.tests.factories import CockpitFactory, DeviceFactory, MembershipFactory, UserFactory
from console.timeutils import start_of_business_day
from devices.models import ControlSession, RemoteCockpit
from licensing.session_views import usage_by_day

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def open_session(device, cockpit, *, started=None, seconds=30):
    started = started or timezone.now()
    return ControlSession.objects.create(
        device=device,
        cockpit=cockpit,
        started_at=started,
        lease_expires_at=started + dt.timedelta(seconds=seconds),
    )


@pytest.fixture
def device(tenant):
    return DeviceFactory(tenant=tenant, serial="truck_01")


@pytest.fixture
def cockpit(tenant):
    return CockpitFactory(tenant=tenant, name="Cab A")


def test_owner_adds_renames_and_deletes_a_cockpit(owner, tenant):
    assert owner.post("/cockpits/", {"name": "  Station 1 "}).status_code == 302
    cockpit = RemoteCockpit.objects.get(tenant=tenant)
    assert cockpit.name == "Station 1"
    assert owner.post(f"/cockpits/{cockpit.pk}/edit/", {"name": "Station 2"}).status_code == 302
    cockpit.refresh_from_db()
    assert cockpit.name == "Station 2"
    confirm = owner.get(f"/cockpits/{cockpit.pk}/delete/")
    assert confirm.status_code == 200 and b"Station 2" in confirm.content
    assert RemoteCockpit.objects.filter(pk=cockpit.pk).exists()
    assert owner.post(f"/cockpits/{cockpit.pk}/delete/").status_code == 302
    assert not RemoteCockpit.objects.exists()
    assert set(
        AuditEvent.objects.filter(tenant=tenant, action__startswith="cockpit.").values_list(
            "action", flat=True
        )
    ) == {"cockpit.created", "cockpit.updated", "cockpit.deleted"}


def test_bad_cockpit_name_is_a_form_error(owner, tenant):
    response = owner.post("/cockpits/", {"name": "   "})
    assert response.status_code == 400 and b"errorlist" in response.content
    assert not RemoteCockpit.objects.exists()


def test_viewer_reads_cockpits_and_sessions_but_changes_nothing(viewer, device, cockpit):
    session = open_session(device, cockpit)
    page = viewer.get("/cockpits/")
    assert page.status_code == 200 and b"Cab A" in page.content and b"truck_01" in page.content
    assert b"Add the cockpit" not in page.content
    assert viewer.post("/cockpits/", {"name": "X"}).status_code == 403
    assert viewer.post(f"/cockpits/{cockpit.pk}/edit/", {"name": "X"}).status_code == 403
    assert viewer.post(f"/cockpits/{cockpit.pk}/delete/").status_code == 403
    assert viewer.post(f"/control/{session.pk}/end/").status_code == 403
    live = viewer.get("/control/")
    assert live.status_code == 200 and b"End the session" not in live.content
    session.refresh_from_db()
    assert session.ended_at is None
    assert RemoteCockpit.objects.get().name == "Cab A"


def test_live_view_shows_the_lease_time_left(owner, device, cockpit):
    with time_machine.travel(timezone.now(), tick=False):
        open_session(device, cockpit, seconds=30)
        page = owner.get("/control/")
    assert page.status_code == 200
    assert b"30 seconds" in page.content and b"Cab A" in page.content
    assert b'http-equiv="refresh"' in page.content


def test_admin_ends_a_session_after_a_confirmation(client, tenant, device, cockpit):
    admin = UserFactory(email="dave@example.com")
    MembershipFactory(user=admin, tenant=tenant, role=Membership.Role.ADMIN)
    client.force_login(admin)
    session = open_session(device, cockpit)
    confirm = client.get(f"/control/{session.pk}/end/")
    assert confirm.status_code == 200 and b"truck_01" in confirm.content
    session.refresh_from_db()
    assert session.ended_at is None
    assert client.post(f"/control/{session.pk}/end/").status_code == 302
    session.refresh_from_db()
    assert session.ended_at is not None and session.end_reason == "released"
    event = AuditEvent.objects.get(tenant=tenant, action="control.released")
    assert event.actor == admin


def test_another_tenants_cockpits_and_sessions_are_404(owner, other_tenant):
    theirs = CockpitFactory(tenant=other_tenant)
    their_device = DeviceFactory(tenant=other_tenant)
    session = open_session(their_device, theirs)
    assert owner.get(f"/cockpits/{theirs.pk}/edit/").status_code == 404
    assert owner.post(f"/cockpits/{theirs.pk}/delete/").status_code == 404
    assert owner.get(f"/control/{session.pk}/end/").status_code == 404
    assert owner.post(f"/control/{session.pk}/end/").status_code == 404
    assert owner.get(f"/devices/{their_device.pk}/sessions/").status_code == 404
    session.refresh_from_db()
    assert session.ended_at is None


def test_usage_is_hours_per_business_day_split_at_midnight(tenant, device, cockpit):
    now = start_of_business_day(timezone.localdate()) + dt.timedelta(hours=12)
    yesterday_23 = now - dt.timedelta(hours=13)
    ended = open_session(device, cockpit, started=yesterday_23, seconds=60)
    ended.ended_at = yesterday_23 + dt.timedelta(hours=2)  # 23:00 → 01:00
    ended.end_reason = "released"
    ended.save()
    old = open_session(device, cockpit, started=now - dt.timedelta(days=40), seconds=60)
    old.ended_at = old.started_at + dt.timedelta(minutes=1)
    old.save()
    usage = dict(usage_by_day(device, now=now))
    assert len(usage) == 30
    today = max(usage)
    assert usage[today] == pytest.approx(1.0)
    assert usage[today - dt.timedelta(days=1)] == pytest.approx(1.0)
    assert sum(usage.values()) == pytest.approx(2.0)


def test_device_sessions_page_queries_stay_constant(owner, device, cockpit):
    def queries():
        with CaptureQueriesContext(connection) as ctx:
            assert owner.get(f"/devices/{device.pk}/sessions/").status_code == 200
        return len(ctx)

    start = timezone.now() - dt.timedelta(days=2)
    for i in range(2):
        s = open_session(device, cockpit, started=start + dt.timedelta(hours=i), seconds=60)
        s.ended_at = s.started_at + dt.timedelta(minutes=30)
        s.save()
    few = queries()
    for i in range(2, 12):
        s = open_session(device, cockpit, started=start + dt.timedelta(hours=i), seconds=60)
        s.ended_at = s.started_at + dt.timedelta(minutes=30)
        s.save()
    assert queries() == few
    page = owner.get(f"/devices/{device.pk}/sessions/")
    assert b"<svg" in page.content and b"6.0 hours in all" in page.content


def test_device_history_lists_ended_and_lapsed_sessions_not_the_live_one(owner, device, cockpit):
    now = timezone.now()
    ended = open_session(device, cockpit, started=now - dt.timedelta(hours=3), seconds=60)
    ended.ended_at = ended.started_at + dt.timedelta(minutes=30)
    ended.end_reason = ControlSession.EndReason.RELEASED
    ended.save()
    live = open_session(device, cockpit, seconds=600)
    page = owner.get(f"/devices/{device.pk}/sessions/")
    assert [s.pk for s in page.context["sessions"]] == [ended.pk]
    assert [row["session"].pk for row in page.context["live"]] == [live.pk]
