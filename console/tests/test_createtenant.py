"""`manage.py createtenant NAME --slug SLUG --owner EMAIL [--api-key]` (CONTRACT.md)."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIRequestFactory

from console.api_auth import ApiKeyAuthentication
from console.models import ApiKey, AuditEvent, Membership, Tenant, User, api_key_digest
from console.tests.factories import TenantFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]


def run(*args) -> list[str]:
    out = StringIO()
    call_command("createtenant", *args, stdout=out)
    return out.getvalue().splitlines()


def counts():
    return (
        Tenant.objects.count(),
        User.objects.count(),
        Membership.objects.count(),
        ApiKey.objects.count(),
        AuditEvent.objects.count(),
    )


def test_creates_an_active_tenant_and_a_new_owner_without_password():
    lines = run("Acme Mining", "--slug", "acme", "--owner", "Boss@Acme.example.com")
    tenant = Tenant.objects.get(slug="acme")
    assert tenant.name == "Acme Mining"
    assert tenant.status == Tenant.Status.ACTIVE
    owner = User.objects.get(email="boss@acme.example.com")
    assert not owner.has_usable_password()
    assert Membership.objects.get(tenant=tenant).user == owner
    assert Membership.objects.get(tenant=tenant).role == Membership.Role.OWNER
    assert any("changepassword boss@acme.example.com" in line for line in lines)
    event = AuditEvent.objects.get(action="tenant.created")
    assert event.actor_label == "command:createtenant"
    assert ApiKey.objects.count() == 0


def test_existing_user_becomes_owner_and_keeps_the_password():
    user = UserFactory(email="known@example.com")
    lines = run("Ports", "--slug", "ports", "--owner", "known@example.com")
    user.refresh_from_db()
    assert user.check_password("correct horse battery")
    assert Membership.objects.get(user=user).role == "owner"
    assert not any("changepassword" in line for line in lines)


def test_api_key_is_the_last_line_alone_and_authenticates():
    lines = run("Acme", "--slug", "acme", "--owner", "a@example.com", "--api-key")
    raw = lines[-1]
    assert raw == raw.strip() and " " not in raw and raw.startswith("fc_")
    key = ApiKey.objects.get(digest=api_key_digest(raw))
    assert key.role == ApiKey.Role.ADMIN
    assert key.tenant.slug == "acme"
    request = APIRequestFactory().get("/api/v1/devices/", HTTP_AUTHORIZATION=f"Bearer {raw}")
    principal, auth_key = ApiKeyAuthentication().authenticate(request)
    assert principal.tenant.slug == "acme" and auth_key.pk == key.pk


def test_language_and_price_options():
    run(
        "Ports",
        "--slug",
        "ports",
        "--owner",
        "p@example.com",
        "--language",
        "en",
        "--price",
        "3000.00",
    )
    tenant = Tenant.objects.get(slug="ports")
    assert tenant.language == "en"
    assert str(tenant.contract_unit_price) == "3000.00"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["X", "--slug", "taken", "--owner", "new@example.com"], "already exists"),
        (["X", "--slug", "Bad Slug", "--owner", "new@example.com"], "slug"),
        (["X", "--slug", "-edge", "--owner", "new@example.com"], "slug"),
        (["X", "--slug", "", "--owner", "new@example.com"], "slug"),
        (["X", "--slug", "a" * 51, "--owner", "new@example.com"], "slug"),
        (["X", "--slug", "bad_slug", "--owner", "new@example.com"], "slug"),
        (["X", "--slug", "fine", "--owner", "not-an-email"], "email"),
        (["X", "--slug", "fine", "--owner", ""], "email"),
        (["", "--slug", "fine", "--owner", "new@example.com"], "NAME"),
        (["X", "--slug", "fine", "--owner", "new@example.com", "--price", "-1"], "price"),
        (["X", "--slug", "fine", "--owner", "new@example.com", "--price", "abc"], "price"),
        (["X", "--slug", "fine", "--owner", "new@example.com", "--price", "1.005"], "price"),
    ],
)
def test_bad_input_is_a_clear_error_and_creates_nothing(args, message):
    TenantFactory(slug="taken")
    before = counts()
    with pytest.raises(CommandError) as exc:
        run(*args, "--api-key")
    assert message.lower() in str(exc.value).lower()
    assert counts() == before
    assert not User.objects.filter(email="new@example.com").exists()


def test_missing_required_options_is_an_error():
    with pytest.raises(CommandError):
        run("Acme", "--slug", "acme")
    assert Tenant.objects.count() == 0
