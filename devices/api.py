"""API v1: field devices, cameras and remote cockpits (CONTRACT.md, "Devices and cameras").

A device's read adds its licensing from licensing's selectors (R1, R6): the API is the top
layer and may read any app's selectors; devices' models and services know nothing of it.
"""

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from console.api import (
    ApiPagination,
    IdField,
    JsonBoolean,
    JsonInteger,
    JsonRegex,
    JsonString,
    QueryIdField,
    error_responses,
    get_or_404,
    order_by,
    ordering_field,
    paginated,
    validated,
)
from console.api_auth import MANAGE, READ
from devices import services
from devices.models import (
    MAX_CAMERAS_PER_DEVICE,
    MAX_SIDE,
    PRIORITY_MAX,
    PRIORITY_MIN,
    SERIAL_REGEX,
    Camera,
    FieldDevice,
)
from devices.models import RemoteCockpit as Cockpit
from licensing.selectors import device_licensing, devices_with_license_counts
from licensing.services import device_delete_unbinding
from licensing.webhook_events import device_service_watched

DEVICE_STATUSES = [
    ("licensed", gettext_lazy("Licensed")),
    ("under_licensed", gettext_lazy("Under-licensed")),
    ("unlicensed", gettext_lazy("Unlicensed")),
]

WRITE_ROLES = {"GET": READ, "POST": MANAGE, "PATCH": MANAGE, "DELETE": MANAGE}


def _deleted() -> dict:
    return {204: OpenApiResponse(description=gettext_lazy("Deleted."))}


# --- devices ---------------------------------------------------------------------------------


class DeviceInput(serializers.Serializer):
    serial = JsonRegex(
        SERIAL_REGEX,
        max_length=18,
        trim_whitespace=False,
        help_text=gettext_lazy("Unique in the tenant: 1–18 lowercase letters, digits or _."),
        error_messages={
            "invalid": gettext_lazy(
                "Use 1–18 characters: lowercase letters, digits and underscores."
            )
        },
    )
    name = JsonString(max_length=200, required=False, allow_blank=True)
    max_concurrent_streams = JsonInteger(
        min_value=1,
        max_value=MAX_CAMERAS_PER_DEVICE,
        required=False,
        allow_null=True,
        help_text=gettext_lazy("R1: only the k largest streams count; empty: all."),
    )


class DeviceOutput(serializers.Serializer):
    id = serializers.IntegerField()
    serial = serializers.CharField()
    name = serializers.CharField()
    max_concurrent_streams = serializers.IntegerField(allow_null=True)
    aggregate_pixels = serializers.IntegerField(source="licensing.aggregate_pixels")
    licenses_required = serializers.IntegerField(source="licensing.licenses_required")
    licenses_valid = serializers.IntegerField(source="licensing.licenses_valid")
    status = serializers.ChoiceField(choices=DEVICE_STATUSES, source="licensing.status")


def _with_licensing(devices):
    # devices_with_license_counts annotated lic_valid and prefetched the cameras: no query
    # per device however long the page.
    for device in devices:
        device.licensing = device_licensing(device, licenses_valid=device.lic_valid)
    return devices


def _device_out(tenant, pk: int) -> dict:
    device = get_or_404(devices_with_license_counts(tenant), pk)
    return DeviceOutput(_with_licensing([device])[0]).data


class DeviceFilter(serializers.Serializer):
    ordering = ordering_field(["serial", "name", "id", "created_at"], "serial")


class DeviceListApi(APIView):
    required_roles = WRITE_ROLES
    pagination_class = ApiPagination

    @extend_schema(
        operation_id="devices_list",
        parameters=[DeviceFilter],
        responses={200: DeviceOutput(many=True), **error_responses(400, 404)},
    )
    def get(self, request):
        filters = validated(DeviceFilter, request.query_params)
        devices = order_by(
            devices_with_license_counts(request.tenant), filters.get("ordering"), "serial"
        )
        return paginated(request, self, devices, DeviceOutput, prepare=_with_licensing)

    @extend_schema(
        operation_id="devices_create",
        request=DeviceInput,
        responses={201: DeviceOutput, **error_responses(400)},
    )
    def post(self, request):
        data = validated(DeviceInput, request.data)
        device = services.device_create(
            tenant=request.tenant, actor=request.principal.actor, **data
        )
        return Response(_device_out(request.tenant, device.pk), status=status.HTTP_201_CREATED)


class DeviceDetailApi(APIView):
    required_roles = WRITE_ROLES

    @extend_schema(
        operation_id="devices_retrieve", responses={200: DeviceOutput, **error_responses(404)}
    )
    def get(self, request, id: int):
        return Response(_device_out(request.tenant, id))

    @extend_schema(
        operation_id="devices_partial_update",
        request=DeviceInput,
        responses={200: DeviceOutput, **error_responses(400, 404)},
    )
    def patch(self, request, id: int):
        device = get_or_404(FieldDevice.objects.filter(tenant=request.tenant), id)
        data = validated(DeviceInput, request.data, partial=True)
        services.device_update(
            tenant=request.tenant, device=device, actor=request.principal.actor, **data
        )
        return Response(_device_out(request.tenant, device.pk))

    @extend_schema(
        operation_id="devices_destroy",
        description=gettext_lazy(
            "Deletes the device, its cameras and sessions; its licenses "
            "are unbound (R7) and can be bound to another device."
        ),
        responses={**_deleted(), **error_responses(404)},
    )
    def delete(self, request, id: int):
        device = get_or_404(FieldDevice.objects.filter(tenant=request.tenant), id)
        device_delete_unbinding(tenant=request.tenant, device=device, actor=request.principal.actor)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- cameras ---------------------------------------------------------------------------------


class CameraInput(serializers.Serializer):
    device = IdField(help_text=gettext_lazy("One of the tenant's devices; set once."))
    name = JsonString(max_length=100, required=False, allow_blank=True)
    width = JsonInteger(min_value=1, max_value=MAX_SIDE)
    height = JsonInteger(
        min_value=1,
        max_value=MAX_SIDE,
        help_text=gettext_lazy("R1: each side at most 7680 and width × height ≤ 7680 × 4320."),
    )
    enabled = JsonBoolean(required=False)
    priority = JsonInteger(
        min_value=PRIORITY_MIN,
        max_value=PRIORITY_MAX,
        required=False,
        help_text=gettext_lazy("R6: higher is kept first when service is degraded."),
    )


class CameraOutput(serializers.Serializer):
    id = serializers.IntegerField()
    device = serializers.IntegerField(source="device_id")
    name = serializers.CharField()
    width = serializers.IntegerField()
    height = serializers.IntegerField()
    enabled = serializers.BooleanField()
    priority = serializers.IntegerField()


class CameraFilter(serializers.Serializer):
    device = QueryIdField(required=False, help_text=gettext_lazy("Only this device's cameras."))
    ordering = ordering_field(["id", "device", "priority", "name"], "id")


def _cameras(tenant):
    return Camera.objects.filter(device__tenant=tenant)


def _no_such_device():
    return exceptions.ValidationError({"device": [_("No such device in this tenant.")]})


class CameraListApi(APIView):
    required_roles = WRITE_ROLES
    pagination_class = ApiPagination

    @extend_schema(
        operation_id="cameras_list",
        parameters=[CameraFilter],
        responses={200: CameraOutput(many=True), **error_responses(400, 404)},
    )
    def get(self, request):
        filters = validated(CameraFilter, request.query_params)
        cameras = _cameras(request.tenant)
        if "device" in filters:
            cameras = cameras.filter(device_id=filters["device"])
        return paginated(
            request, self, order_by(cameras, filters.get("ordering"), "id"), CameraOutput
        )

    @extend_schema(
        operation_id="cameras_create",
        request=CameraInput,
        responses={201: CameraOutput, **error_responses(400)},
    )
    def post(self, request):
        data = validated(CameraInput, request.data)
        device = FieldDevice.objects.filter(tenant=request.tenant, pk=data.pop("device")).first()
        if device is None:
            raise _no_such_device()
        with device_service_watched(tenant_id=request.tenant.pk, device_id=device.pk):
            camera = services.camera_create(
                tenant=request.tenant, device=device, actor=request.principal.actor, **data
            )
        return Response(CameraOutput(camera).data, status=status.HTTP_201_CREATED)


class CameraDetailApi(APIView):
    required_roles = WRITE_ROLES

    @extend_schema(
        operation_id="cameras_retrieve", responses={200: CameraOutput, **error_responses(404)}
    )
    def get(self, request, id: int):
        return Response(CameraOutput(get_or_404(_cameras(request.tenant), id)).data)

    @extend_schema(
        operation_id="cameras_partial_update",
        description=gettext_lazy(
            "A camera stays on its device: `device`, if given, must be the camera's own."
        ),
        request=CameraInput,
        responses={200: CameraOutput, **error_responses(400, 404)},
    )
    def patch(self, request, id: int):
        camera = get_or_404(_cameras(request.tenant), id)
        data = validated(CameraInput, request.data, partial=True)
        # Moving a camera would change two devices' licensing at once; it is deleted and
        # re-created instead, so `device` is write-once.
        if data.pop("device", camera.device_id) != camera.device_id:
            raise exceptions.ValidationError(
                {"device": [_("A camera cannot be moved to another device.")]}
            )
        with device_service_watched(tenant_id=request.tenant.pk, device_id=camera.device_id):
            camera = services.camera_update(
                tenant=request.tenant, camera=camera, actor=request.principal.actor, **data
            )
        return Response(CameraOutput(camera).data)

    @extend_schema(operation_id="cameras_destroy", responses={**_deleted(), **error_responses(404)})
    def delete(self, request, id: int):
        camera = get_or_404(_cameras(request.tenant), id)
        with device_service_watched(tenant_id=request.tenant.pk, device_id=camera.device_id):
            services.camera_delete(
                tenant=request.tenant, camera=camera, actor=request.principal.actor
            )
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- cockpits --------------------------------------------------------------------------------


class CockpitInput(serializers.Serializer):
    name = JsonString(max_length=200)


class CockpitOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class CockpitFilter(serializers.Serializer):
    ordering = ordering_field(["name", "id"], "name")


class CockpitListApi(APIView):
    required_roles = WRITE_ROLES
    pagination_class = ApiPagination

    @extend_schema(
        operation_id="cockpits_list",
        parameters=[CockpitFilter],
        responses={200: CockpitOutput(many=True), **error_responses(400, 404)},
    )
    def get(self, request):
        filters = validated(CockpitFilter, request.query_params)
        cockpits = Cockpit.objects.filter(tenant=request.tenant)
        return paginated(
            request, self, order_by(cockpits, filters.get("ordering"), "name"), CockpitOutput
        )

    @extend_schema(
        operation_id="cockpits_create",
        request=CockpitInput,
        responses={201: CockpitOutput, **error_responses(400)},
    )
    def post(self, request):
        data = validated(CockpitInput, request.data)
        cockpit = services.cockpit_create(
            tenant=request.tenant, actor=request.principal.actor, **data
        )
        return Response(CockpitOutput(cockpit).data, status=status.HTTP_201_CREATED)


class CockpitDetailApi(APIView):
    required_roles = WRITE_ROLES

    @extend_schema(
        operation_id="cockpits_retrieve", responses={200: CockpitOutput, **error_responses(404)}
    )
    def get(self, request, id: int):
        cockpit = get_or_404(Cockpit.objects.filter(tenant=request.tenant), id)
        return Response(CockpitOutput(cockpit).data)

    @extend_schema(
        operation_id="cockpits_partial_update",
        request=CockpitInput,
        responses={200: CockpitOutput, **error_responses(400, 404)},
    )
    def patch(self, request, id: int):
        cockpit = get_or_404(Cockpit.objects.filter(tenant=request.tenant), id)
        data = validated(CockpitInput, request.data, partial=True)
        cockpit = services.cockpit_update(
            tenant=request.tenant, cockpit=cockpit, actor=request.principal.actor, **data
        )
        return Response(CockpitOutput(cockpit).data)

    @extend_schema(
        operation_id="cockpits_destroy", responses={**_deleted(), **error_responses(404)}
    )
    def delete(self, request, id: int):
        cockpit = get_or_404(Cockpit.objects.filter(tenant=request.tenant), id)
        services.cockpit_delete(
            tenant=request.tenant, cockpit=cockpit, actor=request.principal.actor
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
