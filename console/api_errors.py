"""One error shape for the whole API: {"code", "detail", "errors"} (CONTRACT.md).

Validation errors carry field messages under `errors`; every other error has an empty
`errors`. Domain errors (console.errors.ServiceError) keep their code and any extra fields
(`holder`, `lease_expires_at`, …). Nothing a client sends can turn into a 500 here.
"""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import DateTimeField
from rest_framework.views import set_rollback

from console.errors import ServiceError

_CODES = {
    status.HTTP_400_BAD_REQUEST: "INVALID",
    status.HTTP_401_UNAUTHORIZED: "NOT_AUTHENTICATED",
    status.HTTP_403_FORBIDDEN: "FORBIDDEN",
    status.HTTP_404_NOT_FOUND: "NOT_FOUND",
    status.HTTP_405_METHOD_NOT_ALLOWED: "METHOD_NOT_ALLOWED",
    status.HTTP_406_NOT_ACCEPTABLE: "NOT_ACCEPTABLE",
    status.HTTP_409_CONFLICT: "CONFLICT",
    status.HTTP_410_GONE: "GONE",
    status.HTTP_415_UNSUPPORTED_MEDIA_TYPE: "UNSUPPORTED_MEDIA_TYPE",
    status.HTTP_429_TOO_MANY_REQUESTS: "THROTTLED",
}


def _flatten(detail) -> dict[str, list[str]]:
    if isinstance(detail, dict):
        out: dict[str, list[str]] = {}
        for field, value in detail.items():
            if isinstance(value, dict):
                for sub, msgs in _flatten(value).items():
                    out[f"{field}.{sub}"] = msgs
            elif isinstance(value, list):
                msgs = []
                for i, item in enumerate(value):
                    if isinstance(item, dict | list) and not isinstance(item, str):
                        for sub, sub_msgs in _flatten(
                            item if isinstance(item, dict) else {str(i): item}
                        ).items():
                            out[
                                f"{field}.{i}.{sub}" if isinstance(item, dict) else f"{field}.{sub}"
                            ] = sub_msgs
                    else:
                        msgs.append(str(item))
                if msgs:
                    out[field] = msgs
            else:
                out[field] = [str(value)]
        return out
    if isinstance(detail, list):
        return {"non_field_errors": [str(m) for m in detail]}
    return {"non_field_errors": [str(detail)]}


def error_body(code: str, detail, errors: dict | None = None, **extra) -> dict:
    body = {"code": code, "detail": str(detail), "errors": errors or {}}
    body.update(extra)
    return body


def _serialise(value):
    if hasattr(value, "isoformat"):
        return DateTimeField().to_representation(value)
    return value


def exception_handler(exc, context):
    if isinstance(exc, ServiceError):
        set_rollback()
        extra = {k: _serialise(v) for k, v in exc.extra.items()}
        return Response(
            error_body(exc.code, exc.detail, exc.errors, **extra), status=exc.status_code
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    if not isinstance(exc, exceptions.APIException):
        return None
    set_rollback()
    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = str(int(exc.wait))
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten(exc.detail)
        first = next(iter(errors.values()))[0] if errors else _("Invalid input.")
        return Response(
            error_body("INVALID", first, errors), status=exc.status_code, headers=headers
        )
    code = _CODES.get(exc.status_code, "ERROR")
    if exc.default_code not in (
        "error",
        "permission_denied",
        "not_authenticated",
        "not_found",
        "authentication_failed",
        "method_not_allowed",
        "parse_error",
        "unsupported_media_type",
        "not_acceptable",
        "throttled",
    ):
        code = str(exc.default_code).upper()
    if isinstance(exc, exceptions.ParseError):
        code = "INVALID"
    return Response(error_body(code, exc.detail), status=exc.status_code, headers=headers)
