"""The bulk import in a real browser (Debian's Chromium driven by Playwright), at 1366 px and
390 px wide: upload a small CSV on the import page, see the dry run, click Import and confirm,
see the devices. No page scrolls sideways, logs a console error or asks a host but the
server. Screenshots go to var/test-artifacts/ (layout-import-<step>-<width>-en.png).

The checks are console/tests/browser.py's. Skipped when the playwright package or
/usr/bin/chromium is missing."""

import pytest

from console.tests.browser import BROWSER_MARKS, WIDTHS, Visitor, chromium, tenant_owner
from devices.models import FieldDevice

CSV = (
    "serial,name,max_concurrent_streams,camera_name,width,height,enabled,priority\n"
    "{p}_truck_01,Haul truck with a rather long name 1,2,front,1920,1080,yes,10\n"
    "{p}_truck_01,Haul truck with a rather long name 1,2,rear,1280,720,no,0\n"
    "{p}_crane_07,Quay crane 7,,,,,,\n"
)

pytestmark = [*BROWSER_MARKS, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def owner_account(transactional_db):
    return tenant_owner("Acme Mining Company Limited", "owner.with.a.long.address@example.com")


def test_upload_dry_run_and_import_in_a_browser(live_server, owner_account, tmp_path):
    base = live_server.url
    with chromium() as browser:
        for width, height in WIDTHS:
            prefix = f"w{width}"
            upload = tmp_path / f"{prefix}.csv"
            upload.write_text(CSV.format(p=prefix), encoding="utf-8")
            with Visitor(browser, base, language="en", width=width, height=height) as visitor:
                page = visitor.page
                visitor.log_in(owner_account.email)

                page.goto(f"{base}/devices/")
                page.click("main .page-head a[href='/devices/import/']")
                page.wait_for_url(f"{base}/devices/import/")
                visitor.check_fits("/devices/import/")
                visitor.screenshot("import-upload")

                page.set_input_files("input[type=file]", str(upload))
                page.click("main form button[type=submit]")
                page.wait_for_selector("#dry-run")
                assert "2 devices and 2 cameras" in page.inner_text("#dry-run")
                assert page.locator("#import-preview tbody tr").count() == 3
                visitor.check_fits("/devices/import/ (the dry run)")
                visitor.screenshot("import-dry-run")

                page.click("#import-button")
                page.click("main .confirm button[type=submit]")
                page.wait_for_selector("#import-done")
                assert "Imported 2 devices and 2 cameras" in page.inner_text("#import-done")
                visitor.check_fits("/devices/import/ (the result)")
                visitor.screenshot("import-done")

                page.click("#import-done a[href='/devices/']")
                page.wait_for_url(f"{base}/devices/")
                assert page.locator(f"#devices >> text={prefix}_truck_01").count() == 1
                assert page.locator(f"#devices >> text={prefix}_crane_07").count() == 1
                visitor.check_fits("/devices/")
                visitor.assert_clean()
    assert FieldDevice.objects.count() == 4
