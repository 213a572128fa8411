"""API v1: licenses and binding (R5, R7), entitlement (R6, R10) and control sessions (R8).

The entitlement call is the product's hot path: gateways ask it every time a device starts
streaming. With a key, in steady state, it is one SQL statement (the key, its tenant, the
device, its cameras and license counts), the R1/R6 decision, and nothing else.
"""

from django.http import JsonResponse
from django.utils import timezone
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
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
)
from console.api_errors import LengthRequired
from devices.models import FieldDevice
from devices.services import lease_seconds
from licensing import rules, selectors, services, tokens
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
        help_text=gettext_lazy(
            "The device's camera ids to push. Omitted: the streams the device pushes at once, "
            "its enabled cameras by priority (higher first, equal priority lower id first), "
            "at most max_concurrent_streams of them."
        ),
    )


class EntitlementOutput(serializers.Serializer):
    code = serializers.ChoiceField(choices=["VALID", "DEGRADED", "NO_VALID_LICENSE"])
    licenses_valid = serializers.IntegerField()
    licenses_required = serializers.IntegerField()
    granted_cameras = serializers.ListField(child=serializers.IntegerField())
    denied_cameras = serializers.ListField(child=serializers.IntegerField())
    denied_reasons = serializers.DictField(
        child=serializers.ChoiceField(
            choices=[rules.DISABLED, rules.CONCURRENCY_LIMIT, rules.NOT_ENOUGH_LICENSES]
        ),
        help_text=gettext_lazy(
            "Why each denied camera is denied, by camera id (as a string): DISABLED, "
            "CONCURRENCY_LIMIT (over max_concurrent_streams) or NOT_ENOUGH_LICENSES."
        ),
    )
    valid_until = serializers.DateTimeField(
        allow_null=True,
        help_text=gettext_lazy("The earliest expiry among the valid licenses."),
    )


class JsonOnly(BaseContentNegotiation):
    """JSON in, JSON out, whatever the Accept header (DRF's documented custom negotiation):
    a gateway's call is never a 406."""

    def select_parser(self, request, parsers):
        # Another body type is still a 415, as everywhere else.
        parser = parsers[0]
        return parser if media_type_matches(parser.media_type, request.content_type) else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def _requested_cameras(request, device_id: int) -> list[int] | None:
    """The entitlement body's camera ids (None: what the device pushes), judged in the
    order every entitlement call answers: a chunked body, an impossible id, a bad body."""
    if "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        # Without a Content-Length the WSGI request reads nothing, and an empty body
        # would be taken for "no cameras named".
        raise LengthRequired()
    if not 1 <= device_id <= MAX_ID:
        raise exceptions.NotFound()
    data = request.data
    if type(data) is dict and not data:
        # `{}`, what most gateways send: nothing to validate, and a serializer pass would
        # be an eighth of the call.
        return None
    return validated(EntitlementInput, data).get("cameras")  # 400 before a 404


def _entitlement_answer(result: services.Entitlement) -> dict:
    """EntitlementOutput's fields, written out: a serializer pass cost an eighth of the
    call. JSONRenderer writes the local time as DateTimeField would (R12 display)."""
    until = result.valid_until
    return {
        "code": result.code,
        "licenses_valid": result.licenses_valid,
        "licenses_required": result.licenses_required,
        "granted_cameras": result.granted_cameras,
        "denied_cameras": result.denied_cameras,
        "denied_reasons": {str(k): v for k, v in result.denied_reasons.items()},
        "valid_until": timezone.localtime(until) if until else None,
    }


class EntitlementApi(APIView):
    required_roles = {"POST": ENTITLEMENT}
    # Gateways speak JSON only: no browsable renderer for them.
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JsonOnly

    @extend_schema(
        operation_id="devices_entitlement",
        summary=gettext_lazy("May this device push these streams now?"),
        description=gettext_lazy(
            "R6: VALID when every requested camera is granted; DEGRADED when only the subset "
            "that fits the valid licenses is (higher priority first, then lower id), possibly "
            "none; NO_VALID_LICENSE exactly when the device has no valid license. Disabled "
            "cameras are denied; every denied camera has its reason in denied_reasons. "
            "Omitted `cameras` (changed in this version: it used to mean every enabled "
            "camera) means the streams the device pushes at once: its enabled cameras by "
            "priority, at most max_concurrent_streams, so a device whose status is licensed "
            "always gets VALID. A gateway pushes exactly granted_cameras. A grant marks the "
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
            OpenApiExample("What the device pushes", request_only=True, value={}),
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
                    "denied_reasons": {"12": "NOT_ENOUGH_LICENSES", "13": "DISABLED"},
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
                    "denied_reasons": {
                        "11": "NOT_ENOUGH_LICENSES",
                        "12": "NOT_ENOUGH_LICENSES",
                        "13": "NOT_ENOUGH_LICENSES",
                    },
                    "valid_until": None,
                },
            ),
        ],
    )
    def post(self, request, id: int):
        result = services.entitlement_decide(
            tenant=request.tenant, device_id=id, camera_ids=_requested_cameras(request, id)
        )
        return Response(_entitlement_answer(result))


# --- offline entitlement tokens (R14) ----------------------------------------------------------


class EntitlementTokenOutput(serializers.Serializer):
    token = serializers.CharField(
        help_text=gettext_lazy(
            "A compact JWS (JWT) signed with EdDSA (Ed25519), header `kid`; claims iss, sub "
            "(device id), tenant (slug), serial, code, granted_cameras, licenses_valid, iat, "
            "exp, jti. Verify it with the keys at /.well-known/jwks.json."
        )
    )
    expires_at = serializers.DateTimeField(help_text=gettext_lazy("The token's `exp`."))
    entitlement = EntitlementOutput()


class EntitlementTokenApi(APIView):
    required_roles = {"POST": ENTITLEMENT}
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JsonOnly

    @extend_schema(
        operation_id="devices_entitlement_token",
        summary=gettext_lazy("A signed entitlement a gateway can keep using offline."),
        description=gettext_lazy(
            "R14: the entitlement call's decision (same body, same answer, same R10 mark), "
            "signed. A gateway may stream `granted_cameras` until `exp` without reaching the "
            "console: `exp` is the earlier of now + ENTITLEMENT_TOKEN_TTL (900 s by default) "
            "and the earliest expiry of the licenses that grant it. Suspension, unbinding and "
            "refunds take effect for a token at its `exp`. 403 NO_VALID_LICENSE, and no "
            "token, when the device has no valid license. Renew at half the remaining time."
        ),
        request=EntitlementInput,
        responses={
            200: EntitlementTokenOutput,
            **error_responses(
                400,
                403,
                404,
                411,
                413,
                e403=OpenApiResponse(
                    ErrorOutput,
                    gettext_lazy("NO_VALID_LICENSE (no token), FORBIDDEN or TENANT_SUSPENDED."),
                ),
            ),
        },
    )
    def post(self, request, id: int):
        issued = tokens.entitlement_token_issue(
            tenant=request.tenant, device_id=id, camera_ids=_requested_cameras(request, id)
        )
        return Response(
            {
                "token": issued.token,
                "expires_at": timezone.localtime(issued.expires_at),
                "entitlement": _entitlement_answer(issued.entitlement),
            }
        )


def jwks(request):
    """GET /.well-known/jwks.json: every key whose tokens may still be valid (R14), no
    authentication, cacheable for ENTITLEMENT_JWKS_MAX_AGE seconds."""
    if request.method not in ("GET", "HEAD"):
        return JsonResponse(
            {"code": "METHOD_NOT_ALLOWED", "detail": _("Use GET."), "errors": {}}, status=405
        )
    response = JsonResponse({"keys": [tokens.jwk(key) for key in tokens.published_keys()]})
    patch_cache_control(response, public=True, max_age=tokens.jwks_max_age())
    return response


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


class ControlSessionStartedOutput(ControlSessionOutput):
    token = serializers.CharField(
        help_text=gettext_lazy(
            "The cockpit's credential for this session, shown once (201 only): with an "
            "operator key, send it as X-Control-Token on heartbeats, on DELETE and when "
            "asking for the same session again."
        )
    )


def _control_token(request) -> str | None:
    return request.META.get("HTTP_X_CONTROL_TOKEN") or None


def _trusted(request) -> bool:
    """An admin key (or an owner/admin in the console) may act on any of its tenant's
    sessions; an operator key only on the session whose token it shows."""
    return request.principal.role == ADMIN


_CONTROL_TOKEN_PARAMETER = OpenApiParameter(
    "X-Control-Token",
    type=str,
    location=OpenApiParameter.HEADER,
    required=False,
    description=gettext_lazy(
        "The session's token from the 201 that started it. Required with an operator key "
        "(missing or wrong: 403 CONTROL_TOKEN_REQUIRED); an admin key may act without it."
    ),
)


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
            "heartbeats. 201 with a new session and its `token`, shown once; 200 with the same "
            "cockpit's live session, its lease extended — with an operator key only when it "
            "shows that session's X-Control-Token (otherwise the request is another "
            "cockpit's). 409 CONTROL_HELD while another cockpit holds a live lease, unless "
            "`force` (admin key only). 403 NO_VALID_LICENSE when the device has no valid "
            "license. Marks the device's valid licenses as served (R10)."
        ),
        parameters=[_CONTROL_TOKEN_PARAMETER],
        request=ControlSessionInput,
        responses={
            200: ControlSessionOutput,
            201: ControlSessionStartedOutput,
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
                "Started",
                response_only=True,
                status_codes=["201"],
                value={**_SESSION_EXAMPLE, "token": "q7Jd0S0v7Yp2o3c9bXbq4h7Zs0Qm1xXy8l2nP4k6rTA"},
            ),
            OpenApiExample(
                "Same cockpit again",
                response_only=True,
                status_codes=["200"],
                value=_SESSION_EXAMPLE,
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
            token=_control_token(request),
            trusted=_trusted(request),
            actor=request.principal.actor,
        )
        if created:
            return Response(
                ControlSessionStartedOutput(session).data, status=status.HTTP_201_CREATED
            )
        return Response(ControlSessionOutput(session).data)


class ControlSessionHeartbeatApi(APIView):
    required_roles = {"POST": CONTROL}

    @extend_schema(
        operation_id="control_sessions_heartbeat",
        summary=gettext_lazy("Keep a control lease alive."),
        description=gettext_lazy(
            "R8: extends the lease by the lease length from now. 410 SESSION_ENDED once the "
            "session ended or its lease lapsed; 403 NO_VALID_LICENSE, and the session ends, "
            "when the device has lost its last valid license; 403 CONTROL_TOKEN_REQUIRED "
            "when an operator key does not show the session's X-Control-Token."
        ),
        parameters=[_CONTROL_TOKEN_PARAMETER],
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
        lease = services.control_heartbeat(
            tenant=request.tenant,
            session_id=id,
            token=_control_token(request),
            trusted=_trusted(request),
        )
        # ControlSessionOutput's fields, written out: cockpits beat every few seconds, and a
        # serializer pass cost a tenth of the call.
        return Response(
            {
                "id": lease.id,
                "device": lease.device_id,
                "cockpit": lease.cockpit_id,
                "lease_expires_at": timezone.localtime(lease.lease_expires_at),
                "lease_seconds": lease_seconds(),
            }
        )


class ControlSessionApi(APIView):
    required_roles = {"DELETE": CONTROL}

    @extend_schema(
        operation_id="control_sessions_destroy",
        summary=gettext_lazy("Release control."),
        description=gettext_lazy(
            "Ends the session; releasing an ended session is a no-op. With an operator key, "
            "only with the session's X-Control-Token (else 403 CONTROL_TOKEN_REQUIRED)."
        ),
        parameters=[_CONTROL_TOKEN_PARAMETER],
        responses={
            204: OpenApiResponse(description=gettext_lazy("Released.")),
            **error_responses(403, 404),
        },
    )
    def delete(self, request, id: int):
        if not 1 <= id <= MAX_ID:
            raise exceptions.NotFound()
        services.control_release(
            tenant=request.tenant,
            session_id=id,
            token=_control_token(request),
            trusted=_trusted(request),
            actor=request.principal.actor,
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
