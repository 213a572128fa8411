"""One error shape for the whole API: {"code", "detail", "errors"} (CONTRACT.md).

Validation errors carry field messages under `errors`; every other error has an empty
`errors`. Domain errors (console.errors.ServiceError) keep their code and any extra fields
(`holder`, `lease_expires_at`, …). Nothing a client sends can turn into a 500 here.
"""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import DateTimeField
from rest_framework.settings import api_settings
from rest_framework.views import set_rollback

from console.errors import ServiceError

# Codes for DRF's own exceptions, by status. An exception class may name its own code by
# setting an upper-case `default_code` (e.g. TENANT_SUSPENDED).
_CODES = {
    status.HTTP_400_BAD_REQUEST: "INVALID",
    status.HTTP_401_UNAUTHORIZED: "NOT_AUTHENTICATED",
    status.HTTP_403_FORBIDDEN: "FORBIDDEN",
    status.HTTP_404_NOT_FOUND: "NOT_FOUND",
    status.HTTP_405_METHOD_NOT_ALLOWED: "METHOD_NOT_ALLOWED",
    status.HTTP_406_NOT_ACCEPTABLE: "NOT_ACCEPTABLE",
    status.HTTP_409_CONFLICT: "CONFLICT",
    status.HTTP_410_GONE: "GONE",
    status.HTTP_411_LENGTH_REQUIRED: "LENGTH_REQUIRED",
    status.HTTP_413_REQUEST_ENTITY_TOO_LARGE: "PAYLOAD_TOO_LARGE",
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "UNSUPPORTED_MEDIA_TYPE",
    status.HTTP_429_TOO_MANY_REQUESTS: "RATE_LIMITED",
}


class LengthRequired(exceptions.APIException):
    """A chunked body: without a Content-Length the WSGI request reads nothing, and an empty
    body would be taken for no body at all."""

    status_code = status.HTTP_411_LENGTH_REQUIRED
    default_detail = gettext_lazy("Send the body with a Content-Length, not chunked.")
    default_code = "LENGTH_REQUIRED"


class PayloadTooLarge(exceptions.APIException):
    """A body over DATA_UPLOAD_MAX_MEMORY_SIZE. Django raises RequestDataTooBig, which it
    would answer with its HTML 400 page."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = gettext_lazy("The request body is too large.")
    default_code = "PAYLOAD_TOO_LARGE"


def flatten_errors(detail, prefix: str = "") -> dict[str, list[str]]:
    """DRF's nested error detail as flat `{"field": [messages]}`.

    Nested fields are joined with dots: `{"cameras": {2: ["…"]}}` → `{"cameras.2": ["…"]}`;
    messages not tied to a field go under `non_field_errors`."""
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for name, value in detail.items():
            out.update(flatten_errors(value, f"{prefix}.{name}" if prefix else str(name)))
        return out
    key = prefix or api_settings.NON_FIELD_ERRORS_KEY
    if isinstance(detail, list):
        messages: list[str] = []
        nested: dict[str, list[str]] = {}
        for index, item in enumerate(detail):
            if isinstance(item, dict | list):
                nested.update(flatten_errors(item, f"{prefix}.{index}" if prefix else str(index)))
            else:
                messages.append(str(item))
        return {key: messages, **nested} if messages else nested
    return {key: [str(detail)]}


def error_body(code: str, detail, errors: dict | None = None, **extra) -> dict:
    body = {"code": code, "detail": str(detail), "errors": errors or {}}
    body.update(extra)
    return body


def _json_value(value):
    # Times in error extras (a lease's end) read like every other time: ISO 8601 with offset.
    if hasattr(value, "isoformat") and hasattr(value, "tzinfo"):
        return DateTimeField().to_representation(value)
    return value


def _validation_detail(errors: dict[str, list[str]]) -> str:
    for field, messages in errors.items():
        if messages:
            if field == api_settings.NON_FIELD_ERRORS_KEY:
                return messages[0]
            return f"{field}: {messages[0]}"
    return _("Invalid input.")


def exception_handler(exc, context):
    if isinstance(exc, ServiceError):
        set_rollback()
        extra = {name: _json_value(value) for name, value in exc.extra.items()}
        body = error_body(exc.code, exc.detail, exc.errors, **extra)
        return Response(body, status=exc.status_code)

    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, RequestDataTooBig):
        exc = PayloadTooLarge()
    if not isinstance(exc, exceptions.APIException):
        return None  # a bug, not bad input: let it surface as a 500 and be fixed

    set_rollback()
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))

    if isinstance(exc, exceptions.ValidationError):
        errors = flatten_errors(exc.detail)
        body = error_body("INVALID", _validation_detail(errors), errors)
    else:
        code = str(exc.default_code)
        if not code.isupper():
            code = _CODES.get(exc.status_code, "ERROR")
        body = error_body(code, exc.detail)
    return Response(body, status=exc.status_code, headers=headers)


@csrf_exempt
def api_not_found(request, *args, **kwargs):
    """Any path under /api/v1/ that names no endpoint: a 404 in the API's error shape."""
    return JsonResponse(
        error_body("NOT_FOUND", _("Not found.")),
        status=404,
        json_dumps_params={"ensure_ascii": False},
    )
