"""Every console service that locks a row or writes several is its own transaction, driven
the way people use it: the beta application pages and the reviewers' admin (R9), tenant
suspension in the admin, API keys in the admin and on the console page, memberships in the
admin, `createtenant` and `seeddemo`.

PostgreSQL with transaction=True, so no test transaction hides a missing `atomic` (SELECT …
FOR UPDATE outside a transaction is an error there), and emails queued with on_commit are
really sent after the commit.
"""

import io
from unittest import mock

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.test import Client
from rest_framework.test import APIClient

from console.models import ApiKey, AuditEvent, BetaApplication, Membership, Tenant, User
from console.tests.factories import (
    BetaApplicationFactory,
    MembershipFactory,
    UserFactory,
    make_api_key,
)

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("postgres_only", "english"),
]

S = BetaApplication.State
APPLICATIONS = "/admin/console/betaapplication/"
TENANTS = "/admin/console/tenant/"
KEYS = "/admin/console/apikey/"
MEMBERSHIPS = "/admin/console/membership/"

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


def texts(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def trail(app: BetaApplication) -> list[tuple[str, str]]:
    events = AuditEvent.objects.filter(
        target_type="console.betaapplication", target_id=str(app.pk)
    ).order_by("id")
    return [(e.data["from"], e.data["to"]) for e in events]


def browser(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- R9: the beta application ------------------------------------------------------------------


def test_r9_applicant_applies_and_withdraws_on_the_pages(mailoutbox):
    applicant = UserFactory(email="qi@example.com")
    client = browser(applicant)
    assert client.post("/apply/", APPLICATION).status_code == 302
    app = BetaApplication.objects.get(applicant=applicant)
    assert app.state == S.SUBMITTED
    assert any("qi@example.com" in m.to for m in mailoutbox)  # sent after the commit
    response = client.post(
        f"/application/{app.pk}/withdraw/", {"reason": "Later", "confirmed": "1"}
    )
    assert response.status_code == 302
    app.refresh_from_db()
    assert app.state == S.WITHDRAWN
    assert trail(app) == [("", S.SUBMITTED), (S.SUBMITTED, S.WITHDRAWN)]
    assert AuditEvent.objects.filter(action="beta_application.withdrawn", actor=applicant).exists()


def test_r9_reviewer_moves_an_application_with_the_buttons_and_confirms_it(
    staff_client, staff, mailoutbox
):
    app = BetaApplicationFactory()
    transition = f"{APPLICATIONS}{app.pk}/transition/"
    staff_client.post(transition, {"action": "start_review", "reason": "checking"})
    staff_client.post(transition, {"action": "approve", "reason": ""})
    response = staff_client.post(
        f"{APPLICATIONS}{app.pk}/confirm/",
        {"contract_unit_price": "3240.50", "slug": "quay", "reason": "signed"},
    )
    assert response.status_code == 302
    app.refresh_from_db()
    assert app.state == S.CONFIRMED
    tenant = Tenant.objects.get(slug="quay")
    assert app.tenant == tenant
    assert (tenant.status, str(tenant.contract_unit_price)) == ("active", "3240.50")
    assert Membership.objects.get(tenant=tenant).user == app.applicant
    assert Membership.objects.get(tenant=tenant).role == Membership.Role.OWNER
    assert trail(app) == [
        (S.SUBMITTED, S.IN_REVIEW),
        (S.IN_REVIEW, S.APPROVED),
        (S.APPROVED, S.CONFIRMED),
    ]
    assert AuditEvent.objects.get(action="tenant.created").actor == staff
    assert len([m for m in mailoutbox if app.applicant.email in m.to]) == 3


def test_r9_reviewer_rejects_with_the_button_and_approves_with_the_bulk_action(staff_client):
    rejected = BetaApplicationFactory()
    ready = [BetaApplicationFactory(state=S.IN_REVIEW), BetaApplicationFactory(state=S.IN_REVIEW)]
    staff_client.post(
        f"{APPLICATIONS}{rejected.pk}/transition/", {"action": "reject", "reason": "No 5G"}
    )
    response = staff_client.post(
        APPLICATIONS,
        {
            "action": "bulk_approve",
            ACTION_CHECKBOX_NAME: [a.pk for a in ready],
            "post": "yes",
            "reason": "batch",
        },
    )
    assert response.status_code == 302
    rejected.refresh_from_db()
    assert rejected.state == S.REJECTED
    assert trail(rejected) == [(S.SUBMITTED, S.REJECTED)]
    assert set(
        BetaApplication.objects.filter(pk__in=[a.pk for a in ready]).values_list("state", flat=True)
    ) == {S.APPROVED}
    assert AuditEvent.objects.filter(action="beta_application.approved").count() == 2


def test_r9_a_confirmation_failing_half_way_creates_no_tenant(staff_client, mailoutbox):
    app = BetaApplicationFactory(state=S.APPROVED)
    with (
        mock.patch("console.beta_services.audit_record", side_effect=RuntimeError("boom")),
        pytest.raises(RuntimeError),
    ):
        staff_client.post(
            f"{APPLICATIONS}{app.pk}/confirm/", {"contract_unit_price": "3600", "slug": "quay"}
        )
    app.refresh_from_db()
    assert (app.state, app.tenant) == (S.APPROVED, None)
    assert not Tenant.objects.exists()
    assert not Membership.objects.exists()
    assert not AuditEvent.objects.exists()
    assert mailoutbox == []  # nothing committed, nothing told


# --- R9: suspending and reactivating a tenant ----------------------------------------------------


def test_r9_admin_suspends_and_reactivates_tenants(staff_client, staff, tenant, other_tenant):
    raw = make_api_key(tenant)[1]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    body = {"cameras": [{"width": 1280, "height": 720}], "years": 1}
    selected = {ACTION_CHECKBOX_NAME: [tenant.pk, other_tenant.pk], "reason_page": "yes"}
    response = staff_client.post(TENANTS, {"action": "suspend", "reason": "unpaid", **selected})
    assert response.status_code == 302
    assert set(Tenant.objects.values_list("status", flat=True)) == {"suspended"}
    refused = api.post("/api/v1/quote", body, format="json")
    assert (refused.status_code, refused.json()["code"]) == (403, "TENANT_SUSPENDED")
    staff_client.post(TENANTS, {"action": "activate", **selected})
    assert set(Tenant.objects.values_list("status", flat=True)) == {"active"}
    assert api.post("/api/v1/quote", body, format="json").status_code == 200
    events = AuditEvent.objects.filter(tenant=tenant, action__startswith="tenant.").order_by("id")
    assert [(e.action, e.actor) for e in events] == [
        ("tenant.suspended", staff),
        ("tenant.active", staff),
    ]


# --- API keys and memberships ---------------------------------------------------------------


def test_admin_creates_and_revokes_api_keys(staff_client, staff, tenant):
    response = staff_client.post(
        f"{KEYS}add/", {"tenant": tenant.pk, "name": "gateway", "role": "operator"}
    )
    assert response.status_code == 302
    key = ApiKey.objects.get(name="gateway")
    assert (key.tenant, key.role, key.revoked_at) == (tenant, "operator", None)
    staff_client.post(KEYS, {"action": "revoke", ACTION_CHECKBOX_NAME: [key.pk]})
    key.refresh_from_db()
    assert key.revoked_at is not None
    events = AuditEvent.objects.filter(target_id=str(key.pk), action__startswith="api_key.")
    assert sorted((e.action, e.actor) for e in events) == [
        ("api_key.created", staff),
        ("api_key.revoked", staff),
    ]


def test_owner_creates_and_revokes_an_api_key_on_the_keys_page(tenant, alice):
    client = browser(alice)
    page = client.post("/keys/", {"name": "cockpit", "role": "viewer"})
    assert page.status_code == 200
    key = ApiKey.objects.get(name="cockpit")
    assert page.context["raw_key"]
    assert client.post(f"/keys/{key.pk}/revoke/", {"confirmed": "1"}).status_code == 302
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert sorted(
        AuditEvent.objects.filter(target_id=str(key.pk), actor=alice).values_list(
            "action", flat=True
        )
    ) == ["api_key.created", "api_key.revoked"]


def test_admin_deletes_memberships_with_their_audit_all_or_nothing(staff_client, tenant):
    members = [
        MembershipFactory(user=UserFactory(), tenant=tenant, role=Membership.Role.VIEWER)
        for _i in range(2)
    ]
    delete = {"action": "delete_selected", ACTION_CHECKBOX_NAME: [m.pk for m in members]}
    failing = mock.patch(
        "console.admin.audit_record", side_effect=[mock.DEFAULT, RuntimeError("boom")]
    )
    with failing, pytest.raises(RuntimeError):
        staff_client.post(MEMBERSHIPS, {**delete, "post": "yes"})
    assert Membership.objects.filter(pk__in=[m.pk for m in members]).count() == 2
    assert not AuditEvent.objects.filter(action="membership.deleted").exists()
    response = staff_client.post(MEMBERSHIPS, {**delete, "post": "yes"})
    assert response.status_code == 302
    assert not Membership.objects.filter(pk__in=[m.pk for m in members]).exists()
    assert AuditEvent.objects.filter(action="membership.deleted").count() == 2


# --- commands --------------------------------------------------------------------------------


def test_r9_createtenant_creates_tenant_owner_and_key_together():
    out = io.StringIO()
    call_command(
        "createtenant",
        "Acme",
        "--slug",
        "acme",
        "--owner",
        "boss@acme.example",
        "--api-key",
        stdout=out,
    )
    tenant = Tenant.objects.get(slug="acme")
    assert Membership.objects.get(tenant=tenant).user.email == "boss@acme.example"
    key = ApiKey.objects.get(tenant=tenant)
    assert out.getvalue().strip().splitlines()[-1].startswith(key.prefix)
    assert sorted(AuditEvent.objects.filter(tenant=tenant).values_list("action", flat=True)) == [
        "api_key.created",
        "tenant.created",
    ]


def test_r9_createtenant_failing_half_way_leaves_nothing():
    failing = mock.patch(
        "console.management.commands.createtenant.api_key_create",
        side_effect=RuntimeError("boom"),
    )
    with failing, pytest.raises(RuntimeError):
        call_command(
            "createtenant",
            "Acme",
            "--slug",
            "acme",
            "--owner",
            "boss@acme.example",
            "--api-key",
            stdout=io.StringIO(),
        )
    assert not Tenant.objects.exists()
    assert not User.objects.filter(email="boss@acme.example").exists()
    assert not AuditEvent.objects.exists()


def test_seeddemo_runs_twice_on_postgres():
    call_command("seeddemo", stdout=io.StringIO())
    counts = (Tenant.objects.count(), Membership.objects.count(), ApiKey.objects.count())
    call_command("seeddemo", stdout=io.StringIO())
    assert (Tenant.objects.count(), Membership.objects.count(), ApiKey.objects.count()) == counts
    assert set(Tenant.objects.values_list("slug", flat=True)) == {"demo-mining", "demo-ports"}
