"""API v1: licenses and binding (R5, R7), entitlement (R6, R10) and control sessions (R8).

The entitlement call is the product's hot path: gateways ask it every time a device starts
streaming. With a key, in steady state, it is one SQL statement (the key, its tenant, the
device, its cameras and license counts), the R1/R6 decision, and nothing else.
"""

import datetime as dt

from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.utils import json
from rest_framework.utils.mediatypes import media_type_matches
from rest_framework.views import APIView

from console.api import (
    MAX_ID,
    ApiPagination,
    ErrorOutput,
    IdField,
    JsonBoolean,
    JsonInteger,
    QueryIdField,
    error_responses,
    get_or_404,
    order_by,
    ordering_field,
    paginated,
    validated,
)
from console.api_auth import (
    ADMIN,
    CONTROL,
    ENTITLEMENT,
    MANAGE,
    READ,
    PendingApiKey,
    key_checked,
    key_stale_before,
)
from console.api_errors import LengthRequired, PayloadTooLarge
from console.api_parsers import JSONParser
from devices.models import FieldDevice
from devices.services import lease_seconds
from licensing import selectors, services
from licensing.models import License

# --- licenses --------------------------------------------------------------------------------


class LicenseOutput(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(
        choices=License.Status.choices,
        source="current_status",
        help_text=gettext_lazy("R5: computed at read time from expires_at."),
    )
    device = serializers.IntegerField(source="device_id", allow_null=True)
    starts_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    first_served_at = serializers.DateTimeField(
        allow_null=True,
        help_text=gettext_lazy(
            "R10: when the license first served a stream or a control "
            "session; null while it has not."
        ),
    )


class LicenseFilter(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=License.Status.choices,
        required=False,
        help_text=gettext_lazy("Status at read time, as in the response."),
    )
    device = QueryIdField(required=False, help_text=gettext_lazy("Only licenses bound to it."))
    ordering = ordering_field(["expires_at", "starts_at", "id"], "expires_at")


class LicenseListApi(APIView):
    required_roles = {"GET": READ}
    pagination_class = ApiPagination

    @extend_schema(
        operation_id="licenses_list",
        parameters=[LicenseFilter],
        responses={200: LicenseOutput(many=True), **error_responses(400, 404)},
    )
    def get(self, request):
        filters = validated(LicenseFilter, request.query_params)
        licenses = selectors.license_list(
            request.tenant, status=filters.get("status"), device_id=filters.get("device")
        )
        licenses = order_by(licenses, filters.get("ordering"), "expires_at")
        return paginated(request, self, licenses, LicenseOutput)


def _license_or_404(request, pk: int) -> License:
    return get_or_404(License.objects.filter(tenant=request.tenant), pk)


class LicenseDetailApi(APIView):
    required_roles = {"GET": READ}

    @extend_schema(
        operation_id="licenses_retrieve", responses={200: LicenseOutput, **error_responses(404)}
    )
    def get(self, request, id: int):
        return Response(LicenseOutput(_license_or_404(request, id)).data)


class LicenseBindInput(serializers.Serializer):
    device = IdField(help_text=gettext_lazy("One of the tenant's devices."))


_BIND_CONFLICT = OpenApiResponse(
    ErrorOutput,
    gettext_lazy("LICENSE_EXPIRED, LICENSE_REFUNDED, or LICENSE_BOUND (to another device)."),
)


class LicenseBindApi(APIView):
    required_roles = {"POST": MANAGE}

    @extend_schema(
        operation_id="licenses_bind",
        description=gettext_lazy(
            "R7: bind the license to a device of the tenant. Binding it "
            "again to the same device changes nothing."
        ),
        request=LicenseBindInput,
        responses={200: LicenseOutput, **error_responses(400, 404, 409, e409=_BIND_CONFLICT)},
    )
    def post(self, request, id: int):
        lic = _license_or_404(request, id)
        data = validated(LicenseBindInput, request.data)
        lic = services.license_bind(
            tenant=request.tenant,
            license=lic,
            device=data["device"],
            actor=request.principal.actor,
        )
        return Response(LicenseOutput(lic).data)


class LicenseUnbindApi(APIView):
    required_roles = {"POST": MANAGE}

    @extend_schema(
        operation_id="licenses_unbind",
        description=gettext_lazy(
            "R7: unbind the license (audited); a valid one can then be bound to another device."
        ),
        request=None,
        responses={200: LicenseOutput, **error_responses(404)},
    )
    def post(self, request, id: int):
        lic = _license_or_404(request, id)
        lic = services.license_unbind(
            tenant=request.tenant, license=lic, actor=request.principal.actor
        )
        return Response(LicenseOutput(lic).data)


class BindLicensesInput(serializers.Serializer):
    count = JsonInteger(min_value=1, max_value=10_000)


class BindLicensesOutput(serializers.Serializer):
    bound = serializers.ListField(child=serializers.IntegerField())


class DeviceBindLicensesApi(APIView):
    required_roles = {"POST": MANAGE}

    @extend_schema(
        operation_id="devices_bind_licenses",
        description=gettext_lazy(
            "R7: bind `count` unbound valid licenses to the device, "
            "soonest-expiring first; all or nothing."
        ),
        request=BindLicensesInput,
        responses={
            200: BindLicensesOutput,
            **error_responses(
                400,
                404,
                409,
                e409=OpenApiResponse(
                    ErrorOutput,
                    gettext_lazy("NOT_ENOUGH_LICENSES: fewer are free; none was bound."),
                ),
            ),
        },
    )
    def post(self, request, id: int):
        device = get_or_404(FieldDevice.objects.filter(tenant=request.tenant), id)
        data = validated(BindLicensesInput, request.data)
        bound = services.licenses_bind_count(
            tenant=request.tenant,
            device=device,
            count=data["count"],
            actor=request.principal.actor,
        )
        return Response({"bound": [lic.pk for lic in bound]})


# --- entitlement (R6) --------------------------------------------------------------------------


# Ids may repeat (they count once); a device has at most 8 cameras.
MAX_REQUESTED_CAMERAS = 64


class EntitlementInput(serializers.Serializer):
    cameras = serializers.ListField(
        child=IdField(),
        required=False,
        min_length=1,
        max_length=MAX_REQUESTED_CAMERAS,
        help_text=gettext_lazy("The device's camera ids to push; omitted: all enabled cameras."),
    )


class EntitlementOutput(serializers.Serializer):
    code = serializers.ChoiceField(choices=["VALID", "DEGRADED", "NO_VALID_LICENSE"])
    licenses_valid = serializers.IntegerField()
    licenses_required = serializers.IntegerField()
    granted_cameras = serializers.ListField(child=serializers.IntegerField())
    denied_cameras = serializers.ListField(child=serializers.IntegerField())
    valid_until = serializers.DateTimeField(allow_null=True)


def _to_iso(value: dt.datetime, tz: dt.tzinfo) -> str:
    """A time as DRF's DateTimeField writes it (ISO 8601 in the current time zone `tz`,
    UTC as "Z"), without a field's settings look-ups on every call."""
    text = value.astimezone(tz).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _requested_cameras(data) -> list[int] | None:
    """The requested camera ids, or None for all enabled cameras.

    The usual body ({} or {"cameras": [ids]}) is checked inline, which costs a fraction of
    a serializer on the hot path; anything else goes through EntitlementInput, which
    decides and words the errors. Both accept exactly the same bodies."""
    if type(data) is dict:
        if not data:
            return None
        cameras = data.get("cameras")
        if (
            len(data) == 1
            and type(cameras) is list
            and 1 <= len(cameras) <= MAX_REQUESTED_CAMERAS
            and all(type(i) is int and 1 <= i <= MAX_ID for i in cameras)
        ):
            return cameras
    return validated(EntitlementInput, data).get("cameras")


def _content_length(request) -> int | None:
    """The request's Content-Length; None when it is not a number."""
    try:
        return int(request._request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None


def _body(request, length: int | None):
    """request.data, read straight from the bytes for the usual body (JSON in UTF-8, which
    parses): DRF's parser machinery cost more than the rest of this call. Anything else —
    another media type or charset, no body, a body that does not parse — goes through DRF,
    which answers 415/400 in its own words, exactly as before. A body over
    DATA_UPLOAD_MAX_MEMORY_SIZE is a 413, raised as an APIException so that the view can
    judge it after the key, like every other body error."""
    django_request = request._request
    if "chunked" in django_request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        raise LengthRequired()
    if length is None:
        return request.data  # DRF reads it as no body; Django's own reader would fail
    try:
        if django_request.content_type == "application/json":
            charset = django_request.content_params.get("charset", "utf-8").lower()
            body = django_request.body if charset in ("utf-8", "utf8") else b""
            if body:
                try:
                    # As DRF's JSONParser with STRICT_JSON: NaN and Infinity are refused.
                    return json.loads(body.decode(), parse_constant=json.strict_constant)
                except (ValueError, RecursionError):
                    pass  # DRF parses it again and words the 400
        return request.data
    except RequestDataTooBig as exc:
        raise PayloadTooLarge() from exc


# A usual body ({"cameras": [up to MAX_REQUESTED_CAMERAS ids]}) is well under this.
_EARLY_BODY_BYTES = 2048


def _read_cameras(
    request, length: int | None
) -> tuple[list[int] | None, exceptions.APIException | None]:
    """The requested camera ids (None: all enabled cameras), or the error the body earns."""
    try:
        return _requested_cameras(_body(request, length)), None
    except exceptions.APIException as exc:
        return None, exc


def _json_response(data: dict) -> HttpResponse:
    # What JSONRenderer would write for these values (compact, UTF-8), without a
    # rendering pass per call.
    body = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return HttpResponse(body.encode(), content_type="application/json")


class JsonOnly(BaseContentNegotiation):
    """JSON in, JSON out, whatever the Accept header: nothing to negotiate per call."""

    def select_parser(self, request, parsers):
        # Another body type is still a 415, as everywhere else.
        parser = parsers[0]
        return parser if media_type_matches(parser.media_type, request.content_type) else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class EntitlementApi(APIView):
    required_roles = {"POST": ENTITLEMENT}
    # A gateway's key is read in the same statement as the device: one SQL round trip per
    # call (console.api_auth, "keys checked by the view's own statement"). Console users
    # keep the usual session path.
    key_checked_methods = frozenset({"POST"})
    # Gateways speak JSON only: no browsable renderer, no Accept header parsing per call.
    renderer_classes = [JSONRenderer]
    parser_classes = [JSONParser]
    content_negotiation_class = JsonOnly

    @extend_schema(
        operation_id="devices_entitlement",
        summary=gettext_lazy("May this device push these streams now?"),
        description=gettext_lazy(
            "R6: VALID when every requested camera is granted; DEGRADED when only the subset "
            "that fits the valid licenses is (higher priority first, then lower id); "
            "NO_VALID_LICENSE when nothing is. Disabled cameras are denied. A grant marks the "
            "device's valid licenses as served (R10). Any key role may ask."
        ),
        request=EntitlementInput,
        responses={200: EntitlementOutput, **error_responses(400, 404, 411, 413)},
        examples=[
            OpenApiExample(
                "Some cameras",
                request_only=True,
                value={"cameras": [11, 12, 13]},
            ),
            OpenApiExample("All enabled cameras", request_only=True, value={}),
            OpenApiExample(
                "Degraded",
                response_only=True,
                status_codes=["200"],
                value={
                    "code": "DEGRADED",
                    "licenses_valid": 1,
                    "licenses_required": 2,
                    "granted_cameras": [11],
                    "denied_cameras": [12, 13],
                    "valid_until": "2027-03-16T00:00:00+08:00",
                },
            ),
            OpenApiExample(
                "No valid license",
                response_only=True,
                status_codes=["200"],
                value={
                    "code": "NO_VALID_LICENSE",
                    "licenses_valid": 0,
                    "licenses_required": 2,
                    "granted_cameras": [],
                    "denied_cameras": [11, 12, 13],
                    "valid_until": None,
                },
            ),
        ],
    )
    def post(self, request, id: int):
        in_range = 1 <= id <= MAX_ID
        at = timezone.now()
        tz = timezone.get_current_timezone()
        pending = request.user
        # A small body is read before the statement and judged after the key (a bad key is
        # a 401 whatever the body): reading it while the process's caches are still warm
        # costs less than after the wait for the database (bench/RESULTS.md). A larger one
        # is read only once the key has passed, as before: no parsing for unknown callers.
        length = _content_length(request)
        early = length is not None and length <= _EARLY_BODY_BYTES
        if early:
            camera_ids, bad_body = _read_cameras(request, length)
        if type(pending) is PendingApiKey:
            # The key first: whatever the id or the body, a bad key is a 401 (as on every
            # other endpoint); an id out of range reads no device.
            key, inputs = selectors.device_entitlement_inputs_for_key(
                digest=pending.digest,
                stale_before=key_stale_before(at),
                device_id=id if in_range else 0,
                at=at,
            )
            key_checked(request, self, key, now=at)
        else:
            inputs = None  # a console session: entitlement_decide reads the device
        if not in_range:
            raise exceptions.NotFound()
        if not early:
            camera_ids, bad_body = _read_cameras(request, length)
        if bad_body is not None:
            raise bad_body  # a bad body is a 400 before a 404
        if inputs is None and type(pending) is PendingApiKey:
            raise exceptions.NotFound()  # not one of the key's tenant's devices
        result = services.entitlement_decide(
            tenant=request.tenant, device_id=id, camera_ids=camera_ids, at=at, inputs=inputs
        )
        # Built by hand rather than through EntitlementOutput: same fields, less per-call work.
        return _json_response(
            {
                "code": result.code,
                "licenses_valid": result.licenses_valid,
                "licenses_required": result.licenses_required,
                "granted_cameras": result.granted_cameras,
                "denied_cameras": result.denied_cameras,
                "valid_until": _to_iso(result.valid_until, tz) if result.valid_until else None,
            }
        )


# --- control sessions (R8) -----------------------------------------------------------------


class ControlSessionInput(serializers.Serializer):
    cockpit = IdField(help_text=gettext_lazy("One of the tenant's remote cockpits."))
    force = JsonBoolean(
        default=False,
        help_text=gettext_lazy("Admin keys only: end the holder's session and take over."),
    )


class ControlSessionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    device = serializers.IntegerField(source="device_id")
    cockpit = serializers.IntegerField(source="cockpit_id")
    lease_expires_at = serializers.DateTimeField()
    lease_seconds = serializers.SerializerMethodField()

    def get_lease_seconds(self, session) -> int:
        return lease_seconds()


class ControlHeldOutput(ErrorOutput):
    holder = serializers.IntegerField(help_text=gettext_lazy("The controlling cockpit's id."))
    lease_expires_at = serializers.DateTimeField()


_SESSION_EXAMPLE = {
    "id": 42,
    "device": 7,
    "cockpit": 3,
    "lease_expires_at": "2026-03-15T10:00:30+08:00",
    "lease_seconds": 30,
}
_NO_LICENSE = OpenApiResponse(
    ErrorOutput,
    gettext_lazy(
        "NO_VALID_LICENSE (the device has none), FORBIDDEN (role; `force` needs an "
        "admin key) or TENANT_SUSPENDED."
    ),
)


class ControlSessionAcquireApi(APIView):
    required_roles = {"POST": CONTROL}

    @extend_schema(
        operation_id="devices_control_session",
        summary=gettext_lazy("Take control of the device for a cockpit."),
        description=gettext_lazy(
            "R8: one cockpit controls a device at a time, under a lease kept alive by "
            "heartbeats. 201 with a new session; 200 with the same cockpit's live session, its "
            "lease extended. 409 CONTROL_HELD while another cockpit holds a live lease, unless "
            "`force` (admin key only). 403 NO_VALID_LICENSE when the device has no valid "
            "license. Marks the device's valid licenses as served (R10)."
        ),
        request=ControlSessionInput,
        responses={
            200: ControlSessionOutput,
            201: ControlSessionOutput,
            **error_responses(
                400,
                403,
                404,
                409,
                e403=_NO_LICENSE,
                e409=OpenApiResponse(
                    ControlHeldOutput, gettext_lazy("CONTROL_HELD by another cockpit.")
                ),
            ),
        },
        examples=[
            OpenApiExample("Take control", request_only=True, value={"cockpit": 3}),
            OpenApiExample(
                "Take over (admin key)", request_only=True, value={"cockpit": 3, "force": True}
            ),
            OpenApiExample(
                "Granted", response_only=True, status_codes=["200", "201"], value=_SESSION_EXAMPLE
            ),
            OpenApiExample(
                "Held by another cockpit",
                response_only=True,
                status_codes=["409"],
                value={
                    "code": "CONTROL_HELD",
                    "detail": "Another cockpit controls this device.",
                    "errors": {},
                    "holder": 4,
                    "lease_expires_at": "2026-03-15T10:00:21+08:00",
                },
            ),
            OpenApiExample(
                "No valid license",
                response_only=True,
                status_codes=["403"],
                value={
                    "code": "NO_VALID_LICENSE",
                    "detail": "This device has no valid license, so it cannot be controlled.",
                    "errors": {},
                },
            ),
        ],
    )
    def post(self, request, id: int):
        device = get_or_404(FieldDevice.objects.filter(tenant=request.tenant), id)
        data = validated(ControlSessionInput, request.data)
        if data["force"] and request.principal.role != ADMIN:
            raise exceptions.PermissionDenied(_("Only an admin key may force a takeover."))
        session, created = services.control_acquire(
            tenant=request.tenant,
            device=device,
            cockpit_id=data["cockpit"],
            force=data["force"],
            actor=request.principal.actor,
        )
        return Response(
            ControlSessionOutput(session).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class ControlSessionHeartbeatApi(APIView):
    required_roles = {"POST": CONTROL}

    @extend_schema(
        operation_id="control_sessions_heartbeat",
        summary=gettext_lazy("Keep a control lease alive."),
        description=gettext_lazy(
            "R8: extends the lease by the lease length from now. 410 SESSION_ENDED once the "
            "session ended or its lease lapsed; 403 NO_VALID_LICENSE, and the session ends, "
            "when the device has lost its last valid license."
        ),
        request=None,
        responses={
            200: ControlSessionOutput,
            **error_responses(
                403,
                404,
                410,
                e403=_NO_LICENSE,
                e410=OpenApiResponse(ErrorOutput, gettext_lazy("SESSION_ENDED.")),
            ),
        },
        examples=[
            OpenApiExample(
                "Lease extended", response_only=True, status_codes=["200"], value=_SESSION_EXAMPLE
            ),
            OpenApiExample(
                "Session ended",
                response_only=True,
                status_codes=["410"],
                value={
                    "code": "SESSION_ENDED",
                    "detail": "This control session has ended.",
                    "errors": {},
                },
            ),
        ],
    )
    def post(self, request, id: int):
        if not 1 <= id <= MAX_ID:
            raise exceptions.NotFound()
        session = services.control_heartbeat(tenant=request.tenant, session_id=id)
        return Response(ControlSessionOutput(session).data)


class ControlSessionApi(APIView):
    required_roles = {"DELETE": CONTROL}

    @extend_schema(
        operation_id="control_sessions_destroy",
        summary=gettext_lazy("Release control."),
        description=gettext_lazy("Ends the session; releasing an ended session is a no-op."),
        responses={
            204: OpenApiResponse(description=gettext_lazy("Released.")),
            **error_responses(404),
        },
    )
    def delete(self, request, id: int):
        if not 1 <= id <= MAX_ID:
            raise exceptions.NotFound()
        services.control_release(
            tenant=request.tenant, session_id=id, actor=request.principal.actor
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
