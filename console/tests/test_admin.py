"""Django admin for console models: a superuser logs in; every registered admin page
answers; tenants are suspended through the service; API keys show their raw value once and
store only the digest; the audit trail is read-only."""

import re

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.contrib.messages import get_messages
from django.urls import reverse

from conftest import STAFF_PASSWORD
from console.models import (
    ApiKey,
    AuditEvent,
    Invitation,
    Membership,
    NotificationRecipient,
    Tenant,
    User,
    api_key_digest,
)
from console.services import audit_record
from console.staff import BILLING, REVIEWERS
from console.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_superuser_logs_in_with_email_and_password(client, staff):
    response = client.post(
        reverse("admin:login"),
        {"username": "staff@example.com", "password": STAFF_PASSWORD, "next": "/admin/"},
    )
    assert response.status_code == 302
    # Then the second factor (console/tests/test_staff_2fa.py): enrolment, as it has none.
    assert client.get("/admin/")["Location"].startswith("/admin/2fa/setup/")


def test_non_staff_cannot_use_the_admin(client, alice):
    client.force_login(alice)
    response = client.get(url(Tenant, "changelist"))
    assert response.status_code == 302
    assert "/login/" in response["Location"]


@pytest.mark.parametrize("model", list(admin.site._registry), ids=lambda m: m._meta.label_lower)
def test_every_registered_admin_answers(staff_client, model, alice):
    """Changelist, a search and the add page of every model never 500."""
    assert staff_client.get(url(model, "changelist")).status_code == 200
    assert staff_client.get(url(model, "changelist"), {"q": "x 1 L-1"}).status_code == 200
    assert staff_client.get(url(model, "add")).status_code in (200, 403)


def test_admin_index_and_app_pages(staff_client):
    assert staff_client.get("/admin/").status_code == 200
    for app in ("console", "devices", "licensing"):
        assert staff_client.get(f"/admin/{app}/").status_code == 200


def test_user_admin_pages_and_filters(staff_client, alice, tenant):
    alice.language = "zh-hans"  # chosen (blank: the tenant's language, R13)
    alice.save(update_fields=["language"])
    cl = staff_client.get(
        url(User, "changelist"), {"q": "alice", "is_staff__exact": "0", "language": "zh-hans"}
    )
    assert cl.status_code == 200
    assert "alice@example.com" in cl.content.decode()
    assert staff_client.get(url(User, "change", alice.pk)).status_code == 200
    # Django names this URL after auth.User whatever the user model.
    password_url = reverse("admin:auth_user_password_change", args=[alice.pk])
    assert staff_client.get(password_url).status_code == 200


def test_user_add_form_has_email_and_no_username(staff_client):
    page = staff_client.get(url(User, "add")).content.decode()
    assert 'name="email"' in page
    assert 'name="username"' not in page
    response = staff_client.post(
        url(User, "add"),
        {
            "email": "New.Person@Example.com",
            "usable_password": "true",
            "password1": "a long enough secret 42",
            "password2": "a long enough secret 42",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    user = User.objects.get(email="new.person@example.com")
    assert user.check_password("a long enough secret 42")


def test_user_add_refuses_a_duplicate_email_in_another_case(staff_client, alice):
    response = staff_client.post(
        url(User, "add"),
        {
            "email": "ALICE@example.com",
            "usable_password": "false",
        },
    )
    assert response.status_code == 200
    assert User.objects.filter(email__iexact="alice@example.com").count() == 1


def test_tenant_pages_with_memberships_inline(staff_client, tenant, alice, bob):
    cl = staff_client.get(url(Tenant, "changelist"), {"q": "acme", "status__exact": "active"})
    assert cl.status_code == 200
    assert "Acme Mining" in cl.content.decode()
    page = staff_client.get(url(Tenant, "change", tenant.pk))
    assert page.status_code == 200
    assert "alice@example.com" in page.content.decode()
    assert staff_client.get(url(Tenant, "add")).status_code == 403


def test_tenant_suspend_and_activate_actions_go_through_the_service(staff_client, staff, tenant):
    selected = {"_selected_action": [tenant.pk], "reason_page": "yes"}
    response = staff_client.post(
        url(Tenant, "changelist"), {"action": "suspend", "reason": "unpaid", **selected}
    )
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.SUSPENDED
    event = AuditEvent.objects.get(action="tenant.suspended")
    assert event.actor == staff
    assert event.data["reason"] == "unpaid"
    staff_client.post(url(Tenant, "changelist"), {"action": "activate", **selected})
    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.ACTIVE
    assert AuditEvent.objects.filter(action="tenant.active").count() == 1


def test_tenant_status_cannot_be_edited_in_the_form(staff_client, tenant):
    data = {
        "name": "Acme Mining",
        "slug": "acme",
        "status": "suspended",
        "language": "en",
        "contract_unit_price": "3000.00",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
    }
    response = staff_client.post(url(Tenant, "change", tenant.pk), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    tenant.refresh_from_db()
    assert tenant.status == Tenant.Status.ACTIVE
    assert str(tenant.contract_unit_price) == "3000.00"
    event = AuditEvent.objects.get(action="tenant.updated")
    assert event.data["contract_unit_price"] == "3000.00"


def test_membership_pages_and_audit(staff_client, tenant, alice):
    membership = Membership.objects.get(user=alice)
    cl = staff_client.get(url(Membership, "changelist"), {"q": "alice", "role__exact": "owner"})
    assert cl.status_code == 200
    assert "alice@example.com" in cl.content.decode()
    assert staff_client.get(url(Membership, "change", membership.pk)).status_code == 200
    newcomer = UserFactory(email="dave@example.com")
    response = staff_client.post(
        url(Membership, "add"), {"user": newcomer.pk, "tenant": tenant.pk, "role": "admin"}
    )
    assert response.status_code == 302
    assert Membership.objects.filter(user=newcomer, tenant=tenant, role="admin").exists()
    assert AuditEvent.objects.filter(action="membership.created", tenant=tenant).count() == 1


def test_api_key_created_in_admin_shows_the_raw_key_once_and_stores_the_digest(
    staff_client, staff, tenant
):
    response = staff_client.post(
        url(ApiKey, "add"), {"tenant": tenant.pk, "name": "gateway", "role": "operator"}
    )
    assert response.status_code == 302
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    raw = next(re.search(r"(fc_\S+)$", m).group(1) for m in shown if "fc_" in m)
    key = ApiKey.objects.get(name="gateway")
    assert key.digest == api_key_digest(raw)
    assert key.prefix == raw[:10]
    assert key.role == "operator" and key.tenant == tenant and key.created_by == staff
    assert raw not in str(key.__dict__)
    assert AuditEvent.objects.filter(action="api_key.created", target_id=str(key.pk)).exists()
    # Shown once: on the page the admin redirects to, then never again.
    assert raw in staff_client.get(response["Location"]).content.decode()
    assert raw not in staff_client.get(url(ApiKey, "change", key.pk)).content.decode()
    assert raw not in staff_client.get(url(ApiKey, "changelist")).content.decode()


def test_api_key_role_and_tenant_are_read_only_and_revoke_action(
    staff_client, tenant, other_tenant
):
    from console.services import api_key_create

    key, _raw = api_key_create(tenant=tenant, name="k1", role="viewer")
    response = staff_client.post(
        url(ApiKey, "change", key.pk),
        {"name": "renamed", "role": "admin", "tenant": other_tenant.pk},
    )
    assert response.status_code == 302
    key.refresh_from_db()
    assert (key.name, key.role, key.tenant_id) == ("renamed", "viewer", tenant.pk)

    cl = staff_client.get(url(ApiKey, "changelist"), {"q": "renamed", "state": "active"})
    assert "renamed" in cl.content.decode()
    staff_client.post(url(ApiKey, "changelist"), {"action": "revoke", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert AuditEvent.objects.filter(action="api_key.revoked").count() == 1
    cl = staff_client.get(url(ApiKey, "changelist"), {"state": "active"})
    assert "renamed" not in cl.content.decode()
    assert staff_client.get(url(ApiKey, "delete", key.pk)).status_code == 403


def test_audit_events_are_read_only(staff_client, tenant, alice):
    event = audit_record(tenant=tenant, action="device.created", actor=alice, data={"x": 1})
    cl = staff_client.get(
        url(AuditEvent, "changelist"),
        {"q": "device", "action": "device.created", "tenant__id__exact": tenant.pk},
    )
    assert cl.status_code == 200
    assert "device.created" in cl.content.decode()
    assert staff_client.get(url(AuditEvent, "change", event.pk)).status_code == 200
    assert staff_client.get(url(AuditEvent, "add")).status_code == 403
    assert staff_client.post(url(AuditEvent, "add"), {"action": "forged"}).status_code == 403
    staff_client.post(url(AuditEvent, "change", event.pk), {"action": "forged"})
    assert (
        staff_client.post(url(AuditEvent, "delete", event.pk), {"post": "yes"}).status_code == 403
    )
    response = staff_client.post(
        url(AuditEvent, "changelist"),
        {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"},
    )
    assert response.status_code in (200, 302)
    event.refresh_from_db()
    assert event.action == "device.created"
    assert AuditEvent.objects.count() == 1
    page = staff_client.get(url(AuditEvent, "change", event.pk)).content.decode()
    assert 'name="_save"' not in page


def test_membership_added_in_the_tenant_inline_is_audited(staff_client, staff, tenant, alice):
    newcomer = UserFactory(email="erin@example.com")
    owner = Membership.objects.get(user=alice)
    data = {
        "name": tenant.name,
        "slug": tenant.slug,
        "language": tenant.language,
        "contract_unit_price": "3600.00",
        "memberships-TOTAL_FORMS": "2",
        "memberships-INITIAL_FORMS": "1",
        "memberships-0-id": owner.pk,
        "memberships-0-tenant": tenant.pk,
        "memberships-0-user": alice.pk,
        "memberships-0-role": "owner",
        "memberships-1-tenant": tenant.pk,
        "memberships-1-user": newcomer.pk,
        "memberships-1-role": "viewer",
    }
    response = staff_client.post(url(Tenant, "change", tenant.pk), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Membership.objects.get(user=newcomer).role == "viewer"
    event = AuditEvent.objects.get(action="membership.created")
    assert event.actor == staff and event.data == {"user": "erin@example.com", "role": "viewer"}


# --- team invitations and extra notification recipients (read-only) ---------------------------


@pytest.fixture
def team_rows(tenant, other_tenant, alice):
    mine = Invitation.objects.create(
        tenant=tenant, email="new.hire@example.com", role="admin", nonce="n" * 32, invited_by=alice
    )
    theirs = Invitation.objects.create(
        tenant=other_tenant, email="someone@example.com", role="viewer", nonce="m" * 32
    )
    theirs.status = Invitation.Status.REVOKED
    theirs.save(update_fields=["status"])
    finance = NotificationRecipient.objects.create(
        tenant=tenant, kind="billing", email="finance@example.com", language="en"
    )
    fleet_ops = NotificationRecipient.objects.create(
        tenant=other_tenant, kind="reminders", email="fleet@example.com"
    )
    return {"mine": mine, "theirs": theirs, "finance": finance, "fleet": fleet_ops}


def listed(client, model, **params) -> set[int]:
    response = client.get(url(model, "changelist"), params)
    assert response.status_code == 200
    return {obj.pk for obj in response.context["cl"].result_list}


def test_invitations_are_listed_searched_filtered_and_read_only(staff_client, tenant, team_rows):
    mine, theirs = team_rows["mine"], team_rows["theirs"]
    assert listed(staff_client, Invitation) == {mine.pk, theirs.pk}
    assert listed(staff_client, Invitation, q="new.hire") == {mine.pk}
    assert listed(staff_client, Invitation, q=tenant.slug) == {mine.pk}
    assert listed(staff_client, Invitation, status__exact="revoked") == {theirs.pk}
    assert listed(staff_client, Invitation, role__exact="admin") == {mine.pk}
    cl = staff_client.get(url(Invitation, "changelist")).content.decode()
    assert "alice@example.com" in cl  # invited by
    page = staff_client.get(url(Invitation, "change", mine.pk)).content.decode()
    assert "new.hire@example.com" in page
    assert "n" * 32 not in page  # the nonce makes the link: never shown
    assert 'name="_save"' not in page
    assert staff_client.get(url(Invitation, "add")).status_code == 403
    staff_client.post(url(Invitation, "change", mine.pk), {"role": "owner", "status": "revoked"})
    assert staff_client.post(url(Invitation, "delete", mine.pk), {"post": "yes"}).status_code == 403
    mine.refresh_from_db()
    assert (mine.role, mine.status) == ("admin", "pending")


def test_notification_recipients_are_listed_searched_filtered_and_read_only(
    staff_client, tenant, team_rows
):
    finance, fleet_ops = team_rows["finance"], team_rows["fleet"]
    assert listed(staff_client, NotificationRecipient) == {finance.pk, fleet_ops.pk}
    assert listed(staff_client, NotificationRecipient, q="finance") == {finance.pk}
    assert listed(staff_client, NotificationRecipient, q=tenant.name) == {finance.pk}
    assert listed(staff_client, NotificationRecipient, kind__exact="reminders") == {fleet_ops.pk}
    assert listed(staff_client, NotificationRecipient, language__exact="en") == {finance.pk}
    assert staff_client.get(url(NotificationRecipient, "add")).status_code == 403
    page = staff_client.get(url(NotificationRecipient, "change", finance.pk)).content.decode()
    assert "finance@example.com" in page and 'name="_save"' not in page
    staff_client.post(url(NotificationRecipient, "change", finance.pk), {"email": "x@example.com"})
    assert (
        staff_client.post(url(NotificationRecipient, "delete", finance.pk), {"post": "yes"})
    ).status_code == 403
    finance.refresh_from_db()
    assert finance.email == "finance@example.com"


@pytest.mark.parametrize(
    ("model", "groups_that_see"),
    [(Invitation, {REVIEWERS}), (NotificationRecipient, {REVIEWERS, BILLING})],
    ids=["invitation", "notificationrecipient"],
)
def test_team_rows_are_seen_by_the_groups_that_need_them(client, team_rows, model, groups_that_see):
    for group in (REVIEWERS, BILLING, None):
        user = UserFactory(email=f"staff-{group or 'none'}@example.com".lower(), is_staff=True)
        if group:
            user.groups.add(Group.objects.get(name=group))
        client.force_login(user)
        expected = 200 if group in groups_that_see else 403
        assert client.get(url(model, "changelist")).status_code == expected, group
        pk = team_rows["mine" if model is Invitation else "finance"].pk
        assert client.get(url(model, "change", pk)).status_code == expected, group
        assert client.get(url(model, "add")).status_code == 403
