"""Headers and proxies (issue 13): a Content-Security-Policy without inline script or eval
and a Permissions-Policy on console, admin and API-docs pages; no page renders an inline
script; HTTPS settings from the environment with production defaults when DEBUG is off;
X-Forwarded-Proto believed only with BEHIND_PROXY; `check --deploy` clean with the README's
production settings."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib import admin
from django.urls import reverse

from billing.tests.utils import paid_new_order
from console.tests.factories import DeviceFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]

# The README's production settings ("Configuration" and "Production layout").
PRODUCTION_ENV = {
    "SECRET_KEY": "k3y-" + "x7Q" * 20,
    "DEBUG": "false",
    "ALLOWED_HOSTS": "console.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://console.example.com",
    "SITE_URL": "https://console.example.com",
    "DATABASE_URL": "postgres://fieldconsole:secret@db.example:5432/fieldconsole",
    "REDIS_URL": "redis://redis.example:6379/0",
    "EMAIL_URL": "smtp://mail.example:587",
    "SECURE_SSL_REDIRECT": "true",
    "BEHIND_PROXY": "true",
}

INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
EVENT_HANDLER = re.compile(r"<[a-z][^>]*\son[a-z]+\s*=", re.IGNORECASE)


def csp_directives(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def assert_headers(response):
    csp = csp_directives(response)
    assert csp["script-src"] == ["'self'"]
    assert csp["default-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert "unsafe-eval" not in response["Content-Security-Policy"]
    policy = response["Permissions-Policy"]
    for feature in ("camera=()", "microphone=()", "geolocation=()", "payment=()"):
        assert feature in policy


def assert_no_inline_script(response, path):
    html = response.content.decode()
    assert not INLINE_SCRIPT.search(html), f"{path}: inline <script>"
    assert not EVENT_HANDLER.search(html), f"{path}: inline event handler"


def test_a_console_page_has_the_headers(owner):
    assert_headers(owner.get("/devices/"))
    assert_headers(owner.get("/login/"))


def test_the_json_api_is_no_page_and_needs_no_policy(admin_api, tenant):
    """/api/v1/ answers JSON that no browser renders as a document: nosniff and
    X-Frame-Options DENY, no CSP to build on each of the gateways' calls."""
    device = DeviceFactory(tenant=tenant)
    for response in (
        admin_api.get("/api/v1/devices/"),
        admin_api.post(f"/api/v1/devices/{device.pk}/entitlement", {}, format="json"),
        admin_api.get("/api/v1/devices/999999/"),
    ):
        assert response["Content-Type"].startswith("application/json")
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["X-Frame-Options"] == "DENY"
        assert "Content-Security-Policy" not in response


def test_an_admin_page_has_the_headers(staff_client):
    assert_headers(staff_client.get("/admin/"))
    assert_headers(staff_client.get("/admin/login/"))


def test_the_api_docs_have_the_headers_and_load_their_script_as_a_file(client):
    page = client.get("/api/docs/")
    assert page.status_code == 200
    assert_headers(page)
    assert_no_inline_script(page, "/api/docs/")
    html = page.content.decode()
    # Served offline by drf-spectacular-sidecar, and the start-up script from this origin.
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    script_src = re.search(r'<script src="(/api/docs/\?[^"]*script[^"]*)"', html).group(1)
    script = client.get(script_src.replace("&amp;", "&"))
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()


def test_console_pages_render_no_inline_script(owner, tenant, device, english):
    order = paid_new_order(tenant, quantity=1)
    paths = [
        "/",
        "/devices/",
        reverse("device-detail", args=[device.pk]),
        "/licenses/",
        "/orders/",
        "/orders/new/?cameras=1920x1080",
        f"/orders/{order.pk}/",
        f"/orders/{order.pk}/receipt/",
        "/keys/",
        "/password-change/",
    ]
    for path in paths:
        response = owner.get(path)
        assert response.status_code == 200, path
        assert_no_inline_script(response, path)
        assert_headers(response)
    receipt = owner.get(f"/orders/{order.pk}/receipt/").content.decode()
    assert "billing/receipt-print.js" in receipt and "data-print" in receipt


def test_public_pages_render_no_inline_script(client):
    for path in ("/login/", "/signup/", "/password-reset/", "/admin/login/"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert_no_inline_script(response, path)


def test_admin_pages_render_no_inline_script(staff_client, tenant, device):
    paths = ["/admin/", "/admin/2fa/recovery-codes/"]
    for model in admin.site._registry:
        meta = model._meta
        paths.append(reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist"))
    paths.append(reverse("admin:console_tenant_change", args=[tenant.pk]))
    paths.append(reverse("admin:devices_fielddevice_change", args=[device.pk]))
    for path in paths:
        response = staff_client.get(path)
        assert response.status_code == 200, path
        assert_no_inline_script(response, path)


@pytest.fixture
def device(tenant):
    return DeviceFactory(tenant=tenant, serial="truck_07")


def settings_of(*names: str, **env: str) -> dict:
    code = (
        "import os, json; os.environ['DJANGO_SETTINGS_MODULE'] = 'console.settings'; "
        "from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n, None) for n in {list(names)!r}}}))"
    )
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**keep, "SECRET_KEY": "x" * 50, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


HTTPS = (
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_PROXY_SSL_HEADER",
)


def test_production_defaults_are_https_only_and_trust_no_proxy():
    values = settings_of(*HTTPS, DEBUG="false")
    assert values == {
        # Redirecting plain HTTP is the TLS proxy's job unless SECURE_SSL_REDIRECT says so.
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        # No proxy said: X-Forwarded-Proto from a client is not believed.
        "SECURE_PROXY_SSL_HEADER": None,
    }


def test_x_forwarded_proto_is_believed_only_behind_a_proxy():
    values = settings_of("SECURE_PROXY_SSL_HEADER", DEBUG="false", BEHIND_PROXY="true")
    assert values["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert settings_of("SECURE_PROXY_SSL_HEADER", DEBUG="true", BEHIND_PROXY="false") == {
        "SECURE_PROXY_SSL_HEADER": None
    }


def test_a_client_claiming_https_is_not_believed_without_a_proxy(client, settings):
    assert getattr(settings, "SECURE_PROXY_SSL_HEADER", None) is None
    settings.SECURE_SSL_REDIRECT = True
    response = client.get("/login/", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 301
    assert response["Location"].startswith("https://")
    # The container's health check asks over plain HTTP and is not redirected.
    assert client.get("/healthz").status_code == 200


def test_the_https_settings_come_from_the_environment():
    values = settings_of(
        *HTTPS,
        DEBUG="false",
        SECURE_SSL_REDIRECT="false",
        SECURE_HSTS_SECONDS="300",
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
    )
    assert values["SECURE_SSL_REDIRECT"] is False
    assert values["SECURE_HSTS_SECONDS"] == 300
    assert values["SESSION_COOKIE_SECURE"] is False and values["CSRF_COOKIE_SECURE"] is False
    debug = settings_of(*HTTPS, DEBUG="true")
    assert debug["SECURE_SSL_REDIRECT"] is False and debug["SECURE_HSTS_SECONDS"] == 0


@pytest.mark.parametrize("behind_proxy", ["true", "false"])
def test_check_deploy_is_clean_with_the_readme_production_settings(behind_proxy):
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**keep, **PRODUCTION_ENV, "BEHIND_PROXY": behind_proxy},
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output, output
    assert "WARNING" not in output, output


def test_the_compose_file_and_the_image_say_who_may_claim_https():
    import yaml

    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    web = compose["web"]
    # Only the proxy reaches gunicorn, so it and Django may believe its headers.
    assert "ports" not in web and web["expose"] == ["8000"]
    assert web["environment"]["BEHIND_PROXY"] == "true"
    assert web["environment"]["FORWARDED_ALLOW_IPS"] == "*"
    assert "web:8000" in compose["proxy"]["command"]
    assert {"80:80", "443:443"} <= set(compose["proxy"]["ports"])
    # The image alone believes no one.
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert 'ENV FORWARDED_ALLOW_IPS=""' in dockerfile
    assert "BEHIND_PROXY=true" not in dockerfile.replace("set BEHIND_PROXY=true", "")
