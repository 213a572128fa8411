"""R9: emails to the applicant on every transition and to reviewers when an application
arrives — HTML and text, after commit, to the right recipients, once each."""

from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.test import override_settings

from console import beta_services
from console.errors import Conflict
from console.models import BetaApplication, OutboundEmail
from console.tests.factories import BetaApplicationFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


S = BetaApplication.State


@pytest.fixture
def reviewers():
    group = Group.objects.get(name="Reviewers")
    rita = UserFactory(email="rita@example.com", is_staff=True, language="en")
    rob = UserFactory(email="rob@example.com", is_staff=True, language="zh-hans")
    group.user_set.add(rita, rob)
    # A reviewer who is also a superuser still gets one email.
    sam = UserFactory(email="sam@example.com", is_staff=True, is_superuser=True)
    group.user_set.add(sam)
    UserFactory(email="root@example.com", is_staff=True, is_superuser=True)
    # Not notified: inactive reviewer, staff outside the group, non-staff superuser, customer.
    gone = UserFactory(email="gone@example.com", is_staff=True, is_active=False)
    group.user_set.add(gone)
    UserFactory(email="ops@example.com", is_staff=True)
    UserFactory(email="odd@example.com", is_superuser=True, is_staff=False)
    return ["rita@example.com", "rob@example.com", "root@example.com", "sam@example.com"]


def submit(applicant, **extra):
    data = {
        "applicant": applicant,
        "company_name": "Open Pit Ltd",
        "contact_name": "Ann",
        "phone": "+86 10 1234 5678",
        "email": applicant.email,
        "industry": BetaApplication.Industry.MINING,
        "scenario": "Remote drilling rigs",
        "expected_devices": 3,
        "cameras_per_device": 2,
        "resolution": BetaApplication.Resolution.HD_720,
        "language": "en",
        **extra,
    }
    return beta_services.beta_application_submit(**data)


@override_settings(SITE_URL="https://console.example.com")
def test_r9_new_application_emails_the_applicant_and_each_reviewer_once(
    reviewers, mailoutbox, django_capture_on_commit_callbacks
):
    applicant = UserFactory(email="ann@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        app = submit(applicant)
    recipients = sorted(tuple(m.to) for m in mailoutbox)
    assert recipients == sorted([("ann@example.com",)] + [(r,) for r in reviewers])
    to_applicant = next(m for m in mailoutbox if m.to == ["ann@example.com"])
    assert "Open Pit Ltd" in to_applicant.subject
    assert "https://console.example.com/application/" in to_applicant.body
    html, mime = to_applicant.alternatives[0]
    assert mime == "text/html"
    assert "https://console.example.com/application/" in html
    to_reviewer = next(m for m in mailoutbox if m.to == ["rita@example.com"])
    assert f"#{app.pk}" in to_reviewer.subject
    change_url = f"https://console.example.com/admin/console/betaapplication/{app.pk}/change/"
    assert change_url in to_reviewer.body
    assert change_url in to_reviewer.alternatives[0][0]
    assert "Remote drilling rigs" in to_reviewer.body


def test_r9_contact_email_also_hears_when_it_differs(
    mailoutbox, django_capture_on_commit_callbacks
):
    applicant = UserFactory(email="ann@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        submit(applicant, email="OPS@openpit.example")
    # R13: one email per recipient.
    assert sorted(m.to for m in mailoutbox) == [["OPS@openpit.example"], ["ann@example.com"]]
    mailoutbox.clear()
    applicant2 = UserFactory(email="bo@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        submit(applicant2, email="BO@example.com")  # same address, other case: once
    assert [m.to for m in mailoutbox] == [["bo@example.com"]]


def test_r9_nothing_is_sent_before_commit(
    reviewers, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        submit(UserFactory())
    assert mailoutbox == []
    # R13: stored with the change, one per recipient; their delivery queued on commit.
    assert OutboundEmail.objects.filter(status="pending").count() == 1 + len(reviewers)
    assert len(callbacks) == 2  # the applicant's email, the reviewers' emails


def test_r9_every_transition_emails_the_applicant_once(
    reviewers, mailoutbox, django_capture_on_commit_callbacks
):
    reviewer = UserFactory(is_staff=True)
    app = BetaApplicationFactory(applicant=UserFactory(email="ann@example.com"))
    steps = [
        ("in review", lambda: beta_services.beta_application_start_review(
            application=app, actor=reviewer)),
        ("approved", lambda: beta_services.beta_application_approve(
            application=app, actor=reviewer)),
        ("ready", lambda: beta_services.beta_application_confirm(
            application=app, actor=reviewer, contract_unit_price=Decimal("3600"), slug="pit")),
    ]  # fmt: skip
    for word, step in steps:
        mailoutbox.clear()
        with django_capture_on_commit_callbacks(execute=True):
            step()
        assert len(mailoutbox) == 1
        assert mailoutbox[0].to == ["ann@example.com"]
        assert word in mailoutbox[0].subject
        assert mailoutbox[0].alternatives[0][1] == "text/html"
    assert "/" in mailoutbox[0].body  # the confirmed email links to the console


@pytest.mark.parametrize(
    ("from_state", "action", "word"),
    [(S.APPROVED, "reject", "not accepted"), (S.IN_REVIEW, "withdraw", "withdrawn")],
)
def test_r9_closing_transitions_email_the_applicant(
    from_state, action, word, reviewers, mailoutbox, django_capture_on_commit_callbacks
):
    app = BetaApplicationFactory(state=from_state)
    with django_capture_on_commit_callbacks(execute=True):
        if action == "reject":
            beta_services.beta_application_reject(
                application=app, actor=UserFactory(is_staff=True), reason="Out of region"
            )
        else:
            beta_services.beta_application_withdraw(
                application=app, actor=app.applicant, reason="Changed plans"
            )
    assert [m.to for m in mailoutbox] == [[app.applicant.email]]
    assert word in mailoutbox[0].subject
    # A rejection's reason reaches the applicant; a withdrawal's is their own.
    if action == "reject":
        assert "Out of region" in mailoutbox[0].body
        assert "Out of region" in mailoutbox[0].alternatives[0][0]
    else:
        assert "Changed plans" not in mailoutbox[0].body


def test_r9_internal_reasons_are_not_emailed(mailoutbox, django_capture_on_commit_callbacks):
    app = BetaApplicationFactory(state=S.IN_REVIEW)
    with django_capture_on_commit_callbacks(execute=True):
        beta_services.beta_application_approve(
            application=app, actor=UserFactory(is_staff=True), reason="INTERNAL margin note"
        )
    assert len(mailoutbox) == 1
    assert "INTERNAL" not in mailoutbox[0].body
    assert "INTERNAL" not in mailoutbox[0].alternatives[0][0]


def test_r9_a_failed_transition_sends_nothing(mailoutbox, django_capture_on_commit_callbacks):
    TenantFactory(slug="taken")
    app = BetaApplicationFactory(state=S.APPROVED)
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(Conflict):
        beta_services.beta_application_confirm(
            application=app, actor=UserFactory(is_staff=True), contract_unit_price="1", slug="taken"
        )
    assert mailoutbox == []


def test_emails_render_in_the_recipients_language(mailoutbox, django_capture_on_commit_callbacks):
    """The helper renders under the recipient's language, whatever the request's."""
    from django.utils import translation

    from console.emails import render_templated_email

    app = BetaApplicationFactory(language="zh-hans")
    with translation.override("en"):
        message = render_templated_email(
            to=["a@example.com"],
            template_prefix="emails/beta_status",
            context={"application": app, "state": app.state},
            language="zh-hans",
        )
    assert 'lang="zh-hans"' in message.alternatives[0][0]
    assert "\n" not in message.subject
