"""R9: the beta application state machine — every allowed and every forbidden transition.

An invalid transition raises a clear error and changes nothing: no state change, no audit
event, no tenant, no email.
"""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from console import beta_services
from console.beta_services import InvalidTransition
from console.errors import Conflict, Forbidden, InvalidInput
from console.models import AuditEvent, BetaApplication, Membership, Tenant
from console.tests.factories import BetaApplicationFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


S = BetaApplication.State
ALL_STATES = list(S.values)
ALLOWED = {
    "start_review": {S.SUBMITTED: S.IN_REVIEW},
    "approve": {S.IN_REVIEW: S.APPROVED},
    "confirm": {S.APPROVED: S.CONFIRMED},
    "reject": {S.SUBMITTED: S.REJECTED, S.IN_REVIEW: S.REJECTED, S.APPROVED: S.REJECTED},
    "withdraw": {S.SUBMITTED: S.WITHDRAWN, S.IN_REVIEW: S.WITHDRAWN, S.APPROVED: S.WITHDRAWN},
}
ALLOWED_CASES = [(a, s, to) for a, table in ALLOWED.items() for s, to in table.items()]
FORBIDDEN_CASES = [(a, s) for a in ALLOWED for s in ALL_STATES if s not in ALLOWED[a]]


@pytest.fixture
def reviewer():
    return UserFactory(email="reviewer@example.com", is_staff=True)


def application_in(state: str) -> BetaApplication:
    tenant = TenantFactory() if state == S.CONFIRMED else None
    return BetaApplicationFactory(state=state, tenant=tenant)


def run(action: str, app: BetaApplication, reviewer, reason: str = "because"):
    if action == "start_review":
        return beta_services.beta_application_start_review(
            application=app, actor=reviewer, reason=reason
        )
    if action == "approve":
        return beta_services.beta_application_approve(
            application=app, actor=reviewer, reason=reason
        )
    if action == "reject":
        return beta_services.beta_application_reject(application=app, actor=reviewer, reason=reason)
    if action == "withdraw":
        return beta_services.beta_application_withdraw(
            application=app, actor=app.applicant, reason=reason
        )
    if action == "confirm":
        return beta_services.beta_application_confirm(
            application=app,
            actor=reviewer,
            contract_unit_price=Decimal("3000.00"),
            slug=f"co-{app.pk}",
            reason=reason,
        )
    raise AssertionError(action)


def test_the_table_covers_every_action_and_state():
    assert set(ALLOWED) == set(beta_services.TRANSITIONS)
    for action, (allowed_from, to_state) in beta_services.TRANSITIONS.items():
        assert set(ALLOWED[action]) == set(allowed_from)
        assert set(ALLOWED[action].values()) == {to_state}
    assert len(ALLOWED_CASES) + len(FORBIDDEN_CASES) == 5 * 6


@pytest.mark.parametrize(("action", "from_state", "to_state"), ALLOWED_CASES)
def test_r9_allowed_transition_moves_state_and_audits(
    action, from_state, to_state, reviewer, django_capture_on_commit_callbacks
):
    app = application_in(from_state)
    with django_capture_on_commit_callbacks() as callbacks:
        run(action, app, reviewer, reason="checked the scenario")
    app.refresh_from_db()
    assert app.state == to_state
    event = AuditEvent.objects.get(target_type="console.betaapplication", target_id=str(app.pk))
    assert event.action == f"beta_application.{to_state}"
    actor = app.applicant if action == "withdraw" else reviewer
    assert event.actor == actor
    assert event.data["from"] == from_state
    assert event.data["to"] == to_state
    assert event.data["reason"] == "checked the scenario"
    assert len(callbacks) == 1  # one email to the applicant, after commit


@pytest.mark.parametrize(("action", "from_state"), FORBIDDEN_CASES)
def test_r9_forbidden_transition_raises_and_changes_nothing(
    action, from_state, reviewer, django_capture_on_commit_callbacks
):
    app = application_in(from_state)
    before = (app.state, app.tenant_id, app.state_changed_at)
    tenants = Tenant.objects.count()
    with django_capture_on_commit_callbacks() as callbacks, pytest.raises(InvalidTransition) as exc:
        run(action, app, reviewer)
    assert exc.value.code == "INVALID_TRANSITION"
    assert exc.value.status_code == 409
    assert exc.value.extra == {"state": from_state, "action": action}
    app.refresh_from_db()
    assert (app.state, app.tenant_id, app.state_changed_at) == before
    assert not AuditEvent.objects.filter(target_type="console.betaapplication").exists()
    assert Tenant.objects.count() == tenants
    assert callbacks == []


def test_r9_invalid_transition_is_checked_against_the_database_not_the_instance(reviewer):
    """A stale instance (the page was open while someone else acted) cannot act twice."""
    app = application_in(S.SUBMITTED)
    stale = BetaApplication.objects.get(pk=app.pk)
    beta_services.beta_application_reject(application=app, actor=reviewer, reason="no fit")
    assert stale.state == S.SUBMITTED
    with pytest.raises(InvalidTransition):
        beta_services.beta_application_start_review(application=stale, actor=reviewer)
    assert BetaApplication.objects.get(pk=app.pk).state == S.REJECTED


def test_r9_reject_needs_a_reason(reviewer):
    app = application_in(S.IN_REVIEW)
    with pytest.raises(InvalidInput) as exc:
        beta_services.beta_application_reject(application=app, actor=reviewer, reason="  ")
    assert "reason" in exc.value.errors
    app.refresh_from_db()
    assert app.state == S.IN_REVIEW
    assert not AuditEvent.objects.exists()


def test_r9_reason_too_long_is_refused(reviewer):
    app = application_in(S.SUBMITTED)
    with pytest.raises(InvalidInput):
        beta_services.beta_application_start_review(
            application=app, actor=reviewer, reason="x" * 2001
        )
    assert BetaApplication.objects.get(pk=app.pk).state == S.SUBMITTED


def test_r9_only_the_applicant_withdraws(reviewer):
    app = application_in(S.IN_REVIEW)
    with pytest.raises(Forbidden):
        beta_services.beta_application_withdraw(application=app, actor=reviewer)
    with pytest.raises(Forbidden):
        beta_services.beta_application_withdraw(application=app, actor=UserFactory())
    assert BetaApplication.objects.get(pk=app.pk).state == S.IN_REVIEW
    assert not AuditEvent.objects.exists()


def test_r9_whole_path_through_services(reviewer):
    applicant = UserFactory(email="ann@example.com")
    app = beta_services.beta_application_submit(
        applicant=applicant,
        company_name="Deep Pit Mining",
        contact_name="Ann",
        phone="+86 10 1234 5678",
        email="ops@deeppit.example",
        industry=BetaApplication.Industry.MINING,
        scenario="Remote haul trucks",
        expected_devices=20,
        cameras_per_device=4,
        resolution=BetaApplication.Resolution.HD_1080,
        language="en",
    )
    assert app.state == S.SUBMITTED
    beta_services.beta_application_start_review(application=app, actor=reviewer)
    beta_services.beta_application_approve(application=app, actor=reviewer, reason="good fit")
    tenant = beta_services.beta_application_confirm(
        application=app, actor=reviewer, contract_unit_price="3240.50", slug="deep-pit"
    )
    app.refresh_from_db()
    assert app.state == S.CONFIRMED
    assert app.tenant == tenant
    assert tenant.name == "Deep Pit Mining"
    assert tenant.slug == "deep-pit"
    assert tenant.status == Tenant.Status.ACTIVE
    assert tenant.contract_unit_price == Decimal("3240.50")
    assert tenant.language == "en"
    assert Membership.objects.get(tenant=tenant).user == applicant
    assert Membership.objects.get(tenant=tenant).role == Membership.Role.OWNER
    trail = list(
        AuditEvent.objects.filter(target_type="console.betaapplication", target_id=str(app.pk))
        .order_by("created_at", "id")
        .values_list("action", "actor_id")
    )
    assert trail == [
        ("beta_application.submitted", applicant.pk),
        ("beta_application.in_review", reviewer.pk),
        ("beta_application.approved", reviewer.pk),
        ("beta_application.confirmed", reviewer.pk),
    ]
    confirmed = AuditEvent.objects.get(action="beta_application.confirmed")
    assert confirmed.tenant == tenant
    assert confirmed.data["tenant"] == "deep-pit"
    assert confirmed.data["contract_unit_price"] == "3240.50"
    assert AuditEvent.objects.filter(action="tenant.created", tenant=tenant).exists()


@pytest.mark.parametrize(
    "price", ["3333.335", "-1", "0", "0.00", "abc", "", "NaN", "Infinity", 1.5, "1e20"]
)
def test_r2_r9_confirm_refuses_a_bad_price_and_changes_nothing(price, reviewer):
    app = application_in(S.APPROVED)
    with pytest.raises(InvalidInput) as exc:
        beta_services.beta_application_confirm(
            application=app, actor=reviewer, contract_unit_price=price, slug="fine-slug"
        )
    assert "contract_unit_price" in exc.value.errors
    app.refresh_from_db()
    assert app.state == S.APPROVED
    assert app.tenant is None
    assert not Tenant.objects.filter(slug="fine-slug").exists()
    assert not AuditEvent.objects.exists()


def test_r9_confirm_with_a_taken_slug_creates_nothing(reviewer):
    TenantFactory(slug="taken")
    app = application_in(S.APPROVED)
    with pytest.raises(Conflict) as exc:
        beta_services.beta_application_confirm(
            application=app, actor=reviewer, contract_unit_price="3600", slug="taken"
        )
    assert exc.value.code == "SLUG_TAKEN"
    assert "slug" in exc.value.errors
    app.refresh_from_db()
    assert app.state == S.APPROVED
    assert Tenant.objects.count() == 1
    assert not Membership.objects.exists()
    assert not AuditEvent.objects.exists()


@pytest.mark.parametrize("slug", ["", "Bad Slug", "-lead", "x" * 51, "a_b"])
def test_r9_confirm_with_an_invalid_slug_creates_nothing(slug, reviewer):
    app = application_in(S.APPROVED)
    with pytest.raises(InvalidInput):
        beta_services.beta_application_confirm(
            application=app, actor=reviewer, contract_unit_price="3600", slug=slug
        )
    assert BetaApplication.objects.get(pk=app.pk).state == S.APPROVED
    assert not Tenant.objects.exists()


def test_r2_confirm_stores_the_price_with_two_places(reviewer):
    app = application_in(S.APPROVED)
    tenant = beta_services.beta_application_confirm(
        application=app, actor=reviewer, contract_unit_price="3600", slug="two-places"
    )
    tenant.refresh_from_db()
    assert tenant.contract_unit_price == Decimal("3600.00")
    assert str(tenant.contract_unit_price) == "3600.00"


def submit(applicant, **overrides):
    data = {
        "applicant": applicant,
        "company_name": "Harbour Co",
        "contact_name": "Hal",
        "phone": "021-5555 0000",
        "email": applicant.email,
        "industry": BetaApplication.Industry.PORTS,
        "scenario": "Remote cranes",
        "expected_devices": 5,
        "cameras_per_device": 8,
        "resolution": BetaApplication.Resolution.UHD_4K,
        "language": "zh-hans",
    }
    data.update(overrides)
    return beta_services.beta_application_submit(**data)


def test_r9_one_open_application_per_applicant(reviewer):
    applicant = UserFactory()
    first = submit(applicant)
    with pytest.raises(Conflict) as exc:
        submit(applicant, company_name="Second try")
    assert exc.value.code == "APPLICATION_OPEN"
    assert BetaApplication.objects.filter(applicant=applicant).count() == 1
    # A rejected or withdrawn application no longer blocks a new one.
    beta_services.beta_application_reject(application=first, actor=reviewer, reason="no")
    second = submit(applicant, company_name="Second try")
    beta_services.beta_application_withdraw(application=second, actor=applicant)
    third = submit(applicant, company_name="Third try")
    assert third.state == S.SUBMITTED


def test_r9_the_database_enforces_one_open_application():
    app = BetaApplicationFactory(state=S.IN_REVIEW)
    with pytest.raises(IntegrityError), transaction.atomic():
        BetaApplicationFactory(applicant=app.applicant)
    BetaApplicationFactory(applicant=app.applicant, state=S.REJECTED)  # closed ones are fine


def test_r9_the_database_ties_the_tenant_to_confirmation():
    with pytest.raises(IntegrityError), transaction.atomic():
        BetaApplicationFactory(state=S.CONFIRMED, tenant=None)
    with pytest.raises(IntegrityError), transaction.atomic():
        BetaApplicationFactory(state=S.APPROVED, tenant=TenantFactory())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("expected_devices", 0),
        ("expected_devices", 100_001),
        ("cameras_per_device", 0),
        ("cameras_per_device", 9),
        ("industry", "fishing"),
        ("resolution", "8k"),
        ("phone", "call me"),
        ("email", "not-an-email"),
        ("company_name", "  "),
        ("language", "fr"),
    ],
)
def test_r9_submit_validates_input(field, value):
    applicant = UserFactory()
    with pytest.raises(InvalidInput) as exc:
        submit(applicant, **{field: value})
    assert field in exc.value.errors
    assert not BetaApplication.objects.exists()
    assert not AuditEvent.objects.exists()


def test_r9_submit_accepts_the_limits():
    submit(UserFactory(), expected_devices=1, cameras_per_device=1)
    submit(UserFactory(), expected_devices=100_000, cameras_per_device=8)
    assert BetaApplication.objects.count() == 2


def test_review_actions_follow_the_state():
    assert beta_services.review_actions_for(application_in(S.SUBMITTED)) == [
        "start_review",
        "reject",
    ]
    assert beta_services.review_actions_for(application_in(S.IN_REVIEW)) == ["approve", "reject"]
    assert beta_services.review_actions_for(application_in(S.APPROVED)) == ["confirm", "reject"]
    for state in (S.CONFIRMED, S.REJECTED, S.WITHDRAWN):
        assert beta_services.review_actions_for(application_in(state)) == []
