"""JSON errors always on the API (a database outage is a 503, a bug a 500, never HTML), proper
error pages for people, HEAD wherever GET is, and the per-key API rate limit (off by
default)."""

import pytest
from django.core.cache import cache
from django.db import OperationalError
from django.test import Client
from rest_framework.test import APIClient

from console import api_auth
from console.models import ApiKey
from console.tests.factories import DeviceFactory, LicenseFactory, make_api_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def key_client(tenant):
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(tenant, ApiKey.Role.ADMIN)[1]}")
    return client


def database_down(*args, **kwargs):
    raise OperationalError("connection to server at 127.0.0.1, port 5432 failed")


def test_database_down_is_a_json_503_on_the_api(key_client, monkeypatch):
    monkeypatch.setattr(api_auth.Tenant.objects, "raw", database_down)
    response = key_client.get("/api/v1/devices/")
    assert response.status_code == 503
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == "SERVICE_UNAVAILABLE" and body["errors"] == {}
    assert response["Retry-After"] == "30"


def test_a_bug_is_a_json_500_on_the_api(key_client, tenant, monkeypatch):
    from licensing import services

    def boom(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(services, "entitlement_decide", boom)
    device = DeviceFactory(tenant=tenant)
    response = key_client.post(f"/api/v1/devices/{device.pk}/entitlement", {}, format="json")
    assert response.status_code == 500
    assert response.json()["code"] == "SERVER_ERROR"
    assert "a bug" not in response.content.decode()  # no internals to the client


@pytest.mark.parametrize(
    ("error", "status", "words"),
    [
        (OperationalError("down"), 503, {"zh-hans": "服务暂不可用", "en": "Service unavailable"}),
        (RuntimeError("a bug"), 500, {"zh-hans": "出错了", "en": "Something went wrong"}),
    ],
)
def test_pages_get_an_error_page_in_the_visitors_language(
    alice, monkeypatch, settings, error, status, words
):
    from console import views

    def boom(*args, **kwargs):
        raise error

    monkeypatch.setattr(views, "license_stats", boom)
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    for language, text in words.items():
        client.cookies[settings.LANGUAGE_COOKIE_NAME] = language
        response = client.get("/")
        assert response.status_code == status
        page = response.content.decode()
        assert "<html" in page and text in page


def test_head_is_answered_wherever_get_is(client, owner, tenant):
    assert client.head("/healthz").status_code == 200
    assert owner.head("/devices/").status_code == 200
    assert owner.head("/licenses/").status_code == 200
    assert client.head("/.well-known/jwks.json").status_code == 200
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(tenant)[1]}")
    assert api.head("/api/v1/devices/").status_code == 200


def test_no_rate_limit_by_default(tenant, settings):
    """Fleets share keys: without API_RATE_LIMIT nothing is ever throttled."""
    assert settings.REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] == []
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(tenant)[1]}")
    assert all(api.get("/api/v1/devices/").status_code == 200 for _i in range(30))


def test_a_key_over_its_rate_limit_gets_429_rate_limited(tenant, settings):
    from rest_framework.settings import api_settings
    from rest_framework.views import APIView

    cache.clear()
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_CLASSES": ["console.api_throttle.ApiKeyRateThrottle"],
        "DEFAULT_THROTTLE_RATES": {"api_key": "3/m"},
    }
    api_settings.reload()
    try:
        APIView.throttle_classes = api_settings.DEFAULT_THROTTLE_CLASSES
        device = DeviceFactory(tenant=tenant)
        LicenseFactory(tenant=tenant, device=device)
        first, second = APIClient(), APIClient()
        first.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(tenant)[1]}")
        second.credentials(HTTP_AUTHORIZATION=f"Bearer {make_api_key(tenant)[1]}")
        path = f"/api/v1/devices/{device.pk}/entitlement"
        answers = [first.post(path, {}, format="json").status_code for _i in range(4)]
        assert answers == [200, 200, 200, 429]
        limited = first.post(path, {}, format="json")
        assert limited.json()["code"] == "RATE_LIMITED"
        assert int(limited["Retry-After"]) > 0
        # The limit is per key: another key of the same tenant is not held back.
        assert second.post(path, {}, format="json").status_code == 200
    finally:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_CLASSES": [],
            "DEFAULT_THROTTLE_RATES": {"api_key": None},
        }
        api_settings.reload()
        APIView.throttle_classes = api_settings.DEFAULT_THROTTLE_CLASSES
        cache.clear()
