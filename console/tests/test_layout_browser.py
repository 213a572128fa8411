"""The console's layout in a real browser (Debian's Chromium driven by Playwright): the
dashboard, devices and licenses pages at 1366 px and 390 px wide, in zh-hans and en, never
scroll sideways, log no console error, ask no host but the server, and at 390 px fold the
navigation into a menu that opens without script. Screenshots go to var/test-artifacts/.

The checks are console/tests/browser.py's; test_pages_browser.py walks every other page.
Skipped when the playwright package or /usr/bin/chromium is missing."""

import datetime as dt

import pytest
from django.utils import timezone

from console.models import Membership
from console.tests.browser import BROWSER_MARKS, PASSWORD, chromium, visitors
from console.tests.factories import (
    CameraFactory,
    DeviceFactory,
    LicenseFactory,
    MembershipFactory,
    TenantFactory,
    UserFactory,
)

PAGES = [("dashboard", "/"), ("devices", "/devices/"), ("licenses", "/licenses/")]

pytestmark = [*BROWSER_MARKS, pytest.mark.django_db(transaction=True)]


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
    problems: list[str] = []
    errors: list[str] = []
    foreign: list[str] = []
    with chromium() as browser:
        for visitor in visitors(browser, live_server.url):
            visitor.log_in(owner_account.email)
            for name, path in PAGES:
                visitor.visit(path, name)
                visitor.check_navigation(path)
            if visitor.narrow:
                # The menu open, for a look at it.
                visitor.page.click("label.nav-button")
                visitor.screenshot("menu", full_page=False)
            problems += visitor.problems
            errors += visitor.errors
            foreign += visitor.foreign
    assert not problems, "\n".join(problems)
    assert not errors, "\n".join(errors)
    assert not foreign, "\n".join(foreign)
