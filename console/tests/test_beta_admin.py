"""R9 in Django admin: the Reviewers group, the applications changelist, the review buttons
and bulk actions, the confirm form, the audit trail — and who may not use them."""

import datetime as dt
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from console import beta_services
from console.models import AuditEvent, BetaApplication, Membership, Tenant
from console.tests.factories import BetaApplicationFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


S = BetaApplication.State
CHANGELIST = "/admin/console/betaapplication/"


def change_url(app):
    return f"{CHANGELIST}{app.pk}/change/"


def transition_url(app):
    return f"{CHANGELIST}{app.pk}/transition/"


def confirm_url(app):
    return f"{CHANGELIST}{app.pk}/confirm/"


@pytest.fixture
def reviewer():
    user = UserFactory(email="rita@example.com", is_staff=True)
    user.groups.add(Group.objects.get(name="Reviewers"))
    return user


@pytest.fixture
def reviewer_client(client, reviewer):
    client.force_login(reviewer)
    return client


def test_r9_reviewers_group_has_just_the_permissions_it_needs():
    group = Group.objects.get(name="Reviewers")
    perms = set(group.permissions.values_list("content_type__app_label", "codename"))
    assert perms == {
        ("console", "view_betaapplication"),
        ("console", "change_betaapplication"),
        ("console", "review_betaapplication"),
        ("console", "view_tenant"),
        ("console", "suspend_tenant"),
        ("console", "view_auditevent"),
        # The outbox (R13): what was sent to applicants, and a retry of a failed email.
        ("console", "view_outboundemail"),
        ("console", "change_outboundemail"),
        # A tenant's team invitations and extra notification recipients, to look at.
        ("console", "view_invitation"),
        ("console", "view_notificationrecipient"),
    }


def test_changelist_filters_and_search(reviewer_client):
    old = BetaApplicationFactory(
        company_name="Old Mine Co",
        industry="mining",
        created_at=timezone.now() - dt.timedelta(days=40),
    )
    port = BetaApplicationFactory(
        company_name="Harbour Cranes", industry="ports", state=S.IN_REVIEW
    )
    energy = BetaApplicationFactory(
        company_name="Grid Robots",
        industry="energy",
        applicant=UserFactory(email="grid@power.example"),
    )

    def listed(query=""):
        response = reviewer_client.get(CHANGELIST + query)
        assert response.status_code == 200
        return {a.pk for a in response.context["cl"].result_list}

    assert listed() == {old.pk, port.pk, energy.pk}
    assert listed("?state__exact=in_review") == {port.pk}
    assert listed("?industry__exact=energy") == {energy.pk}
    # As the admin's own "Past 7 days" link writes it: an aware time, not a bare date.
    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    since = urlencode({"created_at__gte": str(midnight - dt.timedelta(days=7))})
    assert listed(f"?{since}") == {port.pk, energy.pk}
    assert listed("?q=harbour") == {port.pk}
    assert listed("?q=grid@power") == {energy.pk}


def test_change_page_shows_the_next_actions_and_the_audit_trail(reviewer_client, reviewer):
    app = BetaApplicationFactory(company_name="Pit Co")
    beta_services.beta_application_start_review(
        application=app, actor=reviewer, reason="call booked"
    )
    response = reviewer_client.get(change_url(app))
    assert response.status_code == 200
    names = [a["name"] for a in response.context["review_actions"]]
    assert names == ["approve", "reject"]
    assert response.context["can_confirm"] is False
    html = response.content.decode()
    assert 'value="approve"' in html
    # A rejection asks for its reason on a page of its own.
    assert f'href="{transition_url(app)}?action=reject"' in html
    assert 'value="start_review"' not in html
    assert 'class="beta-audit-trail"' in html
    assert "beta_application.in_review" in html
    assert "call booked" in html
    assert "rita@example.com" in html


def test_r9_reviewer_moves_an_application_with_the_buttons(reviewer_client, reviewer):
    app = BetaApplicationFactory()
    response = reviewer_client.post(
        transition_url(app), {"action": "start_review", "reason": "looks promising"}
    )
    assert response.status_code == 302
    assert response["Location"] == change_url(app)
    app.refresh_from_db()
    assert app.state == S.IN_REVIEW
    event = AuditEvent.objects.get(action="beta_application.in_review")
    assert event.actor == reviewer
    assert event.data["reason"] == "looks promising"
    reviewer_client.post(transition_url(app), {"action": "approve", "reason": ""})
    app.refresh_from_db()
    assert app.state == S.APPROVED
    page = reviewer_client.get(change_url(app))
    assert page.context["can_confirm"] is True
    assert confirm_url(app).encode() in page.content


def test_r9_an_invalid_transition_in_admin_is_a_message_and_changes_nothing(reviewer_client):
    app = BetaApplicationFactory()
    response = reviewer_client.post(
        transition_url(app), {"action": "approve", "reason": ""}, follow=True
    )
    assert response.status_code == 200
    assert any("not possible" in str(m) for m in response.context["messages"])
    assert BetaApplication.objects.get(pk=app.pk).state == S.SUBMITTED
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("action", ["withdraw", "confirm", "delete", ""])
def test_unknown_or_non_reviewer_actions_are_refused(reviewer_client, action):
    app = BetaApplicationFactory(state=S.APPROVED)
    reviewer_client.post(transition_url(app), {"action": action})
    assert BetaApplication.objects.get(pk=app.pk).state == S.APPROVED
    assert not Tenant.objects.exists()


def test_r9_rejecting_in_admin_needs_a_reason(reviewer_client):
    app = BetaApplicationFactory(state=S.IN_REVIEW)
    response = reviewer_client.post(
        transition_url(app), {"action": "reject", "reason": ""}, follow=True
    )
    assert any("required" in str(m) for m in response.context["messages"])
    assert BetaApplication.objects.get(pk=app.pk).state == S.IN_REVIEW
    reviewer_client.post(transition_url(app), {"action": "reject", "reason": "No coverage"})
    assert BetaApplication.objects.get(pk=app.pk).state == S.REJECTED


def test_reviewer_edits_notes_but_not_the_state(reviewer_client):
    app = BetaApplicationFactory()
    response = reviewer_client.post(
        change_url(app),
        {"reviewer_notes": "Called them; fleet of 30 next year.", "state": "confirmed"},
    )
    assert response.status_code == 302
    app.refresh_from_db()
    assert app.reviewer_notes == "Called them; fleet of 30 next year."
    assert app.state == S.SUBMITTED


def test_there_is_no_add_or_delete(reviewer_client):
    app = BetaApplicationFactory()
    assert reviewer_client.get(CHANGELIST + "add/").status_code == 403
    assert reviewer_client.get(f"{CHANGELIST}{app.pk}/delete/").status_code == 403


# --- Confirm ------------------------------------------------------------------------------


def test_r9_confirm_page_asks_for_price_and_slug(reviewer_client):
    app = BetaApplicationFactory(state=S.APPROVED, company_name="Blue Port")
    response = reviewer_client.get(confirm_url(app))
    assert response.status_code == 200
    form = response.context["form"]
    assert form["contract_unit_price"].value() == Decimal("3600.00")
    assert form["slug"].value() == "blue-port"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"contract_unit_price": "3333.335", "slug": "ok"}, "contract_unit_price"),
        ({"contract_unit_price": "-1", "slug": "ok"}, "contract_unit_price"),
        ({"contract_unit_price": "0", "slug": "ok"}, "contract_unit_price"),
        ({"contract_unit_price": "abc", "slug": "ok"}, "contract_unit_price"),
        ({"contract_unit_price": "", "slug": "ok"}, "contract_unit_price"),
        ({"contract_unit_price": "3600", "slug": "taken"}, "slug"),
        ({"contract_unit_price": "3600", "slug": "Not A Slug"}, "slug"),
        ({"contract_unit_price": "3600", "slug": ""}, "slug"),
    ],
)
def test_r9_confirm_form_errors_create_nothing(reviewer_client, data, field):
    TenantFactory(slug="taken")
    app = BetaApplicationFactory(state=S.APPROVED)
    response = reviewer_client.post(confirm_url(app), data)
    assert response.status_code == 200
    assert field in response.context["form"].errors
    app.refresh_from_db()
    assert app.state == S.APPROVED
    assert app.tenant is None
    assert Tenant.objects.count() == 1
    assert not AuditEvent.objects.exists()


def test_r9_confirm_creates_the_active_tenant_owned_by_the_applicant(reviewer_client, reviewer):
    applicant = UserFactory(email="ann@example.com")
    app = BetaApplicationFactory(
        applicant=applicant, state=S.APPROVED, company_name="Blue Port", language="en"
    )
    response = reviewer_client.post(
        confirm_url(app),
        {"contract_unit_price": "3240.00", "slug": "blue-port", "reason": "signed 2026-11"},
    )
    assert response.status_code == 302
    assert response["Location"] == change_url(app)
    app.refresh_from_db()
    tenant = app.tenant
    assert app.state == S.CONFIRMED
    assert (tenant.name, tenant.slug, tenant.status) == ("Blue Port", "blue-port", "active")
    assert tenant.contract_unit_price == Decimal("3240.00")
    assert tenant.language == "en"
    assert Membership.objects.get(tenant=tenant, user=applicant).role == "owner"
    event = AuditEvent.objects.get(action="beta_application.confirmed")
    assert (event.actor, event.data["reason"]) == (reviewer, "signed 2026-11")
    # Once confirmed, no more buttons, and the confirm page refuses.
    page = reviewer_client.get(change_url(app))
    assert page.context.get("review_actions") == []
    again = reviewer_client.post(
        confirm_url(app), {"contract_unit_price": "1.00", "slug": "second"}
    )
    assert again.status_code == 302
    assert Tenant.objects.count() == 1


def test_confirm_page_refuses_an_application_not_approved(reviewer_client):
    app = BetaApplicationFactory(state=S.IN_REVIEW)
    response = reviewer_client.get(confirm_url(app), follow=True)
    assert any("Only an approved" in str(m) for m in response.context["messages"])
    response = reviewer_client.post(confirm_url(app), {"contract_unit_price": "1", "slug": "x"})
    assert response.status_code == 302
    assert not Tenant.objects.exists()


def test_missing_application_is_a_404(reviewer_client):
    assert reviewer_client.post(f"{CHANGELIST}999999/transition/", {}).status_code == 404
    assert reviewer_client.get(f"{CHANGELIST}999999/confirm/").status_code == 404


# --- Bulk actions -------------------------------------------------------------------------


def bulk(client, action, apps, **extra):
    data = {"action": action, "_selected_action": [a.pk for a in apps], **extra}
    return client.post(CHANGELIST, data)


def test_r9_bulk_start_review_asks_for_a_reason_then_acts(reviewer_client):
    apps = [BetaApplicationFactory(), BetaApplicationFactory()]
    page = bulk(reviewer_client, "bulk_start_review", apps)
    assert page.status_code == 200  # the intermediate page
    assert {a.pk for a in page.context["queryset"]} == {a.pk for a in apps}
    assert all(a.state == S.SUBMITTED for a in BetaApplication.objects.all())
    response = bulk(reviewer_client, "bulk_start_review", apps, post="yes", reason="batch")
    assert response.status_code == 302
    assert set(BetaApplication.objects.values_list("state", flat=True)) == {S.IN_REVIEW}
    assert AuditEvent.objects.filter(action="beta_application.in_review").count() == 2


def test_r9_bulk_actions_skip_applications_in_the_wrong_state(reviewer_client):
    ready = BetaApplicationFactory(state=S.IN_REVIEW)
    early = BetaApplicationFactory(state=S.SUBMITTED)
    response = bulk(reviewer_client, "bulk_approve", [ready, early], post="yes", reason="")
    assert response.status_code == 302
    assert BetaApplication.objects.get(pk=ready.pk).state == S.APPROVED
    assert BetaApplication.objects.get(pk=early.pk).state == S.SUBMITTED
    messages = [str(m) for m in reviewer_client.get(CHANGELIST).context["messages"]]
    assert any("not possible" in m for m in messages)


def test_r9_bulk_reject_needs_a_reason(reviewer_client):
    app = BetaApplicationFactory()
    page = bulk(reviewer_client, "bulk_reject", [app], post="yes", reason="")
    assert page.status_code == 200
    assert "reason" in page.context["form"].errors
    assert BetaApplication.objects.get(pk=app.pk).state == S.SUBMITTED
    bulk(reviewer_client, "bulk_reject", [app], post="yes", reason="Not in beta scope")
    assert BetaApplication.objects.get(pk=app.pk).state == S.REJECTED


def test_bulk_confirm_goes_to_the_confirm_page_for_one(reviewer_client):
    one = BetaApplicationFactory(state=S.APPROVED)
    two = BetaApplicationFactory(state=S.APPROVED)
    response = bulk(reviewer_client, "bulk_confirm", [one])
    assert response.status_code == 302
    assert response["Location"] == confirm_url(one)
    response = bulk(reviewer_client, "bulk_confirm", [one, two])
    assert response.status_code == 302
    assert not Tenant.objects.exists()


# --- Who may not --------------------------------------------------------------------------


@pytest.fixture
def staff_outside_reviewers():
    return UserFactory(email="ops@example.com", is_staff=True)


def assert_untouched(app, state):
    app.refresh_from_db()
    assert app.state == state
    assert not Tenant.objects.exists()
    assert not AuditEvent.objects.exists()


def test_r9_staff_outside_reviewers_cannot_reach_the_review_actions(
    client, staff_outside_reviewers
):
    client.force_login(staff_outside_reviewers)
    submitted = BetaApplicationFactory()
    approved = BetaApplicationFactory(state=S.APPROVED)
    assert client.get(CHANGELIST).status_code == 403
    assert client.get(change_url(submitted)).status_code == 403
    response = client.post(transition_url(submitted), {"action": "start_review"})
    assert response.status_code == 403
    assert client.get(confirm_url(approved)).status_code == 403
    response = client.post(confirm_url(approved), {"contract_unit_price": "1", "slug": "mine"})
    assert response.status_code == 403
    bulk(client, "bulk_start_review", [submitted], post="yes", reason="x")
    assert_untouched(submitted, S.SUBMITTED)
    assert_untouched(approved, S.APPROVED)


def test_r9_staff_who_may_view_and_edit_but_not_review_still_cannot_act(
    client, staff_outside_reviewers
):
    staff_outside_reviewers.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_betaapplication", "change_betaapplication"])
    )
    client.force_login(staff_outside_reviewers)
    app = BetaApplicationFactory(state=S.APPROVED)
    page = client.get(change_url(app))
    assert page.status_code == 200
    assert "review_actions" not in page.context
    assert b'id="review-actions"' not in page.content
    listing = client.get(CHANGELIST)
    action_form = listing.context["action_form"]  # None: no action at all
    action_names = [n for n, _ in action_form.fields["action"].choices] if action_form else []
    assert not any(name.startswith("bulk_") for name in action_names)
    assert client.post(transition_url(app), {"action": "reject", "reason": "x"}).status_code == 403
    assert client.get(confirm_url(app)).status_code == 403
    bulk(client, "bulk_reject", [app], post="yes", reason="x")
    bulk(client, "bulk_confirm", [app])
    assert_untouched(app, S.APPROVED)


def test_r9_a_customer_cannot_reach_the_review_actions(client, alice):
    client.force_login(alice)
    app = BetaApplicationFactory(state=S.APPROVED, applicant=alice)
    for response in [
        client.get(CHANGELIST),
        client.post(transition_url(app), {"action": "reject", "reason": "x"}),
        client.get(confirm_url(app)),
        client.post(confirm_url(app), {"contract_unit_price": "1", "slug": "mine"}),
        bulk(client, "bulk_reject", [app], post="yes", reason="x"),
    ]:
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")
    app.refresh_from_db()
    assert app.state == S.APPROVED
    assert not AuditEvent.objects.exists()


def test_superusers_may_review(client):
    root = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(root)
    app = BetaApplicationFactory()
    client.post(transition_url(app), {"action": "start_review"})
    assert BetaApplication.objects.get(pk=app.pk).state == S.IN_REVIEW


def test_saving_notes_never_undoes_a_concurrent_transition(reviewer_client, reviewer, monkeypatch):
    """The notes form loads the application, then saves; a transition committed in between
    must survive the save."""
    from console.admin_beta import BetaApplicationAdmin

    app = BetaApplicationFactory()
    real_save_form = BetaApplicationAdmin.save_form

    def someone_acts_meanwhile(self, request, form, change):
        beta_services.beta_application_reject(
            application=BetaApplication.objects.get(pk=app.pk), actor=reviewer, reason="x"
        )
        return real_save_form(self, request, form, change)

    monkeypatch.setattr(BetaApplicationAdmin, "save_form", someone_acts_meanwhile)
    response = reviewer_client.post(change_url(app), {"reviewer_notes": "late note"})
    assert response.status_code == 302
    app.refresh_from_db()
    assert app.reviewer_notes == "late note"
    assert app.state == S.REJECTED
