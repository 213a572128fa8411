"""Accounts: sign-up with email and password, log in and out, password reset by email,
pages in zh-hans (default) and en."""

import re

import pytest
from django.test import override_settings

from console.models import User
from console.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "river-stone-lantern-42"


def signup(client, **overrides):
    data = {
        "email": "New.Person@Example.com",
        "full_name": "New Person",
        "password1": PASSWORD,
        "password2": PASSWORD,
        **overrides,
    }
    return client.post("/signup/", data)


def test_signup_page_renders(client):
    response = client.get("/signup/")
    assert response.status_code == 200
    assert b'name="password1"' in response.content
    assert b'name="email"' in response.content


def confirm_link(mailoutbox) -> str:
    return re.search(r"https?://[^/\s]+(/signup/confirm/\S+/)", mailoutbox[-1].body).group(1)


def test_signup_emails_a_link_that_creates_the_user_logs_in_and_goes_to_apply(
    client, mailoutbox, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = signup(client)
    assert response.status_code == 302
    assert response["Location"] == "/signup/sent/"
    assert client.get("/signup/sent/").status_code == 200
    assert not User.objects.exists()  # nothing until the link is used
    assert mailoutbox[-1].to == ["new.person@example.com"]
    link = confirm_link(mailoutbox)
    assert client.get(link).status_code == 200  # a page with a button: scanners make nothing
    assert not User.objects.exists()
    response = client.post(link)
    assert response["Location"] == "/apply/"
    user = User.objects.get()
    assert user.email == "new.person@example.com"  # the login, lower-cased
    assert user.full_name == "New Person"
    assert user.check_password(PASSWORD)
    assert not user.is_staff
    assert client.get("/apply/").status_code == 200  # logged in
    # Used once: the address has an account now.
    client.post("/logout/")
    assert client.post(link)["Location"] == "/login/"
    assert User.objects.count() == 1


@pytest.mark.parametrize(
    ("password1", "password2"),
    [
        ("password", "password"),  # common
        ("12345678901", "12345678901"),  # numeric
        ("short", "short"),  # too short
        (PASSWORD, PASSWORD + "x"),  # mismatch
        ("new.person1", "new.person1"),  # too similar to the email
    ],
)
def test_signup_applies_the_password_validators(client, password1, password2):
    response = signup(client, password1=password1, password2=password2)
    assert response.status_code == 200
    assert response.context["form"].errors
    assert not User.objects.exists()


@pytest.mark.parametrize("email", ["", "not-an-email", "a@"])
def test_signup_refuses_a_bad_email(client, email):
    response = signup(client, email=email)
    assert response.status_code == 200
    assert "email" in response.context["form"].errors
    assert not User.objects.exists()


def test_signup_keeps_the_language_the_visitor_uses(
    client, mailoutbox, django_capture_on_commit_callbacks
):
    client.cookies["django_language"] = "en"
    with django_capture_on_commit_callbacks(execute=True):
        signup(client)
    assert "Finish signing up" in mailoutbox[-1].subject
    client.post(confirm_link(mailoutbox))
    assert User.objects.get().language == "en"


def test_signed_in_user_is_sent_away_from_signup(client):
    client.force_login(UserFactory())
    response = client.get("/signup/")
    assert response.status_code == 302


def test_login_with_the_email_in_any_case(client):
    UserFactory(email="ann@example.com")
    response = client.post(
        "/login/", {"username": "ANN@Example.com", "password": "correct horse battery"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/"
    # No tenant yet: the console leads to the application, which leads to the apply form.
    response = client.get("/")
    assert response["Location"] == "/application/"
    assert client.get("/application/")["Location"] == "/apply/"


def test_login_refuses_a_wrong_password(client):
    UserFactory(email="ann@example.com")
    response = client.post("/login/", {"username": "ann@example.com", "password": "nope"})
    assert response.status_code == 200
    assert response.context["form"].non_field_errors()
    assert "_auth_user_id" not in client.session


def test_login_refuses_an_inactive_user(client):
    UserFactory(email="ann@example.com", is_active=False)
    response = client.post(
        "/login/", {"username": "ann@example.com", "password": "correct horse battery"}
    )
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session


def test_login_follows_next(client):
    UserFactory(email="ann@example.com")
    response = client.post(
        "/login/?next=/apply/",
        {"username": "ann@example.com", "password": "correct horse battery", "next": "/apply/"},
    )
    assert response["Location"] == "/apply/"


def test_anonymous_visitors_are_sent_to_login(client):
    for url in ["/", "/apply/", "/application/", "/keys/", "/team/"]:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/?next="), url


def test_logout_is_a_post(client):
    client.force_login(UserFactory())
    assert client.get("/logout/").status_code == 405
    response = client.post("/logout/")
    assert response.status_code == 302
    assert response["Location"] == "/login/"
    assert "_auth_user_id" not in client.session


@override_settings(SITE_URL="https://console.example.com")
def test_password_reset_by_email(client, mailoutbox):
    user = UserFactory(email="ann@example.com")
    assert client.get("/password-reset/").status_code == 200
    response = client.post("/password-reset/", {"email": "ann@example.com"})
    assert response.status_code == 302
    assert response["Location"] == "/password-reset/sent/"
    assert client.get(response["Location"]).status_code == 200
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == ["ann@example.com"]
    assert "\n" not in message.subject
    html, mime = message.alternatives[0]
    assert mime == "text/html"
    link = re.search(r"https://console\.example\.com(/reset/\S+/\S+/)", message.body).group(1)
    assert link in html

    response = client.get(link)  # Django swaps the token into the session and redirects
    assert response.status_code == 302
    set_password_url = response["Location"]
    page = client.get(set_password_url)
    assert page.status_code == 200
    assert page.context["validlink"]
    response = client.post(
        set_password_url,
        {"new_password1": "fresh-granite-window-7", "new_password2": "fresh-granite-window-7"},
    )
    assert response.status_code == 302
    assert response["Location"] == "/reset/done/"
    user.refresh_from_db()
    assert user.check_password("fresh-granite-window-7")
    # The link works once.
    assert client.get(link, follow=True).context["validlink"] is False


def test_password_reset_for_an_unknown_address_sends_nothing(client, mailoutbox):
    response = client.post("/password-reset/", {"email": "nobody@example.com"})
    assert response.status_code == 302  # the same answer: no account enumeration
    assert mailoutbox == []


def test_password_change(client):
    user = UserFactory()
    client.force_login(user)
    assert client.get("/password-change/").status_code == 200
    response = client.post(
        "/password-change/",
        {
            "old_password": "correct horse battery",
            "new_password1": "fresh-granite-window-7",
            "new_password2": "fresh-granite-window-7",
        },
    )
    assert response["Location"] == "/password-change/done/"
    user.refresh_from_db()
    assert user.check_password("fresh-granite-window-7")


def test_pages_default_to_simplified_chinese(client):
    response = client.get("/login/")
    assert response.status_code == 200
    assert b'<html lang="zh-hans">' in response.content


def test_pages_follow_the_language_switcher(client):
    response = client.post("/i18n/setlang/", {"language": "en", "next": "/login/"})
    assert response.status_code == 302
    response = client.get("/login/")
    assert b'<html lang="en">' in response.content
    assert b'action="/i18n/setlang/"' in response.content
