"""The real-browser checks the layout suites share (Debian's Chromium driven by Playwright).

`chromium()` starts one headless browser; `Visitor` is one browser context at one width and
language, and `Visitor.visit` checks a page the way issue 12 asks: it answers 2xx in that
language, does not scroll sideways, and its screenshot is kept under ARTIFACTS. The
Visitor records what is wrong (`problems`) and, for the whole context, every console error
or uncaught exception (`errors`) and every request to a host other than the server
(`foreign`); the test asserts the three lists are empty at the end (`assert_clean` for one
Visitor). A journey that clicks its way through pages checks each with `check_fits` and keeps
its screenshots with `screenshot`.

Test modules mark themselves with `pytestmark = [*BROWSER_MARKS, ...]`: skipped when the
playwright package or /usr/bin/chromium is missing (`playwright install` is never run). They
take Playwright's `expect` from here too (None when the package is missing)."""

import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings

from console.models import Membership
from console.tests.factories import MembershipFactory, TenantFactory, UserFactory

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    expect = sync_playwright = None

CHROMIUM = "/usr/bin/chromium"
PASSWORD = "correct horse battery"
ARTIFACTS = Path(
    os.environ.get("FC_SCREENSHOT_DIR", Path(settings.BASE_DIR) / "var" / "test-artifacts")
)
LANGUAGES = ("zh-hans", "en")
# A laptop and a phone (the 1366 px and 390 px).
WIDTHS = [(1366, 900), (390, 844)]
# Under this width the sidebar folds into the menu (static/console/console.css).
NARROW = 768
# Han characters: on an English page only the data (names) may have them.
HAN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")

BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(sync_playwright is None, reason="the playwright package is not installed"),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed"),
]


def tenant_owner(tenant_name: str, email: str, *, slug: str = "acme"):
    """A tenant and its owner, who logs in with PASSWORD: where a journey starts."""
    tenant = TenantFactory(name=tenant_name, slug=slug)
    owner = UserFactory(email=email, password=PASSWORD)
    MembershipFactory(user=owner, tenant=tenant, role=Membership.Role.OWNER)
    return owner


def launch(pw):
    return pw.chromium.launch(
        executable_path=CHROMIUM,
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )


def sideways_overflow(page) -> int:
    """How many pixels the page in `page` is wider than its viewport (0 or less: it fits)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


@contextmanager
def chromium() -> Iterator:
    """One browser for a whole test: contexts are cheap, browsers are not."""
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            yield browser
        finally:
            browser.close()


class Visitor:
    """One browser context (cookies, a page) at one viewport width and language."""

    def __init__(
        self,
        browser,
        base: str,
        *,
        language: str,
        width: int,
        height: int,
        data_words: Iterable[str] = (),
    ):
        self.base = base
        self.data_words = set(data_words)
        self.host = urlsplit(base).netloc
        self.language = language
        self.width = width
        self.problems: list[str] = []
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.context.add_cookies([{"name": "django_language", "value": language, "url": base}])
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(f"{self.page.url}: {exc}"))
        self.page.on("request", self._request)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> "Visitor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _console(self, msg) -> None:
        if msg.type == "error":
            self.errors.append(f"{self.page.url}: {msg.text}")

    def _request(self, req) -> None:
        if req.url.startswith(("data:", "about:", "blob:")):
            return
        if urlsplit(req.url).netloc != self.host:
            self.foreign.append(f"{self.page.url} → {req.url}")

    @property
    def narrow(self) -> bool:
        return self.width < NARROW

    def where(self, path: str) -> str:
        shown = path if len(path) <= 60 else f"{path[:57]}..."  # tokens in links are long
        return f"{shown} at {self.width} px ({self.language})"

    def log_in(self, email: str, password: str = PASSWORD, *, lands_on: str = "/") -> None:
        self.page.goto(f"{self.base}/login/")
        self.page.fill("input[name=username]", email)
        self.page.fill("input[name=password]", password)
        self.page.click("main form button[type=submit]")
        self.page.wait_for_url(f"{self.base}{lands_on}")

    def log_out(self) -> None:
        """A new session (the language cookie kept) for the next account."""
        self.context.clear_cookies()
        self.context.add_cookies(
            [{"name": "django_language", "value": self.language, "url": self.base}]
        )

    def problem(self, path: str, what: str) -> None:
        self.problems.append(f"{self.where(path)}: {what}")

    def visit(self, path: str, name: str):
        """Open `path`, check it, keep its screenshot as layout-<name>-<width>-<language>.png.
        What is wrong goes to `problems`, so one run names every page that fails."""
        page = self.page
        response = page.goto(f"{self.base}{path}")
        if response is None or not response.ok:
            self.problem(path, f"answered {response and response.status}")
        lang = page.locator("html").get_attribute("lang")
        if lang != self.language:
            self.problem(path, f"in {lang}")
        self.check_fits(path)
        if self.language == "en":
            # Untranslated (or translated at import, in the default language) text.
            han = set(HAN.findall(page.locator("main").inner_text())) - self.data_words
            if han:
                self.problem(path, f"Chinese on the English page: {sorted(han)}")
        self.screenshot(name)
        return page

    def check_fits(self, path: str) -> None:
        """The page as it is now (opened, or reached by a click or a form) does not scroll
        sideways; `path` names it in the problem."""
        overflow = sideways_overflow(self.page)
        if overflow > 0:
            self.problem(path, f"scrolls sideways by {overflow} px")

    def screenshot(self, name: str, *, full_page: bool = True) -> Path:
        """Keep the page as layout-<name>-<width>-<language>.png under ARTIFACTS."""
        path = ARTIFACTS / f"layout-{name}-{self.width}-{self.language}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        return path

    def check_navigation(self, path: str) -> None:
        """On a logged-in page: the sidebar shows at 1366 px; at 390 px it is folded away and
        the menu button, at the top of the page, opens it (CSS only) with every link and the
        account's forms in reach, and closes it again."""
        page = self.page
        nav = page.locator("#sidebar .mainnav")
        if not self.narrow:
            if not nav.is_visible():
                self.problem(path, "the navigation is hidden")
            return
        button = page.locator("label.nav-button")
        box = button.bounding_box() if button.is_visible() else None
        if page.locator("#sidebar").is_visible():
            self.problem(path, "the navigation is not folded away")
        if box is None or box["x"] + box["width"] > self.width or box["y"] + box["height"] > 100:
            self.problem(path, f"the menu button is out of reach ({box})")
            return
        button.click()
        links = nav.locator("a")
        if links.count() == 0 or not all(link.is_visible() for link in links.all()):
            self.problem(path, "the menu does not show its links")
        logout = page.locator("#sidebar .logout button")
        logout.scroll_into_view_if_needed()
        if not logout.is_visible():
            self.problem(path, "the menu's log-out button is out of reach")
        button.click()
        if page.locator("#sidebar").is_visible():
            self.problem(path, "the menu does not close")

    def assert_clean(self) -> None:
        """Nothing went wrong in this context: no problem, console error or foreign request."""
        assert not self.problems, "\n".join(self.problems)
        assert not self.errors, "\n".join(self.errors)
        assert not self.foreign, "\n".join(self.foreign)

    def close(self) -> None:
        self.context.close()


def visitors(browser, base: str, *, data_words: Iterable[str] = ()) -> Iterator[Visitor]:
    """A Visitor at each of WIDTHS in each of LANGUAGES, one after the other; each is closed
    when the loop moves on (or stops). `data_words`: the Han words of the test's own data,
    which English pages show as they are."""
    for language in LANGUAGES:
        for width, height in WIDTHS:
            visitor = Visitor(
                browser,
                base,
                language=language,
                width=width,
                height=height,
                data_words=data_words,
            )
            try:
                yield visitor
            finally:
                visitor.close()
