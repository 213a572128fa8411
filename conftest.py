"""Shared fixtures. Every API test has an "other tenant" whose objects must be a 404.

alice: owner of `tenant`; bob: viewer of `tenant`; charlie: member of `other_tenant` only
("should have no access").
"""

import os

import pytest
from django.db import connection
from django.utils import translation

from console.models import ApiKey, Membership
from console.tests.factories import MembershipFactory, TenantFactory, UserFactory, make_api_key


@pytest.fixture
def tenant(db):
    return TenantFactory(name="Acme Mining", slug="acme")


@pytest.fixture
def other_tenant(db):
    return TenantFactory(name="Other Ports", slug="other")


@pytest.fixture
def alice(tenant):
    user = UserFactory(email="alice@example.com")
    MembershipFactory(user=user, tenant=tenant, role=Membership.Role.OWNER)
    return user


@pytest.fixture
def bob(tenant):
    user = UserFactory(email="bob@example.com")
    MembershipFactory(user=user, tenant=tenant, role=Membership.Role.VIEWER)
    return user


@pytest.fixture
def charlie(other_tenant):
    user = UserFactory(email="charlie@example.com")
    MembershipFactory(user=user, tenant=other_tenant, role=Membership.Role.OWNER)
    return user


@pytest.fixture
def english(settings):
    """English messages, whatever the default language (zh-hans).

    Not autouse: test modules that read English opt in with
    `pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]`."""
    settings.LANGUAGE_CODE = "en"
    with translation.override("en"):
        yield


@pytest.fixture
def owner(client, alice):
    """The Django test client, logged in as `alice` (owner of `tenant`)."""
    client.force_login(alice)
    return client


@pytest.fixture
def viewer(client, bob):
    """The Django test client, logged in as `bob` (viewer of `tenant`)."""
    client.force_login(bob)
    return client


def _key_client(raw: str):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def admin_api(tenant):
    """An API client with the tenant's admin key."""
    return _key_client(make_api_key(tenant, ApiKey.Role.ADMIN)[1])


@pytest.fixture
def operator_api(tenant):
    return _key_client(make_api_key(tenant, ApiKey.Role.OPERATOR)[1])


@pytest.fixture
def viewer_api(tenant):
    return _key_client(make_api_key(tenant, ApiKey.Role.VIEWER)[1])


@pytest.fixture
def other_api(other_tenant):
    """The other tenant's admin key: everything of `tenant` is a 404 to it."""
    return _key_client(make_api_key(other_tenant, ApiKey.Role.ADMIN)[1])


@pytest.fixture
def anon_api():
    from rest_framework.test import APIClient

    return APIClient()


def pytest_collection_modifyitems(config, items):
    """Tests marked `postgres` need a real PostgreSQL; `redis` a real Redis (REDIS_URL).

    Locally they are skipped without one; in CI (CI=true) a missing server is a failure,
    not a skip: .ci/run provides both."""
    for item in items:
        if "redis" in item.keywords and not os.environ.get("REDIS_URL"):
            item.add_marker(pytest.mark.skip(reason="REDIS_URL is not set"))


STAFF_PASSWORD = "staff pass 2026!"


@pytest.fixture
def staff(db):
    """A superuser for the Django admin (password STAFF_PASSWORD)."""
    from console.models import User

    return User.objects.create_superuser("staff@example.com", STAFF_PASSWORD)


@pytest.fixture
def staff_client(client, staff):
    """The Django test client, logged in as `staff`."""
    client.force_login(staff)
    return client


@pytest.fixture
def postgres_only(db):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")


@pytest.fixture(autouse=True)
def _rate_limits_forgotten():
    """Login, reset and signup counts live on the cache, which outlives a test (and on Redis
    a run): every test starts with none. Only those keys go: on Redis the same database is
    the Celery broker."""
    from django.core.cache import cache

    patterns = ("axes-", "limit:")
    if os.environ.get("REDIS_URL"):
        client = cache._cache.get_client(write=True)
        keys = [k for p in patterns for k in client.scan_iter(match=f"*:{p}*", count=1000)]
        if keys:
            client.delete(*keys)
    else:  # LocMemCache: its own dict, keys made as "<prefix>:<version>:<key>"
        with cache._lock:
            for key in [k for k in cache._cache if any(f":{p}" in k for p in patterns)]:
                del cache._cache[key]
                cache._expire_info.pop(key, None)


@pytest.fixture(autouse=True)
def _staff_force_login_passes_2fa(request, monkeypatch):
    """STAFF_2FA_REQUIRED is on under tests, as in production (DEBUG off): a staff user's
    admin pages need a session verified by a second factor. A test that logs staff in with
    `client.force_login` gets what a real sign-in gives after the code: a confirmed
    authenticator, recorded in the session as `django_otp.login` does. Tests of the second
    factor itself opt out with `@pytest.mark.staff_2fa` and go through its pages."""
    if request.node.get_closest_marker("staff_2fa"):
        return
    from django.test import Client

    force_login = Client.force_login

    def force_login_verified(self, user, backend=None):
        force_login(self, user, backend)
        if user.is_staff:
            from django_otp import DEVICE_ID_SESSION_KEY
            from django_otp.plugins.otp_totp.models import TOTPDevice

            device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
            if device is None:
                device = TOTPDevice.objects.create(user=user, name="test", confirmed=True)
            session = self.session
            session[DEVICE_ID_SESSION_KEY] = device.persistent_id
            session.save()

    monkeypatch.setattr(Client, "force_login", force_login_verified)
