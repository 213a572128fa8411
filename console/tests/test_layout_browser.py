"""The console's layout in a real browser (Debian's Chromium driven by Playwright): the
dashboard, devices and licenses pages at 1366 px and 390 px wide, in zh-hans and en, never
scroll sideways, log no console error, ask no host but the server, and at 390 px fold the
navigation into a menu that opens without script. Screenshots go to var/test-artifacts/.

Skipped when the playwright package or /usr/bin/chromium is missing."""

import datetime as dt
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.utils import timezone

from console.models import Membership
from console.tests.factories import (
    CameraFactory,
    DeviceFactory,
    LicenseFactory,
    MembershipFactory,
    TenantFactory,
    UserFactory,
)

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery"
ARTIFACTS = Path(
    os.environ.get("FC_SCREENSHOT_DIR", Path(settings.BASE_DIR) / "var" / "test-artifacts")
)
PAGES = [("dashboard", "/"), ("devices", "/devices/"), ("licenses", "/licenses/")]
WIDTHS = [(1366, 900), (390, 844)]

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
    now = timezone.now()
    for i in range(12):
        device = DeviceFactory(tenant=tenant, serial=f"haul_truck_{i:04d}", name=f"Haul truck {i}")
        CameraFactory(device=device, width=1920, height=1080)
        CameraFactory(device=device, width=640, height=480)
        LicenseFactory(
            tenant=tenant,
            device=device if i % 3 else None,
            starts_at=now - dt.timedelta(days=300),
            expires_at=now + dt.timedelta(days=1 + i * 9),
        )
    return user


def test_pages_fit_1366_and_390_px_in_both_languages(live_server, owner_account):
    base = live_server.url
    host = urlsplit(base).netloc
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    foreign: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            for language in ("zh-hans", "en"):
                for width, height in WIDTHS:
                    context = browser.new_context(viewport={"width": width, "height": height})
                    context.add_cookies(
                        [{"name": "django_language", "value": language, "url": base}]
                    )
                    page = context.new_page()
                    page.set_default_timeout(15_000)
                    page.on(
                        "console",
                        lambda msg: errors.append(msg.text) if msg.type == "error" else None,
                    )
                    page.on("pageerror", lambda exc: errors.append(str(exc)))
                    page.on(
                        "request",
                        lambda req: (
                            foreign.append(req.url)
                            if urlsplit(req.url).netloc not in (host, "")
                            and not req.url.startswith(("data:", "about:"))
                            else None
                        ),
                    )
                    page.goto(f"{base}/login/")
                    page.fill("input[name=username]", owner_account.email)
                    page.fill("input[name=password]", PASSWORD)
                    page.click("main form button[type=submit]")
                    page.wait_for_url(f"{base}/")
                    for name, path in PAGES:
                        page.goto(f"{base}{path}")
                        assert page.locator("html").get_attribute("lang") == language
                        overflow = page.evaluate(
                            "document.documentElement.scrollWidth - window.innerWidth"
                        )
                        page.screenshot(
                            path=str(ARTIFACTS / f"layout-{name}-{width}-{language}.png"),
                            full_page=True,
                        )
                        assert overflow <= 0, f"{path} at {width} px ({language}) scrolls sideways"
                    if width < 768:
                        # The navigation is folded away; the menu button opens it (CSS only).
                        assert not page.locator("#sidebar").is_visible()
                        page.click("label.nav-button")
                        assert page.locator("#sidebar .mainnav").is_visible()
                        page.screenshot(path=str(ARTIFACTS / f"layout-menu-{width}-{language}.png"))
                    else:
                        assert page.locator("#sidebar .mainnav").is_visible()
                    context.close()
        finally:
            browser.close()
    assert errors == []
    assert foreign == []
