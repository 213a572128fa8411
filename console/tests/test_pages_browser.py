"""Every console page in a real browser (Debian's Chromium driven by Playwright), at 1366 px
and 390 px wide, in zh-hans and en: the public pages logged out, a beta applicant's pages,
and an owner's pages over a tenant with something on every page (devices with cameras,
licenses expiring within 7 and 30 days, paid and unpaid orders, a live remote-control
session, audit events, a webhook endpoint with deliveries, a pending invitation, an extra
notification recipient). No page scrolls sideways, logs a console error or asks a host but
the server; at 390 px the navigation menu opens on every logged-in page. Screenshots go to
var/test-artifacts/ (layout-<page>-<width>-<language>.png).

The dashboard, devices and licenses pages are test_layout_browser.py's; the checks are
console/tests/browser.py's. Skipped when the playwright package or /usr/bin/chromium is
missing."""

import datetime as dt
import json
import uuid

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.db import transaction
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from billing.tests.utils import new_order, paid_new_order
from console import beta_services, notify_settings, signup, team, webhooks
from console.models import (
    ApiKey,
    BetaApplication,
    Membership,
    NotificationRecipient,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from console.services import api_key_revoke
from console.tests.browser import BROWSER_MARKS, PASSWORD, chromium, visitors
from console.tests.factories import (
    BetaApplicationFactory,
    CameraFactory,
    CockpitFactory,
    DeviceFactory,
    LicenseFactory,
    MembershipFactory,
    UserFactory,
    make_api_key,
)
from devices.models import ControlSession
from licensing.services import licenses_bind_count
from licensing.services.control import control_acquire

pytestmark = [*BROWSER_MARKS, pytest.mark.django_db(transaction=True)]

OWNER = "wang.li.operations@acme-mining.example.com"
APPLICANT = "zhao.min@quay-robotics.example.com"


def _sessions_history(device, cockpits, now):
    """Ended sessions over the last weeks: the device's history and its usage chart."""
    reasons = list(ControlSession.EndReason)[:3]
    for day in range(1, 26, 2):
        started = now - dt.timedelta(days=day, hours=day % 5)
        ControlSession.objects.create(
            device=device,
            cockpit=cockpits[day % len(cockpits)],
            started_at=started,
            lease_expires_at=started + dt.timedelta(hours=2, minutes=1),
            ended_at=started + dt.timedelta(hours=1 + day % 3, minutes=17),
            end_reason=reasons[day % len(reasons)],
        )


def _webhook(tenant, owner, now):
    """An endpoint with a delivered and a failing delivery (rows, not the worker: under tests
    Celery runs eagerly and would post to the address)."""
    endpoint = WebhookEndpoint.objects.create(
        tenant=tenant,
        url="https://hooks.acme-mining.example.com/field-console/events/receiver-endpoint-v2",
        events=["license.expiring", "license.expired", "order.paid", "order.refunded"],
        secret_encrypted=webhooks.secret_encrypt(webhooks.secret_generate()),
        failing_since=now - dt.timedelta(hours=3),
        last_success_at=now - dt.timedelta(hours=5),
    )
    for i, (status, code, error) in enumerate(
        [
            (WebhookDelivery.Status.SUCCEEDED, 200, ""),
            (
                WebhookDelivery.Status.FAILED,
                503,
                "HTTP 503 from hooks.acme-mining.example.com: upstream_connect_error_or_"
                "disconnect_reset_before_headers_reset_reason_connection_termination",
            ),
            (WebhookDelivery.Status.PENDING, None, "timed out after 10 s"),
        ]
    ):
        at = now - dt.timedelta(hours=5 - i)
        event = WebhookEvent.objects.create(
            id=uuid.uuid4(),
            tenant=tenant,
            type=["order.paid", "license.expiring", "license.expired"][i],
            data={"order": 1, "licenses": [1, 2, 3]},
            created_at=at,
        )
        WebhookDelivery.objects.create(
            endpoint=endpoint,
            event=event,
            status=status,
            attempts=1 + i,
            next_attempt_at=at + dt.timedelta(minutes=30),
            last_attempt_at=at,
            response_status=code,
            response_body='{"error":"service_unavailable","detail":"receiver is restarting"}'
            if code == 503
            else "",
            duration_ms=180 + i * 40,
            last_error=error,
            created_at=at,
            delivered_at=at if status == WebhookDelivery.Status.SUCCEEDED else None,
        )
    return endpoint


@pytest.fixture
def world(transactional_db):
    """A tenant confirmed from its beta application, with content on every page."""
    now = timezone.now()
    staff = UserFactory(email="reviewer@example.com", is_staff=True)
    owner = UserFactory(email=OWNER, full_name="王立 (Wang Li)", password=PASSWORD)
    application = BetaApplicationFactory(
        applicant=owner,
        company_name="Acme Mining Company Limited — Inner Mongolia Open-Pit Operations",
        language="zh-hans",
    )
    beta_services.beta_application_start_review(application=application, actor=staff)
    beta_services.beta_application_approve(application=application, actor=staff)
    tenant = beta_services.beta_application_confirm(
        application=application, actor=staff, slug="acme", contract_unit_price="3200.00"
    )
    MembershipFactory(
        user=UserFactory(email="liu.yang.fleet.admin@acme-mining.example.com"),
        tenant=tenant,
        role=Membership.Role.ADMIN,
    )
    MembershipFactory(
        user=UserFactory(email="viewer@acme-mining.example.com"),
        tenant=tenant,
        role=Membership.Role.VIEWER,
    )
    team.invitation_create(
        tenant=tenant,
        email="new.remote.operator.with.a.long.address@acme-mining.example.com",
        role=Membership.Role.VIEWER,
        actor=owner,
    )
    notify_settings.notification_recipient_add(
        tenant=tenant,
        kind=NotificationRecipient.Kind.BILLING,
        email="finance.department.accounts-payable@acme-mining.example.com",
        language="en",
        actor=owner,
    )
    make_api_key(tenant, ApiKey.Role.ADMIN, name="Fleet gateway provisioning (production)")
    old_key, _raw = make_api_key(tenant, ApiKey.Role.VIEWER, name="Old dashboard")
    api_key_revoke(tenant=tenant, key=old_key, actor=owner)

    devices = []
    for i in range(6):
        device = DeviceFactory(
            tenant=tenant,
            serial=f"haul_truck_930e_{i + 1:02d}",
            name=f"Haul truck {i + 1} (Komatsu 930E)",
        )
        CameraFactory(device=device, name="Front wide-angle", width=1920, height=1080)
        CameraFactory(device=device, name="Rear", width=1280, height=720)
        CameraFactory(device=device, name="Cab interior", width=640, height=480)
        devices.append(device)
    truck = devices[0]
    # Paid licenses for a year, bound to the first trucks; one unpaid order; and licenses
    # running out within 7 and within 30 days.
    paid = paid_new_order(tenant, quantity=6)
    for device in devices[:2]:
        licenses_bind_count(tenant=tenant, device=device, count=3, actor=owner)
    new_order(tenant, quantity=3, years=2)
    LicenseFactory(tenant=tenant, device=devices[2], expires_at=now + dt.timedelta(days=4))
    LicenseFactory(tenant=tenant, device=devices[3], expires_at=now + dt.timedelta(days=21))
    LicenseFactory(tenant=tenant, expires_at=now + dt.timedelta(days=27))

    cockpits = [
        CockpitFactory(tenant=tenant, name="Control room A — desk 1"),
        CockpitFactory(tenant=tenant, name="Control room B — mobile cockpit"),
    ]
    _sessions_history(truck, cockpits, now)
    with transaction.atomic():
        session, _created = control_acquire(
            tenant=tenant, device=truck, cockpit_id=cockpits[0].pk, trusted=True, actor=owner
        )
    # The lease outlives the walk (a real cockpit keeps it alive with heartbeats).
    ControlSession.objects.filter(pk=session.pk).update(
        lease_expires_at=now + dt.timedelta(hours=2)
    )
    endpoint = _webhook(tenant, owner, now)

    # A beta applicant without an organisation: rejected, may apply again.
    applicant = UserFactory(email=APPLICANT, full_name="赵敏", password=PASSWORD)
    rejected = BetaApplicationFactory(
        applicant=applicant, company_name="Quay Robotics", industry=BetaApplication.Industry.PORTS
    )
    beta_services.beta_application_start_review(application=rejected, actor=staff)
    beta_services.beta_application_reject(
        application=rejected,
        actor=staff,
        reason="The beta is for fleets of ten devices or more; please apply again when the "
        "pilot grows.",
    )

    invitation = tenant.invitations.get()
    signup_token = (
        signup._fernet()
        .encrypt(
            json.dumps({"e": "new.user@example.com", "n": "New User", "p": "x", "l": "en"}).encode()
        )
        .decode()
    )
    reset = (
        f"/reset/{urlsafe_base64_encode(force_bytes(owner.pk))}/"
        f"{default_token_generator.make_token(owner)}/"
    )
    camera = truck.cameras.order_by("slot").first()
    pending = tenant.orders.get(status="pending_payment")
    return {
        "public": [
            ("login", "/login/"),
            ("signup", "/signup/"),
            ("signup-sent", "/signup/sent/"),
            ("signup-confirm", f"/signup/confirm/{signup_token}/"),
            ("password-reset", "/password-reset/"),
            ("password-reset-sent", "/password-reset/sent/"),
            ("password-reset-confirm", reset),
            ("password-reset-complete", "/reset/done/"),
            ("invitation", f"/invite/{team.invitation_token(invitation)}/"),
        ],
        "applicant": [("apply", "/apply/"), ("application-rejected", "/application/")],
        "owner": [
            ("device-detail", f"/devices/{truck.pk}/"),
            ("device-edit", f"/devices/{truck.pk}/edit/"),
            ("camera-add", f"/devices/{truck.pk}/cameras/add/"),
            ("camera-edit", f"/devices/{truck.pk}/cameras/{camera.pk}/edit/"),
            ("device-delete", f"/devices/{devices[5].pk}/delete/"),
            ("device-sessions", f"/devices/{truck.pk}/sessions/"),
            ("control-sessions", "/control/"),
            ("control-session-end", f"/control/{session.pk}/end/"),
            ("cockpits", "/cockpits/"),
            ("cockpit-edit", f"/cockpits/{cockpits[1].pk}/edit/"),
            ("orders", "/orders/"),
            ("order-paid", f"/orders/{paid.pk}/"),
            ("order-pending", f"/orders/{pending.pk}/"),
            ("order-cancel", f"/orders/{pending.pk}/cancel/"),
            ("order-receipt", f"/orders/{paid.pk}/receipt/"),
            ("order-new", f"/orders/new/?device={truck.pk}"),
            ("order-renew-expiring", "/orders/renew-expiring/"),
            ("team", "/team/"),
            ("audit-log", "/audit/"),
            ("notification-settings", "/settings/notifications/"),
            ("webhooks", "/webhooks/"),
            ("webhook-detail", f"/webhooks/{endpoint.pk}/"),
            ("api-keys", "/keys/"),
            ("password-change", "/password-change/"),
            ("password-change-done", "/password-change/done/"),
            ("application", "/application/"),
        ],
    }


def test_every_page_fits_1366_and_390_px_in_both_languages(live_server, world):
    problems: list[str] = []
    errors: list[str] = []
    foreign: list[str] = []
    with chromium() as browser:
        for visitor in visitors(browser, live_server.url, data_words=("王立", "赵敏")):
            for name, path in world["public"]:
                visitor.visit(path, name)
            for who, email, lands_on in (
                ("applicant", APPLICANT, "/application/"),
                ("owner", OWNER, "/"),
            ):
                visitor.log_in(email, lands_on=lands_on)
                for name, path in world[who]:
                    visitor.visit(path, name)
                    visitor.check_navigation(path)
                visitor.log_out()
            problems += visitor.problems
            errors += visitor.errors
            foreign += visitor.foreign
    assert not problems, "\n".join(problems)
    assert not errors, "\n".join(errors)
    assert not foreign, "\n".join(foreign)
