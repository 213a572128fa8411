"""The language saved on the user: the switcher saves it for a logged-in user, and the
console speaks it on any browser; a blank one keeps the browser's choice. Also the favicon
and the new key's copy button (a static script, no inline one)."""

import pytest

pytestmark = pytest.mark.django_db


def test_the_switcher_saves_the_language_on_the_user(owner, alice):
    response = owner.post("/i18n/setlang/", {"language": "en", "next": "/"})
    assert response.status_code == 302
    alice.refresh_from_db()
    assert alice.language == "en"
    owner.cookies.clear()  # another browser: no language cookie
    owner.force_login(alice)
    page = owner.get("/team/")
    assert page["Content-Language"] == "en" and b"Pending invitations" in page.content
    owner.post("/i18n/setlang/", {"language": "zh-hans", "next": "/"})
    alice.refresh_from_db()
    assert alice.language == "zh-hans"
    owner.cookies.clear()
    owner.force_login(alice)
    assert owner.get("/team/")["Content-Language"] == "zh-hans"


def test_a_bad_language_is_not_saved(owner, alice):
    owner.post("/i18n/setlang/", {"language": "xx", "next": "/"})
    alice.refresh_from_db()
    assert alice.language == ""


def test_anonymous_switching_only_sets_the_cookie(client):
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/login/"})
    assert response.status_code == 302
    assert client.get("/login/")["Content-Language"] == "en"


def test_favicon(client):
    page = client.get("/login/")
    assert b'rel="icon"' in page.content and b"favicon.svg" in page.content
    response = client.get("/favicon.ico")
    assert response.status_code == 301 and response["Location"].endswith("favicon.svg")


def test_a_new_key_has_a_copy_button_and_stays_readable(owner, tenant):
    page = owner.post("/keys/", {"name": "gateway", "role": "operator"})
    assert b'id="raw-key">fc_' in page.content
    assert b'data-copy-target="#raw-key"' in page.content
    assert b"console/copy.js" in page.content
    assert b"<script>" not in page.content and b"onclick" not in page.content
