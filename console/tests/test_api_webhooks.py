"""R15 API: /api/v1/webhook-endpoints/ — admin keys only, the secret in full once, bad input
a 400 with field errors and nothing stored, another tenant's endpoint a 404."""

import socket

import pytest

from console import webhooks
from console.models import WebhookDelivery, WebhookEndpoint, WebhookEvent

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("english")]

LIST = "/api/v1/webhook-endpoints/"


@pytest.fixture(autouse=True)
def dns(monkeypatch):
    """No real DNS in tests: these names resolve as listed, others fail."""
    answers = {"hooks.example.com": "93.184.216.34", "internal.example.com": "10.0.0.7"}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            return real(answers[host], port, *args, **kwargs)
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        except OSError:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known") from None
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def create(api, **body):
    body.setdefault("url", "https://hooks.example.com/fc")
    body.setdefault("events", ["license.expired", "order.paid"])
    return api.post(LIST, body, format="json")


def test_create_shows_the_secret_once(admin_api, tenant):
    response = create(admin_api)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["secret"].startswith("whsec_") and len(body["secret"]) > 40
    assert body["url"] == "https://hooks.example.com/fc"
    assert body["events"] == ["license.expired", "order.paid"]
    assert body["enabled"] is True and body["created_at"]
    shown = admin_api.get(f"{LIST}{body['id']}/").json()
    assert shown["secret"] == f"whsec_…{body['secret'][-4:]}"
    listed = admin_api.get(LIST).json()
    assert listed["count"] == 1 and listed["results"][0]["secret"] == shown["secret"]


def test_patch_delete_and_rotate(admin_api, tenant):
    created = create(admin_api).json()
    url = f"{LIST}{created['id']}/"
    patched = admin_api.patch(url, {"events": ["*"], "enabled": False}, format="json")
    assert patched.status_code == 200 and patched.json()["events"] == ["*"]
    assert patched.json()["enabled"] is False and patched.json()["disabled_at"]
    rotated = admin_api.post(f"{url}rotate-secret").json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    endpoint = WebhookEndpoint.objects.get()
    assert webhooks.signing_secrets(
        endpoint, endpoint.previous_secret_until.replace(year=2000)
    ) == [rotated["secret"], created["secret"]]
    assert admin_api.delete(url).status_code == 204
    assert not WebhookEndpoint.objects.exists()


def test_ping_deliveries_and_retry(admin_api, tenant, monkeypatch):
    monkeypatch.setattr(
        webhooks,
        "http_post",
        lambda *a: webhooks.AttemptResult(ok=False, status=503, error="HTTP 503"),
    )
    created = create(admin_api).json()
    ping = admin_api.post(f"{LIST}{created['id']}/ping")
    assert ping.status_code == 202
    assert ping.json()["type"] == "ping" and ping.json()["event_id"].startswith("msg_")
    deliveries = admin_api.get(f"{LIST}{created['id']}/deliveries/").json()
    assert deliveries["count"] == 1
    row = deliveries["results"][0]
    assert set(row) >= {
        "id",
        "event_id",
        "type",
        "status",
        "attempts",
        "response_status",
        "next_attempt_at",
    }
    retry = admin_api.post(f"{LIST}{created['id']}/deliveries/{row['id']}/retry")
    assert retry.status_code == 202 and retry.json()["status"] == "pending"


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"url": "http://hooks.example.com/x"}, "url", "INVALID"),
        ({"url": "ftp://hooks.example.com/x"}, "url", "INVALID"),
        ({"url": "https://user:pw@hooks.example.com/x"}, "url", "INVALID"),
        ({"url": "https://internal.example.com/x"}, "url", "WEBHOOK_URL_FORBIDDEN"),
        ({"url": "https://127.0.0.1/x"}, "url", "WEBHOOK_URL_FORBIDDEN"),
        ({"url": "https://[::1]/x"}, "url", "WEBHOOK_URL_FORBIDDEN"),
        ({"url": "https://169.254.169.254/latest"}, "url", "WEBHOOK_URL_FORBIDDEN"),
        ({"url": "https://hooks.example.com/" + "a" * 2000}, "url", "INVALID"),
        ({"url": "not a url"}, "url", "INVALID"),
        ({"url": 12}, "url", "INVALID"),
        ({"events": ["license.exploded"]}, "events", "INVALID"),
        ({"events": []}, "events", "INVALID"),
        ({"events": "license.expired"}, "events", "INVALID"),
        ({"events": ["*", "order.paid"]}, "events", "INVALID"),
        ({"enabled": "yes"}, "enabled", "INVALID"),
    ],
)
def test_bad_input_is_a_400_and_stores_nothing(admin_api, tenant, body, field, code):
    response = create(admin_api, **body)
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == code
    assert field in response.json()["errors"]
    assert not WebhookEndpoint.objects.exists()


def test_http_and_private_allowed_by_settings(admin_api, tenant, settings):
    settings.WEBHOOK_ALLOW_HTTP = True
    settings.WEBHOOK_ALLOW_PRIVATE = True
    assert create(admin_api, url="http://10.0.0.7:8080/hook").status_code == 201


def test_at_most_20_endpoints(admin_api, tenant):
    for n in range(20):
        assert create(admin_api, url=f"https://hooks.example.com/{n}").status_code == 201
    response = create(admin_api, url="https://hooks.example.com/21")
    assert response.status_code == 400
    assert response.json()["code"] == "WEBHOOK_ENDPOINT_LIMIT" and response.json()["errors"]
    assert WebhookEndpoint.objects.count() == 20


def test_patch_bad_input_changes_nothing(admin_api, tenant):
    created = create(admin_api).json()
    response = admin_api.patch(
        f"{LIST}{created['id']}/", {"url": "https://internal.example.com/"}, format="json"
    )
    assert response.status_code == 400 and response.json()["code"] == "WEBHOOK_URL_FORBIDDEN"
    assert WebhookEndpoint.objects.get().url == "https://hooks.example.com/fc"


@pytest.mark.parametrize("client_name", ["viewer_api", "operator_api"])
def test_only_admin_keys(request, admin_api, tenant, client_name):
    created = create(admin_api).json()
    api = request.getfixturevalue(client_name)
    for method, url in [
        ("get", LIST),
        ("post", LIST),
        ("get", f"{LIST}{created['id']}/"),
        ("patch", f"{LIST}{created['id']}/"),
        ("delete", f"{LIST}{created['id']}/"),
        ("get", f"{LIST}{created['id']}/deliveries/"),
        ("post", f"{LIST}{created['id']}/ping"),
        ("post", f"{LIST}{created['id']}/rotate-secret"),
    ]:
        assert getattr(api, method)(url, {}, format="json").status_code == 403, (method, url)
    assert WebhookEvent.objects.count() == 0


def test_it_validates_ownership(admin_api, other_api, tenant, other_tenant):
    created = create(admin_api).json()
    endpoint = WebhookEndpoint.objects.get()
    delivery = webhooks.webhook_endpoint_ping(tenant=tenant, endpoint=endpoint)
    base = f"{LIST}{created['id']}/"
    assert other_api.get(LIST).json()["count"] == 0
    assert other_api.get(base).status_code == 404
    assert other_api.patch(base, {"enabled": False}, format="json").status_code == 404
    assert other_api.delete(base).status_code == 404
    assert other_api.get(f"{base}deliveries/").status_code == 404
    assert other_api.post(f"{base}deliveries/{delivery.pk}/retry").status_code == 404
    assert other_api.post(f"{base}ping").status_code == 404
    assert other_api.post(f"{base}rotate-secret").status_code == 404
    assert WebhookEndpoint.objects.get().enabled
    assert WebhookDelivery.objects.count() == 1
    # A delivery of another endpoint is a 404 under this one.
    other = create(admin_api, url="https://hooks.example.com/2").json()
    assert admin_api.post(f"{LIST}{other['id']}/deliveries/{delivery.pk}/retry").status_code == 404


def test_anonymous_is_401(anon_api):
    assert anon_api.get(LIST).status_code == 401


def test_console_page_for_owners(owner, tenant, dns):
    response = owner.post(
        "/webhooks/", {"url": "https://hooks.example.com/p", "events": ["order.paid"]}
    )
    assert response.status_code == 200
    endpoint = WebhookEndpoint.objects.get()
    assert webhooks.endpoint_secret(endpoint) in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    page = owner.get("/webhooks/")
    assert "hooks.example.com/p" in page.content.decode()
    assert "<script>" not in page.content.decode()
    assert owner.post(f"/webhooks/{endpoint.pk}/ping/").status_code == 302
    detail = owner.get(f"/webhooks/{endpoint.pk}/")
    assert detail.status_code == 200 and "ping" in detail.content.decode()
    delivery = WebhookDelivery.objects.get()
    assert owner.post(f"/webhooks/{endpoint.pk}/deliveries/{delivery.pk}/retry/").status_code == 302
    assert owner.post(f"/webhooks/{endpoint.pk}/disable/").status_code == 302
    endpoint.refresh_from_db()
    assert not endpoint.enabled
    rotated = owner.post(f"/webhooks/{endpoint.pk}/rotate/")
    assert webhooks.endpoint_secret(WebhookEndpoint.objects.get()) in rotated.content.decode()
    bad = owner.post(
        "/webhooks/", {"url": "https://internal.example.com/", "events": ["order.paid"]}
    )
    assert bad.status_code == 200 and WebhookEndpoint.objects.count() == 1
    assert owner.post(f"/webhooks/{endpoint.pk}/delete/").status_code == 302
    assert not WebhookEndpoint.objects.exists()


def test_console_page_refuses_viewers_and_other_tenants(viewer, client, charlie, tenant):
    assert viewer.get("/webhooks/").status_code == 403
    endpoint, _secret = webhooks.webhook_endpoint_create(
        tenant=tenant, url="https://hooks.example.com/p", events=["*"]
    )
    client.force_login(charlie)
    assert client.get(f"/webhooks/{endpoint.pk}/").status_code == 404
    assert client.post(f"/webhooks/{endpoint.pk}/delete/").status_code == 404
    assert WebhookEndpoint.objects.exists()
