"""The bulk import in a real browser (Debian's Chromium driven by Playwright), at 1366 px and
390 px wide: upload a small CSV on the import page, see the dry run, click Import and confirm,
see the devices. No page scrolls sideways or logs a console error. Screenshots go to
var/test-artifacts/.

Skipped when the playwright package or /usr/bin/chromium is missing."""

import os
from pathlib import Path

import pytest
from django.conf import settings

from console.models import Membership
from console.tests.factories import MembershipFactory, TenantFactory, UserFactory
from devices.models import FieldDevice

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery"
ARTIFACTS = Path(
    os.environ.get("FC_SCREENSHOT_DIR", Path(settings.BASE_DIR) / "var" / "test-artifacts")
)
WIDTHS = [(1366, 900), (390, 844)]
CSV = (
    "serial,name,max_concurrent_streams,camera_name,width,height,enabled,priority\n"
    "{p}_truck_01,Haul truck with a rather long name 1,2,front,1920,1080,yes,10\n"
    "{p}_truck_01,Haul truck with a rather long name 1,2,rear,1280,720,no,0\n"
    "{p}_crane_07,Quay crane 7,,,,,,\n"
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(sync_playwright is None, reason="the playwright package is not installed"),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed"),
]


@pytest.fixture
def owner_account(transactional_db):
    tenant = TenantFactory(name="Acme Mining Company Limited", slug="acme")
    user = UserFactory(email="owner.with.a.long.address@example.com", password=PASSWORD)
    MembershipFactory(user=user, tenant=tenant, role=Membership.Role.OWNER)
    return user


def _no_sideways_scroll(page, what: str) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{what} scrolls sideways"


def test_upload_dry_run_and_import_in_a_browser(live_server, owner_account, tmp_path):
    base = live_server.url
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            for width, height in WIDTHS:
                prefix = f"w{width}"
                upload = tmp_path / f"{prefix}.csv"
                upload.write_text(CSV.format(p=prefix), encoding="utf-8")
                context = browser.new_context(viewport={"width": width, "height": height})
                context.add_cookies([{"name": "django_language", "value": "en", "url": base}])
                page = context.new_page()
                page.set_default_timeout(15_000)
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(f"{base}/login/")
                page.fill("input[name=username]", owner_account.email)
                page.fill("input[name=password]", PASSWORD)
                page.click("main form button[type=submit]")
                page.wait_for_url(f"{base}/")

                page.goto(f"{base}/devices/")
                page.click("main .page-head a[href='/devices/import/']")
                page.wait_for_url(f"{base}/devices/import/")
                _no_sideways_scroll(page, f"the import page at {width} px")
                page.screenshot(path=str(ARTIFACTS / f"import-upload-{width}.png"), full_page=True)

                page.set_input_files("input[type=file]", str(upload))
                page.click("main form button[type=submit]")
                page.wait_for_selector("#dry-run")
                assert "2 devices and 2 cameras" in page.inner_text("#dry-run")
                assert page.locator("#import-preview tbody tr").count() == 3
                _no_sideways_scroll(page, f"the dry run at {width} px")
                page.screenshot(path=str(ARTIFACTS / f"import-dry-run-{width}.png"), full_page=True)

                page.click("#import-button")
                page.click("main .confirm button[type=submit]")
                page.wait_for_selector("#import-done")
                assert "Imported 2 devices and 2 cameras" in page.inner_text("#import-done")
                _no_sideways_scroll(page, f"the result at {width} px")
                page.screenshot(path=str(ARTIFACTS / f"import-done-{width}.png"), full_page=True)

                page.click("#import-done a[href='/devices/']")
                page.wait_for_url(f"{base}/devices/")
                assert page.locator(f"#devices >> text={prefix}_truck_01").count() == 1
                assert page.locator(f"#devices >> text={prefix}_crane_07").count() == 1
                _no_sideways_scroll(page, f"the devices at {width} px")
                context.close()
        finally:
            browser.close()
    assert errors == []
    assert FieldDevice.objects.count() == 4
