"""Sign-up answers the same whether the address has an account or not (issue 13): the same
page, status and work (a password hashed either way); the owner of an existing account is
emailed instead, in their language; sign-ups are capped per address and per client."""

import datetime as dt
import re

import pytest
import time_machine

from console import login_limits, signup
from console.models import User
from console.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "river-stone-lantern-42"
CSRF = re.compile(rb'name="csrfmiddlewaretoken" value="[^"]*"')


def post_signup(client, email, **extra):
    return client.post(
        "/signup/",
        {"email": email, "full_name": "Some One", "password1": PASSWORD, "password2": PASSWORD},
        **extra,
    )


@pytest.fixture
def hashes(monkeypatch):
    calls = []
    real = signup.make_password

    def counting(password, *args, **kwargs):
        calls.append(password)
        return real(password, *args, **kwargs)

    monkeypatch.setattr(signup, "make_password", counting)
    return calls


def test_signup_answers_the_same_for_a_registered_and_a_new_address(
    client, mailoutbox, django_capture_on_commit_callbacks, hashes
):
    UserFactory(email="taken@example.com", full_name="Tao Ken", language="en")
    answers = []
    for email in ["TAKEN@example.com", "fresh@example.com"]:
        with django_capture_on_commit_callbacks(execute=True):
            response = post_signup(client, email)
        answers.append((response.status_code, response["Location"]))
        page = client.get(response["Location"])
        answers.append((page.status_code, CSRF.sub(b"", page.content)))
    assert answers[0] == answers[2]  # the redirect
    assert answers[1] == answers[3]  # the page it leads to
    assert answers[0] == (302, "/signup/sent/")
    assert hashes == [PASSWORD, PASSWORD]  # the same work both ways
    assert User.objects.count() == 1  # nothing made for either yet
    assert "_auth_user_id" not in client.session

    owner_notice, new_link = mailoutbox
    assert owner_notice.to == ["taken@example.com"]
    assert "Someone tried to sign up" in owner_notice.subject  # the owner's language: en
    assert "/login/" in owner_notice.body and "/password-reset/" in owner_notice.body
    assert "/signup/confirm/" not in owner_notice.body
    assert "Tao Ken" in owner_notice.alternatives[0][0]
    assert new_link.to == ["fresh@example.com"]
    assert "/signup/confirm/" in new_link.body
    # The visitor's language (zh-hans by default) for the new address.
    assert "完成" in new_link.subject


def test_the_existing_owner_is_told_in_their_language(
    client, mailoutbox, django_capture_on_commit_callbacks
):
    UserFactory(email="wang@example.com", language="zh-hans")
    client.cookies["django_language"] = "en"
    with django_capture_on_commit_callbacks(execute=True):
        post_signup(client, "wang@example.com")
    assert "有人试图" in mailoutbox[0].subject


def test_an_inactive_account_gets_no_email_but_the_same_answer(
    client, mailoutbox, django_capture_on_commit_callbacks
):
    UserFactory(email="gone@example.com", is_active=False)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_signup(client, "gone@example.com")
    assert response["Location"] == "/signup/sent/"
    assert mailoutbox == []


def test_a_link_that_is_not_ours_or_expired_does_nothing(
    client, mailoutbox, django_capture_on_commit_callbacks
):
    start = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False) as traveller:
        with django_capture_on_commit_callbacks(execute=True):
            post_signup(client, "late@example.com")
        link = re.search(r"(/signup/confirm/\S+/)", mailoutbox[0].body).group(1)
        # A character in the middle: the last ones may hold base64 padding bits.
        middle = len(link) // 2
        tampered = link[:middle] + ("A" if link[middle] != "A" else "Q") + link[middle + 1 :]
        response = client.post(tampered)
        assert response.status_code == 200
        assert response.context["valid"] is False
        traveller.shift(dt.timedelta(days=2, seconds=1))
        assert client.post(link).context["valid"] is False
    assert not User.objects.exists()


def test_signups_for_one_address_are_capped_whether_it_has_an_account_or_not(
    client, mailoutbox, django_capture_on_commit_callbacks
):
    UserFactory(email="taken@example.com")
    for n, email in enumerate(["taken@example.com", "fresh@example.com"]):
        with django_capture_on_commit_callbacks(execute=True):
            answers = [
                post_signup(client, email, REMOTE_ADDR=f"10.5.{n}.{i}").status_code
                for i in range(10)
            ]
        assert answers == [302] * login_limits.PER_EMAIL + [429] * (10 - login_limits.PER_EMAIL)
    assert len(mailoutbox) == 2 * login_limits.PER_EMAIL
    response = post_signup(client, "fresh@example.com")
    assert response["Retry-After"] == "900"
    assert "Too many attempts" in response.content.decode() or "尝试次数过多" in (
        response.content.decode()
    )


def test_signups_from_one_client_are_capped(client):
    answers = [
        post_signup(client, f"s{n}@example.com").status_code
        for n in range(login_limits.PER_CLIENT + 1)
    ]
    assert answers == [302] * login_limits.PER_CLIENT + [429]
    assert post_signup(client, "t@example.com", REMOTE_ADDR="10.4.4.4").status_code == 302
