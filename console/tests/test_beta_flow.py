"""R9 end to end with the test client: sign up → apply → a reviewer reviews, approves and
confirms in the admin → the tenant is active, its owner logs in to the console and creates
an API key that works on the API. Emails land once each along the way."""

import re
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from rest_framework.test import APIClient

from console.models import AuditEvent, BetaApplication, Membership, Tenant, User
from console.tests.factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def test_r9_sign_up_apply_review_confirm_then_use_the_api(
    mailoutbox, django_capture_on_commit_callbacks
):
    reviewer = UserFactory(email="rita@example.com", is_staff=True, language="en")
    reviewer.groups.add(Group.objects.get(name="Reviewers"))
    customer = Client()
    staff = Client()
    staff.force_login(reviewer)

    # 1. Sign up, open the emailed link: logged in and sent to the apply page.
    with django_capture_on_commit_callbacks(execute=True):
        customer.post(
            "/signup/",
            {
                "email": "Wang@Minefield.example",
                "full_name": "Wang Li",
                "password1": "lantern-quarry-river-9",
                "password2": "lantern-quarry-river-9",
            },
        )
    link = re.search(r"https?://[^/\s]+(/signup/confirm/\S+/)", mailoutbox[-1].body).group(1)
    mailoutbox.clear()
    response = customer.post(link)
    assert response["Location"] == "/apply/"
    user = User.objects.get(email="wang@minefield.example")

    # 2. Apply.
    with django_capture_on_commit_callbacks(execute=True):
        response = customer.post(
            "/apply/",
            {
                "company_name": "Minefield Robotics",
                "contact_name": "Wang Li",
                "phone": "+86 10 8888 0000",
                "email": "wang@minefield.example",
                "industry": "mining",
                "scenario": "Remote excavators, 4 cameras each.",
                "expected_devices": "8",
                "cameras_per_device": "4",
                "resolution": "1080p",
                "language": "en",
            },
        )
    assert response["Location"] == "/application/"
    app = BetaApplication.objects.get(applicant=user)
    assert sorted(m.to[0] for m in mailoutbox) == ["rita@example.com", "wang@minefield.example"]
    # Until confirmation the status page is all the console shows.
    assert customer.get("/")["Location"] == "/application/"
    assert customer.get("/keys/")["Location"] == "/application/"

    # 3. The reviewer finds it, reviews and approves it in the admin.
    changelist = staff.get("/admin/console/betaapplication/?state__exact=submitted")
    assert app in changelist.context["cl"].result_list
    base = f"/admin/console/betaapplication/{app.pk}"
    for action in ["start_review", "approve"]:
        with django_capture_on_commit_callbacks(execute=True):
            response = staff.post(f"{base}/transition/", {"action": action, "reason": "ok"})
        assert response.status_code == 302
    app.refresh_from_db()
    assert app.state == BetaApplication.State.APPROVED
    assert customer.get("/application/").context["application"].state == "approved"

    # 4. ...and confirms it with the negotiated price and a slug.
    assert staff.get(f"{base}/confirm/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(
            f"{base}/confirm/", {"contract_unit_price": "3300.00", "slug": "minefield"}
        )
    assert response.status_code == 302
    tenant = Tenant.objects.get(slug="minefield")
    assert tenant.status == Tenant.Status.ACTIVE
    assert tenant.contract_unit_price == Decimal("3300.00")
    assert Membership.objects.get(tenant=tenant).user == user
    assert Membership.objects.get(tenant=tenant).role == Membership.Role.OWNER

    # Every transition was emailed to the applicant once, and audited with its actor.
    to_applicant = [m for m in mailoutbox if m.to == ["wang@minefield.example"]]
    assert len(to_applicant) == 4  # submitted, in review, approved, confirmed
    assert len([m for m in mailoutbox if m.to == ["rita@example.com"]]) == 1
    trail = AuditEvent.objects.filter(
        target_type="console.betaapplication", target_id=str(app.pk)
    ).order_by("created_at", "id")
    assert [(e.action, e.actor) for e in trail] == [
        ("beta_application.submitted", user),
        ("beta_application.in_review", reviewer),
        ("beta_application.approved", reviewer),
        ("beta_application.confirmed", reviewer),
    ]

    # 5. The owner logs in and now sees the console.
    customer.post("/logout/")
    response = customer.post(
        "/login/", {"username": "wang@minefield.example", "password": "lantern-quarry-river-9"}
    )
    assert response["Location"] == "/"
    dashboard = customer.get("/")
    assert dashboard.status_code == 200
    assert dashboard.context["tenant"] == tenant

    # 6. Creates an API key, which works on the API.
    response = customer.post("/keys/", {"name": "excavator gateways", "role": "operator"})
    raw = response.context["raw_key"]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    response = api.get("/api/v1/devices/")
    assert response.status_code == 200, response.content
    quote = api.post(
        "/api/v1/quote",
        {"cameras": [{"width": 1280, "height": 720}], "years": 1},
        format="json",
    )
    assert quote.status_code == 200, quote.content
    assert quote.json()["unit_price"] == "3300.00"  # R2: the confirmed contract price
