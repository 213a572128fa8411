"""The OpenAPI schema (/api/schema/) and the interactive docs (/api/docs/), served offline."""

import json
import re

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db

API_PATHS = {
    "/api/v1/devices/": {"get", "post"},
    "/api/v1/devices/{id}/": {"get", "patch", "delete"},
    "/api/v1/devices/{id}/bind-licenses": {"post"},
    "/api/v1/devices/{id}/entitlement": {"post"},
    "/api/v1/devices/{id}/control-session": {"post"},
    "/api/v1/cameras/": {"get", "post"},
    "/api/v1/cameras/{id}/": {"get", "patch", "delete"},
    "/api/v1/cockpits/": {"get", "post"},
    "/api/v1/cockpits/{id}/": {"get", "patch", "delete"},
    "/api/v1/licenses/": {"get"},
    "/api/v1/licenses/{id}/": {"get"},
    "/api/v1/licenses/{id}/bind": {"post"},
    "/api/v1/licenses/{id}/unbind": {"post"},
    "/api/v1/control-sessions/{id}/heartbeat": {"post"},
    "/api/v1/control-sessions/{id}": {"delete"},
}


def test_schema_generates_without_warnings_and_validates(tmp_path):
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert out.stat().st_size > 0


@pytest.fixture
def schema(anon_api):
    response = anon_api.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return json.loads(response.content)


def test_schema_lists_every_contract_path(schema):
    for path, methods in API_PATHS.items():
        assert path in schema["paths"], path
        assert methods <= set(schema["paths"][path]), path


def test_schema_documents_the_bearer_key_and_the_error_shape(schema):
    assert schema["components"]["securitySchemes"]["apiKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schema["components"]["securitySchemes"]["apiKey"]["description"],
    }
    error = schema["components"]["schemas"]["ErrorOutput"]
    assert set(error["required"]) == {"code", "detail", "errors"}
    responses = schema["paths"]["/api/v1/devices/{id}/"]["get"]["responses"]
    assert {"200", "401", "403", "404"} <= set(responses)


def _examples(operation) -> tuple[dict, dict]:
    request = operation["requestBody"]["content"]["application/json"].get("examples", {})
    responses = {
        status: body.get("content", {}).get("application/json", {}).get("examples", {})
        for status, body in operation["responses"].items()
    }
    return request, responses


def test_entitlement_and_control_calls_carry_examples(schema):
    request, responses = _examples(schema["paths"]["/api/v1/devices/{id}/entitlement"]["post"])
    assert request and responses["200"]
    codes = {ex["value"]["code"] for ex in responses["200"].values()}
    assert {"DEGRADED", "NO_VALID_LICENSE"} <= codes

    request, responses = _examples(schema["paths"]["/api/v1/devices/{id}/control-session"]["post"])
    assert request and responses["201"] and responses["403"]
    held = next(iter(responses["409"].values()))["value"]
    assert held["code"] == "CONTROL_HELD" and "holder" in held

    heartbeat = schema["paths"]["/api/v1/control-sessions/{id}/heartbeat"]["post"]
    assert heartbeat["responses"]["410"]["content"]["application/json"]["examples"]


def test_docs_are_served_offline(anon_api):
    """No CDN: Swagger UI comes from drf-spectacular-sidecar's static files."""
    response = anon_api.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    external = re.findall(r"""(?:src|href)=["'](https?:)?//""", html)
    assert external == []
