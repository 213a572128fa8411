"""The console in a real browser (Debian's Chromium driven by Playwright) against the live
server: log in, register a device, add the purchase guide's three cameras with the resolution
presets (the progressive-enhancement script fills the sizes), see 2 licenses required, and
the buy page quotes 7200.00 CNY (R1, R2). Screenshots of the devices and buy pages in both
languages go to /tmp for a look at the layout.

Skipped when the playwright package or /usr/bin/chromium is missing (no browser download:
`playwright install` is never run)."""

import os
from pathlib import Path

import pytest

from billing.models import Order
from console.models import Membership
from console.tests.factories import (
    LicenseFactory,
    MembershipFactory,
    TenantFactory,
    UserFactory,
)
from devices.models import Camera, FieldDevice

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery"
SCREENSHOTS = Path(os.environ.get("FC_SCREENSHOT_DIR", "/tmp"))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(sync_playwright is None, reason="the playwright package is not installed"),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed"),
]


@pytest.fixture
def owner_account(transactional_db):
    tenant = TenantFactory(name="Acme Mining", slug="acme")
    user = UserFactory(email="owner@example.com", password=PASSWORD)
    MembershipFactory(user=user, tenant=tenant, role=Membership.Role.OWNER)
    return user


def launch(pw):
    return pw.chromium.launch(
        executable_path=CHROMIUM,
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )


# What Chromium reported as Content-Security-Policy violations during the test: none allowed.
CSP_VIOLATIONS: list[str] = []


@pytest.fixture(autouse=True)
def no_csp_violations():
    CSP_VIOLATIONS.clear()
    yield
    assert CSP_VIOLATIONS == []


def log_in(browser, base: str, email: str):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on(
        "console",
        lambda msg: (
            CSP_VIOLATIONS.append(msg.text) if "Content Security Policy" in msg.text else None
        ),
    )
    page.set_default_timeout(15_000)
    page.goto(f"{base}/login/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("main form button[type=submit]")
    page.wait_for_url(f"{base}/")
    return page


def test_register_a_device_add_cameras_and_get_a_quote(live_server, owner_account):
    base = live_server.url
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = log_in(browser, base, owner_account.email)

            page.goto(f"{base}/devices/")
            page.fill("#new-device input[name=serial]", "truck01")
            page.fill("#new-device input[name=name]", "Haul truck")
            page.click("#new-device button[type=submit]")
            page.wait_for_url(f"{base}/devices/*/")
            detail_url = page.url

            for preset, width in (("720p", "1280"), ("vga", "640"), ("vga", "640")):
                page.select_option("#add-camera select[name=preset]", preset)
                # The script fills the boxes from the preset.
                expect(page.locator("#add-camera input[name=width]")).to_have_value(width)
                page.click("#add-camera button[type=submit]")
                page.wait_for_url(detail_url)

            expect(page.locator("#aggregate-pixels")).to_have_text("1,536,000")
            expect(page.locator("#ratio")).to_have_text("1.67")
            expect(page.locator("#licenses-required")).to_have_text("2")

            page.click(f"a[href$='/orders/new/?device={detail_url.rstrip('/').split('/')[-1]}']")
            page.wait_for_url(f"{base}/orders/new/*")
            expect(page.locator("#quote-licenses")).to_have_text("2")
            expect(page.locator("#quote-total")).to_have_text("7200.00 CNY")
            buy_url = page.url

            for language in ("zh-hans", "en"):
                page.context.add_cookies(
                    [{"name": "django_language", "value": language, "url": base}]
                )
                page.goto(f"{base}/devices/")
                expect(page.locator("html")).to_have_attribute("lang", language)
                expect(page.locator("#devices td[data-field=licenses-required]")).to_have_text("2")
                page.screenshot(path=SCREENSHOTS / f"fc_devices_{language}.png", full_page=True)
                page.goto(detail_url)
                page.screenshot(path=SCREENSHOTS / f"fc_device_{language}.png", full_page=True)
                page.goto(buy_url)
                expect(page.locator("#quote-total")).to_have_text("7200.00 CNY")
                page.screenshot(path=SCREENSHOTS / f"fc_buy_{language}.png", full_page=True)
        finally:
            browser.close()

    # After the browser is gone: the database saw exactly what the pages showed.
    device = FieldDevice.objects.get(serial="truck01")
    sizes = sorted(Camera.objects.filter(device=device).values_list("width", "height"))
    assert sizes == [(640, 480), (640, 480), (1280, 720)]


def test_renew_the_licenses_ticked_on_the_list(live_server, owner_account):
    """The list's check boxes sit outside the renewal form (HTML `form` attribute): a real
    browser sends them with it, and the renewal order names exactly the ticked ones (R4)."""
    tenant = owner_account.memberships.get().tenant
    first, _unticked, third = LicenseFactory.create_batch(3, tenant=tenant)
    base = live_server.url
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = log_in(browser, base, owner_account.email)
            page.goto(f"{base}/licenses/")
            page.check(f"input[name=licenses][value='{first.pk}']")
            page.check(f"input[name=licenses][value='{third.pk}']")
            page.fill("#renew-years", "2")
            page.click("#renew-form button[type=submit]")
            page.wait_for_url(f"{base}/orders/*/")
            expect(page.locator("#order-total")).to_have_text("14400.00 CNY")
        finally:
            browser.close()

    order = Order.objects.get()
    assert (order.kind, order.years) == (Order.Kind.RENEWAL, 2)
    assert set(order.licenses.values_list("id", flat=True)) == {first.pk, third.pk}
