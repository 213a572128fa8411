"""API v1: webhook endpoints and their deliveries (CONTRACT.md, "Webhooks (R15)").

Admin keys only, for reads too: an endpoint's URL and deliveries tell where a tenant's
systems live. The rules (URL safety, event types, the limit of 20) are console.webhooks'.
"""

from django.utils.translation import gettext_lazy
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from console import webhooks
from console.api import (
    MAX_ID,
    ApiPagination,
    JsonBoolean,
    JsonString,
    error_responses,
    get_or_404,
    paginated,
    validated,
)
from console.api_auth import MANAGE
from console.models import WebhookDelivery, WebhookEndpoint

ADMIN_ONLY = {"*": MANAGE}

_EVENTS_HELP = gettext_lazy(
    'Event types to receive, or ["*"] for all: license.expiring, license.expired, '
    "license.bound, license.unbound, device.service_changed, control.started, control.ended, "
    "order.paid, order.refunded, ping."
)


class EndpointInput(serializers.Serializer):
    url = JsonString(
        max_length=webhooks.MAX_URL_LENGTH,
        trim_whitespace=False,
        help_text=gettext_lazy(
            "https:// (http:// only when WEBHOOK_ALLOW_HTTP); no credentials; at most 2000 "
            "characters; not on a private, loopback or link-local network "
            "(WEBHOOK_URL_FORBIDDEN) unless WEBHOOK_ALLOW_PRIVATE."
        ),
    )
    events = serializers.ListField(
        child=JsonString(max_length=64),
        max_length=len(webhooks.EVENT_TYPES) + 1,
        help_text=_EVENTS_HELP,
    )
    enabled = JsonBoolean(required=False)


class EndpointOutput(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField())
    enabled = serializers.BooleanField()
    secret = serializers.CharField(
        help_text=gettext_lazy("whsec_…: in full only in the answer that made it; masked after.")
    )
    created_at = serializers.DateTimeField()
    disabled_at = serializers.DateTimeField(allow_null=True)
    failing_since = serializers.DateTimeField(allow_null=True)


def _endpoint_out(endpoint: WebhookEndpoint, secret: str | None = None) -> dict:
    endpoint.secret = secret or webhooks.secret_masked(endpoint)
    return EndpointOutput(endpoint).data


class DeliveryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    event_id = serializers.CharField(source="event.msg_id", help_text="webhook-id")
    type = serializers.CharField(source="event.type")
    status = serializers.ChoiceField(choices=WebhookDelivery.Status.choices)
    attempts = serializers.IntegerField()
    response_status = serializers.IntegerField(allow_null=True)
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    last_attempt_at = serializers.DateTimeField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True)
    response_body = serializers.CharField(help_text=gettext_lazy("The first 1 kB."))
    last_error = serializers.CharField()
    created_at = serializers.DateTimeField()


def _endpoint_or_404(request, id: int) -> WebhookEndpoint:
    return get_or_404(webhooks.webhook_endpoints(request.tenant), id)


class EndpointListApi(APIView):
    required_roles = ADMIN_ONLY
    pagination_class = ApiPagination

    @extend_schema(
        operation_id="webhook_endpoints_list",
        responses={200: EndpointOutput(many=True), **error_responses(400, 404)},
    )
    def get(self, request):
        return paginated(
            request,
            self,
            webhooks.webhook_endpoints(request.tenant),
            EndpointOutput,
            prepare=lambda rows: [setattr(r, "secret", webhooks.secret_masked(r)) for r in rows],
        )

    @extend_schema(
        operation_id="webhook_endpoints_create",
        description=gettext_lazy(
            "R15: a new endpoint; the answer carries its signing secret in full, the only time."
        ),
        request=EndpointInput,
        responses={201: EndpointOutput, **error_responses(400)},
    )
    def post(self, request):
        data = validated(EndpointInput, request.data)
        endpoint, secret = webhooks.webhook_endpoint_create(
            tenant=request.tenant, actor=request.principal.actor, **data
        )
        return Response(_endpoint_out(endpoint, secret), status=status.HTTP_201_CREATED)


class EndpointDetailApi(APIView):
    required_roles = ADMIN_ONLY

    @extend_schema(
        operation_id="webhook_endpoints_retrieve",
        responses={200: EndpointOutput, **error_responses(404)},
    )
    def get(self, request, id: int):
        return Response(_endpoint_out(_endpoint_or_404(request, id)))

    @extend_schema(
        operation_id="webhook_endpoints_partial_update",
        description=gettext_lazy("Enabling a disabled endpoint sends its pending deliveries."),
        request=EndpointInput,
        responses={200: EndpointOutput, **error_responses(400, 404)},
    )
    def patch(self, request, id: int):
        endpoint = _endpoint_or_404(request, id)
        data = validated(EndpointInput, request.data, partial=True)
        endpoint = webhooks.webhook_endpoint_update(
            tenant=request.tenant, endpoint=endpoint, actor=request.principal.actor, **data
        )
        return Response(_endpoint_out(endpoint))

    @extend_schema(
        operation_id="webhook_endpoints_destroy",
        responses={
            204: OpenApiResponse(description=gettext_lazy("Deleted.")),
            **error_responses(404),
        },
    )
    def delete(self, request, id: int):
        endpoint = _endpoint_or_404(request, id)
        webhooks.webhook_endpoint_delete(
            tenant=request.tenant, endpoint=endpoint, actor=request.principal.actor
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class EndpointRotateSecretApi(APIView):
    required_roles = ADMIN_ONLY

    @extend_schema(
        operation_id="webhook_endpoints_rotate_secret",
        description=gettext_lazy(
            "R15: a new signing secret, in full in this answer only. For 24 hours deliveries "
            "carry a signature with the old secret too."
        ),
        request=None,
        responses={200: EndpointOutput, **error_responses(404)},
    )
    def post(self, request, id: int):
        endpoint = _endpoint_or_404(request, id)
        endpoint, secret = webhooks.webhook_endpoint_rotate_secret(
            tenant=request.tenant, endpoint=endpoint, actor=request.principal.actor
        )
        return Response(_endpoint_out(endpoint, secret))


class EndpointPingApi(APIView):
    required_roles = ADMIN_ONLY

    @extend_schema(
        operation_id="webhook_endpoints_ping",
        description=gettext_lazy("R15: send a `ping` event to this endpoint."),
        request=None,
        responses={202: DeliveryOutput, **error_responses(404)},
    )
    def post(self, request, id: int):
        endpoint = _endpoint_or_404(request, id)
        delivery = webhooks.webhook_endpoint_ping(
            tenant=request.tenant, endpoint=endpoint, actor=request.principal.actor
        )
        delivery.refresh_from_db()
        return Response(DeliveryOutput(delivery).data, status=status.HTTP_202_ACCEPTED)


class DeliveryListApi(APIView):
    required_roles = ADMIN_ONLY
    pagination_class = ApiPagination

    @extend_schema(
        operation_id="webhook_deliveries_list",
        description=gettext_lazy("The endpoint's deliveries, newest first."),
        responses={200: DeliveryOutput(many=True), **error_responses(400, 404)},
    )
    def get(self, request, id: int):
        endpoint = _endpoint_or_404(request, id)
        deliveries = webhooks.webhook_deliveries(request.tenant, endpoint)
        return paginated(request, self, deliveries, DeliveryOutput)


class DeliveryRetryApi(APIView):
    required_roles = ADMIN_ONLY

    @extend_schema(
        operation_id="webhook_deliveries_retry",
        description=gettext_lazy("R15: attempt this delivery again now, with the same webhook-id."),
        request=None,
        responses={202: DeliveryOutput, **error_responses(404)},
    )
    def post(self, request, id: int, delivery_id: int):
        endpoint = _endpoint_or_404(request, id)
        if not 1 <= delivery_id <= MAX_ID:
            raise exceptions.NotFound()
        delivery = get_or_404(webhooks.webhook_deliveries(request.tenant, endpoint), delivery_id)
        delivery = webhooks.webhook_delivery_retry(
            tenant=request.tenant, delivery=delivery, actor=request.principal.actor
        )
        return Response(DeliveryOutput(delivery).data, status=status.HTTP_202_ACCEPTED)
