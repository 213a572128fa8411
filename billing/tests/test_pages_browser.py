"""The console in a real browser (Debian's Chromium driven by Playwright) against the live
server: log in, register a device, add the purchase guide's three cameras with the resolution
presets (the progressive-enhancement script fills the sizes), see 2 licenses required, and
the buy page quotes 7200.00 CNY (R1, R2); then the devices, device and buy pages in both
languages. No page logs a console error (a Content-Security-Policy violation is one) or asks
a host but the server, and the pages opened in both languages answer in that language
without scrolling sideways. Screenshots go to var/test-artifacts/
(layout-quote-<page>-1280-<language>.png).

The checks are console/tests/browser.py's. Skipped when the playwright package or
/usr/bin/chromium is missing."""

import pytest

from billing.models import Order
from console.tests.browser import (
    BROWSER_MARKS,
    LANGUAGES,
    Visitor,
    chromium,
    expect,
    tenant_owner,
)
from console.tests.factories import LicenseFactory
from devices.models import Camera, FieldDevice

pytestmark = [*BROWSER_MARKS, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def owner_account(transactional_db):
    return tenant_owner("Acme Mining", "owner@example.com")


def owner(browser, base: str, email: str, language: str = "zh-hans") -> Visitor:
    """The owner logged in on a laptop, in `language` (the console's default unless told)."""
    visitor = Visitor(browser, base, language=language, width=1280, height=900)
    visitor.log_in(email)
    return visitor


def test_register_a_device_add_cameras_and_get_a_quote(live_server, owner_account):
    base = live_server.url
    with chromium() as browser:
        with owner(browser, base, owner_account.email) as visitor:
            page = visitor.page
            page.goto(f"{base}/devices/")
            page.fill("#new-device input[name=serial]", "truck01")
            page.fill("#new-device input[name=name]", "Haul truck")
            page.click("#new-device button[type=submit]")
            page.wait_for_url(f"{base}/devices/*/")
            detail = page.url.removeprefix(base)

            for preset, width in (("720p", "1280"), ("vga", "640"), ("vga", "640")):
                page.select_option("#add-camera select[name=preset]", preset)
                # The script fills the boxes from the preset.
                expect(page.locator("#add-camera input[name=width]")).to_have_value(width)
                page.click("#add-camera button[type=submit]")
                page.wait_for_url(f"{base}{detail}")

            expect(page.locator("#aggregate-pixels")).to_have_text("1,536,000")
            expect(page.locator("#ratio")).to_have_text("1.67")
            expect(page.locator("#licenses-required")).to_have_text("2")

            page.click(f"a[href$='/orders/new/?device={detail.rstrip('/').split('/')[-1]}']")
            page.wait_for_url(f"{base}/orders/new/*")
            expect(page.locator("#quote-licenses")).to_have_text("2")
            expect(page.locator("#quote-total")).to_have_text("7200.00 CNY")
            buy = page.url.removeprefix(base)
            visitor.assert_clean()

        for language in LANGUAGES:
            with owner(browser, base, owner_account.email, language) as visitor:
                page = visitor.visit("/devices/", "quote-devices")
                expect(page.locator("#devices td[data-field=licenses-required]")).to_have_text("2")
                visitor.visit(detail, "quote-device")
                visitor.visit(buy, "quote-buy")
                expect(page.locator("#quote-total")).to_have_text("7200.00 CNY")
                visitor.assert_clean()

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
    with chromium() as browser, owner(browser, base, owner_account.email) as visitor:
        page = visitor.page
        page.goto(f"{base}/licenses/")
        page.check(f"input[name=licenses][value='{first.pk}']")
        page.check(f"input[name=licenses][value='{third.pk}']")
        page.fill("#renew-years", "2")
        page.click("#renew-form button[type=submit]")
        page.wait_for_url(f"{base}/orders/*/")
        expect(page.locator("#order-total")).to_have_text("14400.00 CNY")
        visitor.assert_clean()

    order = Order.objects.get()
    assert (order.kind, order.years) == (Order.Kind.RENEWAL, 2)
    assert set(order.licenses.values_list("id", flat=True)) == {first.pk, third.pk}
