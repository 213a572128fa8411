"""Building blocks shared by every app's API module: input validation, tenant-scoped
look-ups, pagination and the documented error responses.

Endpoints follow the HackSoft pattern: one APIView per endpoint, small Input/Output
serializers, business rules in services. Views get objects only through querysets filtered
by `request.tenant` (set by console.api_auth.HasTenant), so another tenant's object is a 404.
"""

import re

from django.db.models import Model, QuerySet
from django.http import QueryDict
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

# Primary keys are 64-bit. A larger id cannot exist, and SQLite cannot even compare it, so
# it is refused before it reaches the database: as a 404 in a path, a 400 in a body/query.
MAX_ID = 2**63 - 1


class _JsonTyped:
    """Body fields take JSON's own types only: "5" is not an integer, 0 is not false, 12 is
    not a name. Gateways send JSON, and the schema then says exactly what is accepted."""

    json_types: tuple[type, ...] = ()

    def to_internal_value(self, data):
        if type(data) not in self.json_types:
            self.fail("invalid")
        return super().to_internal_value(data)


class JsonInteger(_JsonTyped, serializers.IntegerField):
    json_types = (int,)


class JsonBoolean(_JsonTyped, serializers.BooleanField):
    json_types = (bool,)


class JsonString(_JsonTyped, serializers.CharField):
    json_types = (str,)

    def to_internal_value(self, data):
        # The schema's maxLength is the value as sent: one padded with spaces past it is
        # refused, not trimmed under it and accepted.
        if self.max_length is not None and isinstance(data, str) and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class JsonRegex(_JsonTyped, serializers.RegexField):
    json_types = (str,)


class QueryInteger(serializers.IntegerField):
    """An integer query parameter: digits only ("1.0" and "1e3" are not ids)."""

    def to_internal_value(self, data):
        if not isinstance(data, str) or not re.fullmatch(r"-?[0-9]{1,30}", data):
            self.fail("invalid")
        return super().to_internal_value(data)


def IdField(**kwargs) -> serializers.IntegerField:
    """An object id in a JSON body."""
    return JsonInteger(min_value=1, max_value=MAX_ID, **kwargs)


def QueryIdField(**kwargs) -> serializers.IntegerField:
    """An object id in a query parameter (`?device=12`)."""
    return QueryInteger(min_value=1, max_value=MAX_ID, **kwargs)


def validated(serializer_class, data, *, partial: bool = False) -> dict:
    """Validate request data or query parameters; bad input raises a 400 with field errors.

    Query parameters are read as a plain dict: DRF would treat `?status=` as absent, but an
    empty value is not a valid status, id or ordering either, so it is a 400 too."""
    if isinstance(data, QueryDict):
        data = data.dict()
    serializer = serializer_class(data=data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


def get_or_404(queryset: QuerySet, pk: int) -> Model:
    """One object of a tenant-scoped queryset, or a 404 (also for ids that cannot exist)."""
    if not 1 <= pk <= MAX_ID:
        raise exceptions.NotFound()
    obj = queryset.filter(pk=pk).first()
    if obj is None:
        raise exceptions.NotFound()
    return obj


# --- pagination ----------------------------------------------------------------------------

_PAGE_NUMBER = re.compile(r"^(?:[1-9][0-9]{0,8}|last)$")
_PAGE_SIZE = re.compile(r"^[1-9][0-9]{0,8}$")


class ApiPagination(PageNumberPagination):
    """Page-number pagination with `next`/`previous` links. A malformed `page` or
    `page_size` is a 400 (DRF would quietly fall back); a page past the end is a 404."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_number(self, request, paginator):
        value = request.query_params.get(self.page_query_param, "1")
        if not _PAGE_NUMBER.match(value):
            raise exceptions.ValidationError(
                {self.page_query_param: [_("Enter a positive whole number.")]}
            )
        return value

    def get_page_size(self, request):
        value = request.query_params.get(self.page_size_query_param)
        if value is None:
            return self.page_size
        if not _PAGE_SIZE.match(value):
            raise exceptions.ValidationError(
                {self.page_size_query_param: [_("Enter a positive whole number.")]}
            )
        return min(int(value), self.max_page_size)

    def get_schema_operation_parameters(self, view):
        # What the two checks above accept, so generated clients (and the fuzzer) send
        # only pages and sizes that exist; a size over max_page_size is served as the max.
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": 999_999_999}
        return parameters


def paginated(request, view, queryset: QuerySet, output_class, *, prepare=None) -> Response:
    """One page of `queryset` with `count`, `next`, `previous` and `results`. `prepare`
    may decorate the page's rows in place before they are serialised."""
    paginator = view.pagination_class()
    rows = paginator.paginate_queryset(queryset, request, view=view)
    if prepare is not None:
        prepare(rows)
    return paginator.get_paginated_response(output_class(rows, many=True).data)


def ordering_field(choices: list[str], default: str) -> serializers.ChoiceField:
    """`?ordering=` with the allowed fields, each also descending ("-name")."""
    values = [value for name in choices for value in (name, f"-{name}")]
    return serializers.ChoiceField(
        choices=values,
        required=False,
        help_text=gettext_lazy("Sort order; prefix a field with '-' for descending. Default: %s.")
        % default,
    )


def order_by(queryset: QuerySet, ordering: str | None, default: str) -> QuerySet:
    # The id comes last so that pages are stable when the sort field has ties.
    key = ordering or default
    tie = "-id" if key.startswith("-") else "id"
    return queryset.order_by(key, tie) if key.lstrip("-") != "id" else queryset.order_by(key)


# --- documented errors ---------------------------------------------------------------------


class ErrorOutput(serializers.Serializer):
    """Every error: a machine-readable code, a human detail, field errors for bad input."""

    code = serializers.CharField()
    detail = serializers.CharField()
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text=gettext_lazy("Field errors: {field: [message, …]}; empty otherwise."),
    )


_ERROR_TEXT = {
    400: gettext_lazy("Bad input (code INVALID, or the rule's code); field errors in `errors`."),
    401: gettext_lazy("Missing, malformed, revoked or unknown API key."),
    403: gettext_lazy("The key's role does not allow this call, or TENANT_SUSPENDED."),
    404: gettext_lazy("No such object in this tenant."),
    409: gettext_lazy("The change conflicts with the object's state."),
    410: gettext_lazy("Gone."),
    411: gettext_lazy("A chunked body: send it with a Content-Length (LENGTH_REQUIRED)."),
    413: gettext_lazy("The body is over the upload limit (PAYLOAD_TOO_LARGE)."),
}


def error_responses(*statuses: int, **overrides: OpenApiResponse) -> dict:
    """Documented error responses: 401 and 403 always, plus the given statuses.
    `overrides` replace an entry, keyed "e409" and so on."""
    out = {}
    for code in sorted({401, 403, *statuses}):
        out[code] = overrides.get(f"e{code}") or OpenApiResponse(ErrorOutput, _ERROR_TEXT[code])
    return out
