"""R9 in the customer console: apply, see the status, withdraw; until confirmation that is
all the console shows. Once a member: dashboard, API keys (owners and admins manage them,
viewers see them), team — each through tenant-scoped queries (another tenant's id → 404)."""

import pytest

from console import beta_services
from console.models import ApiKey, AuditEvent, BetaApplication
from console.tests.factories import (
    BetaApplicationFactory,
    CameraFactory,
    DeviceFactory,
    LicenseFactory,
    MembershipFactory,
    TenantFactory,
    UserFactory,
    make_api_key,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


S = BetaApplication.State

APPLICATION = {
    "company_name": "Quay Robotics",
    "contact_name": "Qi",
    "phone": "+86 21 5555 0101",
    "email": "qi@quay.example",
    "industry": "ports",
    "scenario": "Remote container cranes at two terminals.",
    "expected_devices": "12",
    "cameras_per_device": "6",
    "resolution": "1080p",
    "language": "en",
}


@pytest.fixture
def applicant(client):
    user = UserFactory(email="qi@example.com", full_name="Qi")
    client.force_login(user)
    return user


# --- Applying -------------------------------------------------------------------------------


def test_apply_form_is_prefilled(client, applicant):
    response = client.get("/apply/")
    assert response.status_code == 200
    form = response.context["form"]
    assert form.initial["email"] == "qi@example.com"
    assert form.initial["contact_name"] == "Qi"
    assert form.initial["language"] == "en"  # the page's language
    client.cookies["django_language"] = "zh-hans"
    assert client.get("/apply/").context["form"].initial["language"] == "zh-hans"


def test_r9_apply_submits_and_shows_the_status(client, applicant):
    response = client.post("/apply/", APPLICATION)
    assert response.status_code == 302
    assert response["Location"] == "/application/"
    app = BetaApplication.objects.get(applicant=applicant)
    assert app.state == S.SUBMITTED
    assert app.expected_devices == 12
    assert app.language == "en"
    page = client.get("/application/")
    assert page.status_code == 200
    assert page.context["application"] == app
    assert b'id="application-state"' in page.content
    assert b"Quay Robotics" in page.content
    # With an open application, the apply page leads back to its status.
    assert client.get("/apply/")["Location"] == "/application/"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("cameras_per_device", "9"),
        ("cameras_per_device", "0"),
        ("expected_devices", "0"),
        ("expected_devices", "100001"),
        ("expected_devices", "ten"),
        ("expected_devices", "-3"),
        ("resolution", "8k"),
        ("industry", ""),
        ("company_name", ""),
        ("phone", "call me"),
        ("email", "nope"),
    ],
)
def test_r9_apply_validates_and_creates_nothing(client, applicant, field, value):
    response = client.post("/apply/", {**APPLICATION, field: value})
    assert response.status_code == 200
    assert field in response.context["form"].errors
    assert not BetaApplication.objects.exists()


def test_r9_a_second_open_application_is_refused(client, applicant):
    BetaApplicationFactory(applicant=applicant, state=S.IN_REVIEW)
    assert client.get("/apply/")["Location"] == "/application/"
    response = client.post("/apply/", APPLICATION)
    assert response.status_code == 302
    assert BetaApplication.objects.filter(applicant=applicant).count() == 1


def test_r9_the_apply_race_is_a_form_error_not_a_500(client, applicant, monkeypatch):
    """Two tabs submitting at once: the second finds the first under its insert."""
    from console import views

    real = views.beta_application_current
    monkeypatch.setattr(views, "beta_application_current", lambda **kw: None)
    BetaApplicationFactory(applicant=applicant)
    response = client.post("/apply/", APPLICATION)
    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    assert BetaApplication.objects.filter(applicant=applicant).count() == 1
    monkeypatch.setattr(views, "beta_application_current", real)


def test_r9_until_confirmation_the_status_page_is_all_the_console_shows(client, applicant):
    BetaApplicationFactory(applicant=applicant, state=S.APPROVED)
    for url in ["/", "/keys/", "/team/"]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"] == "/application/", url
    assert client.post("/keys/", {"name": "k", "role": "admin"})["Location"] == "/application/"
    assert not ApiKey.objects.exists()
    page = client.get("/application/")
    assert b'href="/keys/"' not in page.content


# --- Withdrawing ----------------------------------------------------------------------------


def test_r9_the_applicant_withdraws(client, applicant):
    app = BetaApplicationFactory(applicant=applicant, state=S.IN_REVIEW)
    page = client.get("/application/")
    assert page.context["withdraw_form"] is not None
    response = client.post(
        f"/application/{app.pk}/withdraw/", {"reason": "Budget moved", "confirmed": "1"}
    )
    assert response["Location"] == "/application/"
    app.refresh_from_db()
    assert app.state == S.WITHDRAWN
    event = AuditEvent.objects.get(action="beta_application.withdrawn")
    assert event.actor == applicant
    assert event.data["reason"] == "Budget moved"
    # Closed: no withdraw button, and the applicant may apply again.
    page = client.get("/application/")
    assert page.context["withdraw_form"] is None
    assert b'href="/apply/"' in page.content
    assert client.get("/apply/").status_code == 200


def test_r9_withdraw_is_a_post(client, applicant):
    app = BetaApplicationFactory(applicant=applicant)
    assert client.get(f"/application/{app.pk}/withdraw/").status_code == 405
    assert BetaApplication.objects.get(pk=app.pk).state == S.SUBMITTED


def test_r9_withdrawing_someone_elses_application_is_a_404(client, applicant):
    other = BetaApplicationFactory()
    response = client.post(f"/application/{other.pk}/withdraw/", {})
    assert response.status_code == 404
    assert BetaApplication.objects.get(pk=other.pk).state == S.SUBMITTED


def test_r9_a_confirmed_application_cannot_be_withdrawn(client, applicant):
    tenant = TenantFactory()
    MembershipFactory(user=applicant, tenant=tenant)
    app = BetaApplicationFactory(applicant=applicant, state=S.CONFIRMED, tenant=tenant)
    page = client.get("/application/")
    assert page.status_code == 200
    assert page.context["withdraw_form"] is None
    response = client.post(f"/application/{app.pk}/withdraw/", {"confirmed": "1"}, follow=True)
    assert response.status_code == 200
    assert any("not possible" in str(m) for m in response.context["messages"])
    assert BetaApplication.objects.get(pk=app.pk).state == S.CONFIRMED


def test_r9_status_page_shows_a_rejection_reason_but_not_internal_ones(client, applicant):
    app = BetaApplicationFactory(applicant=applicant)
    reviewer = UserFactory(email="rev@example.com", is_staff=True)
    beta_services.beta_application_start_review(
        application=app, actor=reviewer, reason="INTERNAL check credit"
    )
    beta_services.beta_application_reject(
        application=app, actor=reviewer, reason="Outside our service area"
    )
    page = client.get("/application/")
    assert b"Outside our service area" in page.content
    assert b"INTERNAL" not in page.content
    assert b"rev@example.com" not in page.content


# --- Member console -------------------------------------------------------------------------


def test_dashboard_shows_the_tenant_and_its_counts(client, alice, tenant, other_tenant):
    client.force_login(alice)
    device = DeviceFactory(tenant=tenant)
    CameraFactory(device=device)  # 1280x720 → 1 license required
    LicenseFactory(tenant=tenant, device=device)
    LicenseFactory(tenant=tenant)  # unbound
    DeviceFactory(tenant=tenant)  # no license
    DeviceFactory(tenant=other_tenant)
    LicenseFactory(tenant=other_tenant)
    response = client.get("/")
    assert response.status_code == 200
    ctx = response.context
    assert ctx["tenant"] == tenant
    assert ctx["devices_total"] == 2
    assert ctx["devices_licensed"] == 1
    assert ctx["devices_unlicensed"] == 1
    assert ctx["stats"].valid == 2
    assert ctx["stats"].unbound == 1
    assert b"Acme Mining" in response.content
    assert b'href="/keys/"' in response.content


def test_members_reach_the_apply_page_only_as_a_redirect(client, alice):
    client.force_login(alice)
    assert client.get("/apply/")["Location"] == "/"


def test_r9_suspended_tenant_shows_a_banner(client, alice, tenant):
    tenant.status = "suspended"
    tenant.save()
    client.force_login(alice)
    response = client.get("/")
    assert response.status_code == 200
    assert b'class="banner banner-warning"' in response.content


def test_owner_creates_a_key_shown_once(client, alice, tenant):
    client.force_login(alice)
    response = client.post("/keys/", {"name": "Gateway fleet", "role": "operator"})
    assert response.status_code == 200
    raw = response.context["raw_key"]
    assert raw.startswith("fc_")
    assert raw.encode() in response.content
    assert response["Cache-Control"] == "no-store"
    key = ApiKey.objects.get(tenant=tenant)
    assert (key.name, key.role, key.created_by) == ("Gateway fleet", "operator", alice)
    assert AuditEvent.objects.filter(action="api_key.created", actor=alice).exists()
    listing = client.get("/keys/")
    assert key.prefix.encode() in listing.content
    assert raw.encode() not in listing.content  # never again


@pytest.mark.parametrize(("name", "role"), [("", "admin"), ("  ", "admin"), ("ok", "root")])
def test_key_creation_validates(client, alice, name, role):
    client.force_login(alice)
    response = client.post("/keys/", {"name": name, "role": role})
    assert response.status_code == 200
    assert response.context["form"].errors
    assert response.context["raw_key"] is None
    assert not ApiKey.objects.exists()


def test_owner_revokes_a_key(client, alice, tenant):
    client.force_login(alice)
    key, _ = make_api_key(tenant)
    response = client.post(f"/keys/{key.pk}/revoke/", {"confirmed": "1"})
    assert response["Location"] == "/keys/"
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert AuditEvent.objects.filter(action="api_key.revoked", actor=alice).exists()


def test_active_keys_are_listed_before_revoked_ones(client, alice, tenant):
    # PostgreSQL sorts NULLs last: the order must not depend on the database.
    client.force_login(alice)
    make_api_key(tenant, name="older")
    revoked, _ = make_api_key(tenant, name="revoked")
    ApiKey.objects.filter(pk=revoked.pk).update(revoked_at=revoked.created_at)
    make_api_key(tenant, name="newer")
    keys = list(client.get("/keys/").context["keys"])
    assert [k.name for k in keys] == ["newer", "older", "revoked"]


def test_admins_manage_keys_too(client, tenant):
    admin = UserFactory()
    MembershipFactory(user=admin, tenant=tenant, role="admin")
    client.force_login(admin)
    assert client.post("/keys/", {"name": "ci", "role": "viewer"}).status_code == 200
    assert ApiKey.objects.filter(tenant=tenant).count() == 1


def test_viewers_see_keys_but_cannot_manage_them(client, bob, tenant):
    key, _ = make_api_key(tenant, name="existing")
    client.force_login(bob)
    page = client.get("/keys/")
    assert page.status_code == 200
    assert b"existing" in page.content
    assert page.context["can_manage"] is False
    assert f"/keys/{key.pk}/revoke/".encode() not in page.content
    assert client.post("/keys/", {"name": "mine", "role": "admin"}).status_code == 403
    assert client.post(f"/keys/{key.pk}/revoke/").status_code == 403
    key.refresh_from_db()
    assert key.revoked_at is None
    assert ApiKey.objects.count() == 1


def test_it_validates_ownership_of_keys(client, alice, other_tenant, tenant):
    """Another tenant's key is a 404: not listed, not revocable."""
    theirs, _ = make_api_key(other_tenant, name="their secret key")
    client.force_login(alice)
    page = client.get("/keys/")
    assert b"their secret key" not in page.content
    assert client.post(f"/keys/{theirs.pk}/revoke/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_team_lists_this_tenants_members_only(client, alice, bob, charlie):
    client.force_login(alice)
    page = client.get("/team/")
    assert page.status_code == 200
    assert b"alice@example.com" in page.content
    assert b"bob@example.com" in page.content
    assert b"charlie@example.com" not in page.content


def test_a_key_made_in_the_console_works_on_the_api(client, alice, tenant):
    client.force_login(alice)
    raw = client.post("/keys/", {"name": "gw", "role": "viewer"}).context["raw_key"]
    DeviceFactory(tenant=tenant, serial="truck_1")
    from rest_framework.test import APIClient

    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = api.get("/api/v1/devices/")
    assert response.status_code == 200
    assert "truck_1" in response.content.decode()
    client.post(f"/keys/{ApiKey.objects.get().pk}/revoke/", {"confirmed": "1"})
    assert api.get("/api/v1/devices/").status_code == 401
