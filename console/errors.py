"""Domain errors raised by services. The API and the pages turn them into responses.

Each carries a machine-readable `code`, a human `detail` (translatable) and, for bad
input, field errors under `errors`. Raising one inside `transaction.atomic()` rolls the
whole change back, so bad input changes nothing.
"""

from typing import Any


class ServiceError(Exception):
    status_code = 400
    default_code = "INVALID"

    def __init__(
        self,
        detail: Any,
        *,
        code: str | None = None,
        errors: dict[str, list[str]] | None = None,
        extra: dict[str, Any] | None = None,
    ):
        super().__init__(str(detail))
        self.detail = detail
        self.code = code or self.default_code
        self.errors = errors or {}
        self.extra = extra or {}


class InvalidInput(ServiceError):
    status_code = 400
    default_code = "INVALID"


class NotFound(ServiceError):
    status_code = 404
    default_code = "NOT_FOUND"


class Forbidden(ServiceError):
    status_code = 403
    default_code = "FORBIDDEN"


class Conflict(ServiceError):
    status_code = 409
    default_code = "CONFLICT"


class Gone(ServiceError):
    status_code = 410
    default_code = "GONE"


def invalid_from_django(exc) -> InvalidInput:
    """Turn a django.core.exceptions.ValidationError into InvalidInput with field errors."""
    from django.utils.translation import gettext as _

    if hasattr(exc, "error_dict"):
        errors = {
            ("non_field_errors" if field == "__all__" else field): [str(m) for m in msgs]
            for field, msgs in exc.message_dict.items()
        }
    else:
        errors = {"non_field_errors": [str(m) for m in exc.messages]}
    first = next(iter(errors.values()))[0] if errors else _("Invalid input.")
    return InvalidInput(first, errors=errors)
