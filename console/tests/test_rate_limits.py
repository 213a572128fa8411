"""Rate limits for people (CONTRACT "More settings"): console and admin logins lock an
account after 5 failures or an address after 20 within 15 minutes, for 15 minutes (429);
password reset and signup are capped per address asked for and per client; the client
address comes from X-Forwarded-For only when BEHIND_PROXY."""

import datetime as dt
import os

import pytest
import time_machine
from axes.handlers.proxy import AxesProxyHandler
from django.core.cache import caches
from django.test import RequestFactory

from console import login_limits
from console.client_ip import client_ip
from console.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

GOOD = "correct horse battery"


def console_login(client, email, password="wrong", **extra):
    return client.post("/login/", {"username": email, "password": password}, **extra)


def admin_login(client, email, password="wrong", **extra):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": email, "password": password, "next": "/admin/"},
        **extra,
    )


@pytest.fixture
def ann(db):
    return UserFactory(email="ann@example.com", language="en")


@pytest.fixture
def locmem_cache(settings):
    """The embedded default's cache, whatever REDIS_URL says: time-machine moves its
    clock, not Redis's."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "rate-limit-tests",
        }
    }
    caches["default"].clear()
    AxesProxyHandler.get_implementation(force=True)
    yield
    caches["default"].clear()
    AxesProxyHandler.implementation = None


# --- logins -----------------------------------------------------------------------------------


def test_console_login_refused_after_5_failures_for_one_account(client, ann):
    for _ in range(5):
        response = console_login(client, "ann@example.com")
        assert response.status_code == 200
        assert response.context["form"].non_field_errors()
    # The 6th is refused before the password is looked at, right or wrong, from anywhere.
    response = console_login(client, "Ann@Example.com", GOOD)
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    assert "_auth_user_id" not in client.session
    assert console_login(client, "ann@example.com", GOOD, REMOTE_ADDR="10.9.9.9").status_code == 429
    # Another account from the same address is not concerned.
    UserFactory(email="bo@example.com")
    assert console_login(client, "bo@example.com", GOOD).status_code == 302


def test_the_429_page_is_in_the_visitors_language(client, ann):
    for _ in range(5):
        console_login(client, "ann@example.com")
    page = console_login(client, "ann@example.com").content.decode()
    assert '<html lang="zh-hans">' in page
    assert "尝试次数过多" in page
    client.cookies["django_language"] = "en"
    page = console_login(client, "ann@example.com").content.decode()
    assert '<html lang="en">' in page
    assert "Too many attempts" in page
    assert "15 minutes" in page


def test_admin_login_refused_after_5_failures_for_one_account(client, staff):
    for _ in range(5):
        assert admin_login(client, "staff@example.com").status_code == 200
    from conftest import STAFF_PASSWORD

    response = admin_login(client, "staff@example.com", STAFF_PASSWORD)
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    page = response.content.decode()
    assert 'id="site-name"' in page or "site-name" in page  # the admin's own look
    assert "_auth_user_id" not in client.session


def test_console_and_admin_failures_count_together(client, staff):
    for _ in range(3):
        console_login(client, "staff@example.com")
    for _ in range(2):
        admin_login(client, "staff@example.com")
    assert admin_login(client, "staff@example.com").status_code == 429


@pytest.mark.parametrize("login", [console_login, admin_login])
def test_one_address_refused_after_20_failures_over_different_accounts(client, login):
    for n in range(20):
        assert login(client, f"guess{n}@example.com").status_code == 200, n
    assert login(client, "guess20@example.com").status_code == 429
    # Another address is not concerned.
    assert login(client, "guess21@example.com", REMOTE_ADDR="10.1.2.3").status_code == 200


@pytest.mark.parametrize("login", [console_login, admin_login])
def test_a_locked_out_address_is_answered_before_sessions_and_the_database(
    client, login, django_assert_num_queries
):
    """Issue 13: once an address is locked, its logins are refused by
    LockedOutAddressMiddleware: no query, no session, no CSRF check, no hashing: a flood
    from one address no longer starves the workers the gateways use."""
    for n in range(20):
        login(client, f"guess{n}@example.com")
    client.cookies.clear()  # no CSRF cookie either: the answer comes before the CSRF check
    with django_assert_num_queries(0):
        response = login(client, "guess20@example.com", HTTP_ACCEPT_LANGUAGE="en")
    assert response.status_code == 429
    assert response["Retry-After"] == str(login_limits.WINDOW_SECONDS)
    assert "sessionid" not in response.cookies and "csrftoken" not in response.cookies
    page = response.content.decode()
    assert "Too many failed logins" in page and 'lang="en"' in page
    assert "/password-reset/" in page
    # The security headers still come with it (the middleware stands after them).
    assert "Content-Security-Policy" in response


def test_the_early_429_speaks_the_visitors_language(client):
    for n in range(20):
        console_login(client, f"guess{n}@example.com")
    zh = console_login(client, "x@example.com", HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9")
    assert zh.status_code == 429 and 'lang="zh-hans"' in zh.content.decode()
    assert "Too many failed logins" not in zh.content.decode()
    client.cookies["django_language"] = "en"
    en = console_login(client, "x@example.com", HTTP_ACCEPT_LANGUAGE="zh-CN")
    assert "Too many failed logins" in en.content.decode()


def test_a_locked_out_address_still_gets_the_login_page_and_other_pages(client):
    for n in range(20):
        console_login(client, f"guess{n}@example.com")
    assert client.get("/login/").status_code == 200
    assert client.post("/password-reset/", {"email": "a@example.com"}).status_code == 302


def test_a_good_login_does_not_count(client, ann):
    for _ in range(4):
        console_login(client, "ann@example.com")
    assert console_login(client, "ann@example.com", GOOD).status_code == 302
    client.post("/logout/")
    # The account starts again from zero...
    for _ in range(4):
        assert console_login(client, "ann@example.com").status_code == 200
    # ...and good logins are not failures of the address either (4 + 4 so far).
    for _ in range(3):
        assert console_login(client, "ann@example.com", GOOD).status_code == 302
        client.post("/logout/")
    for n in range(12):
        assert console_login(client, f"guess{n}@example.com").status_code == 200
    assert console_login(client, "guess99@example.com").status_code == 429


def test_an_account_unlocks_after_15_minutes(client, ann, locmem_cache):
    start = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False) as traveller:
        for _ in range(5):
            console_login(client, "ann@example.com")
        assert console_login(client, "ann@example.com", GOOD).status_code == 429
        traveller.shift(dt.timedelta(minutes=14))
        assert console_login(client, "ann@example.com", GOOD).status_code == 429
        traveller.shift(dt.timedelta(minutes=1, seconds=1))
        assert console_login(client, "ann@example.com", GOOD).status_code == 302


def test_an_address_unlocks_after_15_minutes(client, ann, locmem_cache):
    start = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False) as traveller:
        for n in range(20):
            console_login(client, f"guess{n}@example.com")
        assert console_login(client, "ann@example.com", GOOD).status_code == 429
        traveller.shift(dt.timedelta(minutes=15, seconds=1))
        assert console_login(client, "ann@example.com", GOOD).status_code == 302


def test_an_account_named_like_an_address_does_not_count_against_it(client, ann):
    # axes keys a count by the bare value; ours are prefixed (login_limits.login_username).
    for _ in range(20):
        console_login(client, "10.7.7.7")
    assert console_login(client, "ann@example.com", GOOD, REMOTE_ADDR="10.7.7.7").status_code == 302


@pytest.mark.redis
def test_the_counts_are_kept_in_redis_for_every_web_process(client, ann):
    import redis

    assert os.environ["REDIS_URL"]
    server = redis.Redis.from_url(os.environ["REDIS_URL"])
    before = set(server.scan_iter("fc:*axes-*"))
    for _ in range(5):
        console_login(client, "ann@example.com")
    assert set(server.scan_iter("fc:*axes-*")) - before  # another process sees them
    assert 0 < server.ttl(next(iter(set(server.scan_iter("fc:*axes-*")) - before))) <= 900
    assert console_login(client, "ann@example.com", GOOD).status_code == 429
    login_limits.limits_reset(ip_address="127.0.0.1", emails=["ann@example.com"])
    assert console_login(client, "ann@example.com", GOOD).status_code == 302


# --- the client address -----------------------------------------------------------------------


def test_x_forwarded_for_is_ignored_unless_behind_a_proxy(settings):
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.9"
    )
    settings.BEHIND_PROXY = False
    assert client_ip(request) == "10.0.0.5"
    settings.BEHIND_PROXY = True
    # The right-most entry is the one the proxy wrote; the rest came from the client.
    assert client_ip(request) == "203.0.113.9"
    request.META["HTTP_X_FORWARDED_FOR"] = "not an address"
    assert client_ip(request) == "10.0.0.5"
    del request.META["HTTP_X_FORWARDED_FOR"]
    assert client_ip(request) == "10.0.0.5"


def test_logins_ignore_x_forwarded_for_by_default(client):
    for n in range(20):
        console_login(client, f"guess{n}@example.com", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}")
    response = console_login(client, "x@example.com", HTTP_X_FORWARDED_FOR="198.51.100.200")
    assert response.status_code == 429


def test_logins_count_the_forwarded_address_behind_a_proxy(client, settings):
    settings.BEHIND_PROXY = True
    for n in range(20):
        console_login(client, f"guess{n}@example.com", HTTP_X_FORWARDED_FOR="203.0.113.7")
    assert (
        console_login(client, "x@example.com", HTTP_X_FORWARDED_FOR="203.0.113.7").status_code
        == 429
    )
    # The proxy's own address (REMOTE_ADDR, the same for everyone) is not what is locked.
    assert (
        console_login(client, "x@example.com", HTTP_X_FORWARDED_FOR="203.0.113.8").status_code
        == 200
    )
    login_limits.limits_reset(ip_address="203.0.113.7")


# --- password reset ---------------------------------------------------------------------------


def test_reset_emails_to_one_address_are_capped(client, ann, mailoutbox):
    answers = [
        client.post("/password-reset/", {"email": "ann@example.com"}).status_code for _ in range(50)
    ]
    assert answers[: login_limits.PER_EMAIL] == [302] * login_limits.PER_EMAIL
    assert set(answers[login_limits.PER_EMAIL :]) == {429}
    assert len(mailoutbox) == login_limits.PER_EMAIL
    login_limits.limits_reset(ip_address="127.0.0.1", emails=["ann@example.com"])


def test_reset_for_an_unknown_address_is_counted_the_same(client, mailoutbox):
    answers = [
        client.post("/password-reset/", {"email": "nobody@example.com"}).status_code
        for _ in range(login_limits.PER_EMAIL + 1)
    ]
    assert answers == [302] * login_limits.PER_EMAIL + [429]
    assert mailoutbox == []
    login_limits.limits_reset(ip_address="127.0.0.1", emails=["nobody@example.com"])


def test_reset_requests_from_one_client_are_capped(client):
    emails = [f"r{n}@example.com" for n in range(login_limits.PER_CLIENT + 1)]
    answers = [client.post("/password-reset/", {"email": e}).status_code for e in emails]
    assert answers == [302] * login_limits.PER_CLIENT + [429]
    response = client.post("/password-reset/", {"email": "s@example.com"}, REMOTE_ADDR="10.3.3.3")
    assert response.status_code == 302
    login_limits.limits_reset(ip_address="127.0.0.1", emails=emails)
    login_limits.limits_reset(ip_address="10.3.3.3", emails=["s@example.com"])
