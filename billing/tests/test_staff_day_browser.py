"""A reviewer's day in a real browser (Debian's Chromium driven by Playwright) against the
live server: log into the admin as staff in both groups (no superuser), enrol an
authenticator as the second factor (STAFF_2FA_REQUIRED on, as in production) and keep the
recovery codes, see what waits on the index, review → approve → confirm a beta
application, confirm an order's payment, and reject a refund with a reason — first without
one, which the page refuses. The browser logs no console error on any page, the API docs
included (a Content-Security-Policy violation is one), asks no host but the server, and no
page scrolls sideways at 1280 px. Screenshots go to var/test-artifacts/
(layout-staff-day-<step>-1280-en.png).

The checks are console/tests/browser.py's. Skipped when the playwright package or
/usr/bin/chromium is missing."""

import re
from base64 import b32decode

import pytest
from django.contrib.auth.models import Group
from django_otp.oath import totp

from billing import services
from billing.models import Order, RefundRequest
from billing.tests.utils import new_order, paid_new_order
from console.models import AuditEvent, BetaApplication, Tenant
from console.staff import BILLING, REVIEWERS
from console.tests.browser import BROWSER_MARKS, PASSWORD, Visitor, chromium, expect
from console.tests.factories import BetaApplicationFactory, TenantFactory, UserFactory

pytestmark = [*BROWSER_MARKS, pytest.mark.django_db(transaction=True)]

S = BetaApplication.State


@pytest.fixture
def day(transactional_db, settings):
    # English pages; staff need a second factor, as in production (DEBUG off).
    settings.LANGUAGE_CODE = "en"
    settings.STAFF_2FA_REQUIRED = True
    staff = UserFactory(email="rita@example.com", password=PASSWORD, is_staff=True, language="en")
    staff.groups.add(Group.objects.get(name=REVIEWERS), Group.objects.get(name=BILLING))
    tenant = TenantFactory(name="Acme Mining", slug="acme")
    application = BetaApplicationFactory(company_name="Quay Robotics", language="en")
    order = new_order(tenant, quantity=1)
    refund = services.order_refund_request(
        tenant=tenant, order=paid_new_order(tenant, quantity=1), reason="Bought twice"
    )
    return {"staff": staff, "application": application, "order": order, "refund": refund}


def authenticator_code(secret_text: str) -> str:
    """What an authenticator app shows for the secret typed from the enrolment page."""
    key = b32decode(secret_text.replace(" ", "") + "=" * (-len(secret_text.replace(" ", "")) % 8))
    return f"{totp(key):06d}"


def test_a_reviewers_day_in_the_admin(live_server, day):
    base = live_server.url
    app, order, refund = day["application"], day["order"], day["refund"]
    with (
        chromium() as browser,
        Visitor(browser, base, language="en", width=1280, height=900) as visitor,
    ):
        page = visitor.page

        def shot(name: str):
            """The page as it is now: it fits, and its screenshot is kept."""
            visitor.check_fits(f"{page.url.removeprefix(base)} ({name})")
            return visitor.screenshot(f"staff-day-{name}")

        page.goto(f"{base}/admin/login/")
        page.fill("input[name=username]", day["staff"].email)
        page.fill("input[name=password]", PASSWORD)
        page.click("input[type=submit]")
        # No second factor yet: the admin sends the reviewer to enrol one.
        page.wait_for_url(re.compile(r".*/admin/2fa/setup/\?next=.*"))
        expect(page.locator("#totp-qr svg")).to_be_visible()
        secret = page.locator("#totp-secret").inner_text()
        shot("0-enrol-authenticator")
        page.fill("input[name=code]", authenticator_code(secret))
        page.click("input[type=submit]")
        expect(page.locator("#recovery-codes li")).to_have_count(10)
        page.click("#staff-otp-continue")
        page.wait_for_url(f"{base}/admin/")
        expect(page.locator("#site-name")).to_contain_text("Field Console")
        expect(page.locator("#queue-submitted td.count")).to_have_text("1")
        expect(page.locator("#queue-pending-orders td.count")).to_have_text("1")
        expect(page.locator("#queue-open-refunds td.count")).to_have_text("1")
        shot("1-index")

        # The application: review, approve, confirm.
        page.click("#queue-submitted a")
        page.click(f"a[href*='/betaapplication/{app.pk}/change/']")
        page.click("#review-start_review")
        expect(page.locator(".messagelist")).to_contain_text("In review")
        page.click("#review-approve")
        expect(page.locator(".messagelist")).to_contain_text("Approved")
        page.click("#review-actions a.button.default")
        page.fill("input[name=contract_unit_price]", "3000.00")
        page.fill("input[name=slug]", "quay")
        shot("2-confirm-application")
        page.click("input[type=submit]")
        expect(page.locator(".messagelist")).to_contain_text("is confirmed")
        shot("3-application-confirmed")

        # The order: confirm its payment.
        page.goto(f"{base}/admin/billing/order/{order.pk}/change/")
        page.click("#confirm-payment-button")
        page.fill("input[name=reference]", "CMB-20261202-1")
        shot("4-confirm-payment")
        page.click("input[type=submit]")
        expect(page.locator(".messagelist")).to_contain_text(f"Order #{order.pk} paid")

        # The refund: rejecting it needs a reason.
        page.goto(f"{base}/admin/billing/refundrequest/{refund.pk}/change/")
        page.click("text=Reject refund…")
        page.click("input[type=submit]")
        expect(page.locator(".errorlist")).to_contain_text("Give a reason")
        page.fill("textarea[name=reason]", "The licenses have streamed already.")
        shot("5-reject-refund")
        page.click("input[type=submit]")
        expect(page.locator(".messagelist")).to_contain_text(f"Refund R-{refund.pk} rejected")
        page.goto(f"{base}/admin/")
        expect(page.locator("#queue-submitted td.count")).to_have_text("0")
        expect(page.locator("#queue-open-refunds td.count")).to_have_text("0")
        last = shot("6-index-after")
        page.goto(f"{base}/api/docs/")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("Field Console API")
        visitor.assert_clean()

    # After the browser is gone: the database saw exactly what the pages showed.
    app.refresh_from_db()
    assert app.state == S.CONFIRMED
    assert Tenant.objects.get(slug="quay").is_active
    assert Order.objects.get(pk=order.pk).status == Order.Status.PAID
    refund.refresh_from_db()
    assert refund.status == RefundRequest.Status.REJECTED
    assert refund.decision_note == "The licenses have streamed already."
    assert AuditEvent.objects.filter(actor=day["staff"], action="refund.rejected").count() == 1
    assert AuditEvent.objects.filter(actor=day["staff"], action="staff.2fa_enrolled").count() == 1
    assert last.exists()
