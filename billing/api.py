"""Billing API: quote, orders (with Idempotency-Key) and refund requests (CONTRACT.md).

One view per endpoint with small Input/Output serializers; the rules live in
billing.services and billing.selectors.
"""

from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from billing import selectors, services
from billing.models import MONEY_PLACES, Order, RefundRequest
from billing.services.idempotency import MAX_IDEMPOTENCY_KEY_LENGTH
from console.api import (
    MAX_ID,
    ApiPagination,
    ErrorOutput,
    IdField,
    JsonInteger,
    JsonString,
    error_responses,
    paginated,
    validated,
)
from console.api_auth import MANAGE, READ
from console.limits import MAX_CAMERAS_PER_DEVICE, MAX_PIXELS, MAX_SIDE
from licensing.rules import MAX_YEARS


def _money():
    # Output only: two decimals as a string ("7200.00"). No digit cap: a quote is not stored,
    # and quantizing it against one must never turn a large total into a 500.
    return serializers.DecimalField(
        max_digits=None, decimal_places=MONEY_PLACES, coerce_to_string=True, read_only=True
    )


# --- quote -----------------------------------------------------------------------------------


class CameraSizeInput(serializers.Serializer):
    """R1 limits: each side 1–7680, at most 7680 × 4320 pixels in all."""

    width = JsonInteger(min_value=1, max_value=MAX_SIDE)
    height = JsonInteger(min_value=1, max_value=MAX_SIDE)

    def validate(self, attrs):
        if attrs["width"] * attrs["height"] > MAX_PIXELS:
            raise serializers.ValidationError(
                {"width": _("A camera pushes at most 7680 × 4320 pixels in all.")}
            )
        return attrs


class QuoteApi(APIView):
    """R1 + R2: licenses needed for a set of cameras and their price for the calling tenant."""

    required_roles = {"POST": READ}

    class QuoteInput(serializers.Serializer):
        # A ListField (not many=True) so item errors read "cameras.0.width" and list errors
        # "cameras".
        cameras = serializers.ListField(
            child=CameraSizeInput(),
            allow_empty=False,
            max_length=MAX_CAMERAS_PER_DEVICE,
            error_messages={
                "empty": _("Give at least one camera."),
                "max_length": _("A device has at most 8 cameras."),
            },
        )
        max_concurrent_streams = JsonInteger(
            min_value=1, max_value=MAX_CAMERAS_PER_DEVICE, allow_null=True, required=False
        )
        years = JsonInteger(min_value=1, max_value=MAX_YEARS, default=1)

    class QuoteOutput(serializers.Serializer):
        aggregate_pixels = serializers.IntegerField()
        standard_pixels = serializers.IntegerField()
        ratio = serializers.CharField()
        licenses = serializers.IntegerField()
        unit_price = _money()
        years = serializers.IntegerField()
        total = _money()
        currency = serializers.CharField()

    @extend_schema(
        operation_id="quote",
        request=QuoteInput,
        responses={200: QuoteOutput, **error_responses(400)},
        tags=["billing"],
    )
    def post(self, request):
        data = validated(self.QuoteInput, request.data)
        quote = selectors.quote_compute(
            request.tenant,
            cameras=[(c["width"], c["height"]) for c in data["cameras"]],
            max_concurrent_streams=data.get("max_concurrent_streams"),
            years=data["years"],
        )
        return Response(self.QuoteOutput(quote).data)


# --- orders ----------------------------------------------------------------------------------


class OrderOutput(serializers.ModelSerializer):
    unit_price = _money()
    total = _money()
    licenses = serializers.SerializerMethodField()
    payment_reference = serializers.SerializerMethodField()
    refund_status = serializers.SerializerMethodField()
    receipt_url = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = [
            "id",
            "kind",
            "quantity",
            "years",
            "unit_price",
            "total",
            "currency",
            "status",
            "transfer_reference",
            "licenses",
            "created_at",
            "paid_at",
            "cancelled_at",
            "cancel_reason",
            "refunded_at",
            "payment_reference",
            "refund_status",
            "receipt_url",
        ]
        read_only_fields = fields

    def get_licenses(self, order) -> list[int]:
        """Renewal: the licenses it renews. New: the licenses it issued (once paid)."""
        return [link.license_id for link in order.order_licenses.all()]

    def get_payment_reference(self, order) -> str | None:
        payment = getattr(order, "payment", None) if order.paid_at else None
        return payment.reference if payment else None

    def get_refund_status(self, order) -> str | None:
        requests = list(order.refund_requests.all())
        return requests[0].status if requests else None

    def get_receipt_url(self, order) -> str | None:
        if order.status not in (Order.Status.PAID, Order.Status.REFUNDED):
            return None
        return settings.SITE_URL + reverse("billing:order-receipt", args=[order.pk])


IDEMPOTENCY_HEADER = OpenApiParameter(
    "Idempotency-Key",
    # What billing.services.idempotency accepts: 1–255 characters, not only spaces.
    {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY_LENGTH, "pattern": r"\S"},
    OpenApiParameter.HEADER,
    required=True,
    description=str(
        _(
            "Required. Scoped to the tenant, kept at least 24 hours: the same key with the same "
            "body returns the first order (200); with another body → 409."
        )
    ),
)


class OrderInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Order.Kind.choices)
    quantity = JsonInteger(
        min_value=1,
        max_value=services.MAX_QUANTITY,
        required=False,
        help_text=_("new: the number of licenses. renewal: optional, the number of licenses."),
    )
    licenses = serializers.ListField(
        child=IdField(),
        required=False,
        allow_empty=False,
        max_length=services.MAX_RENEWAL_LICENSES,
        help_text=_("renewal only: the ids of the licenses to renew, each once."),
    )
    years = JsonInteger(min_value=1, max_value=MAX_YEARS)

    def validate(self, attrs):
        if attrs["kind"] == Order.Kind.NEW:
            if "quantity" not in attrs:
                raise serializers.ValidationError(
                    {"quantity": _("A new-licenses order needs a quantity.")}
                )
            if "licenses" in attrs:
                raise serializers.ValidationError({"licenses": _("Only a renewal names licenses.")})
        elif "licenses" not in attrs:
            raise serializers.ValidationError(
                {"licenses": _("A renewal names the licenses to renew.")}
            )
        return attrs


class OrderFilter(serializers.Serializer):
    status = serializers.ChoiceField(choices=Order.Status.choices, required=False)
    kind = serializers.ChoiceField(choices=Order.Kind.choices, required=False)


_ORDER_CONFLICT = OpenApiResponse(
    ErrorOutput,
    _(
        "IDEMPOTENCY_KEY_REUSED (the key was used with another body; `order` is the first "
        "order's id), LICENSE_EXPIRED or LICENSE_REFUNDED (a renewal names such licenses)."
    ),
)
_ORDER_BAD_INPUT = OpenApiResponse(
    ErrorOutput,
    _("INVALID with field errors, IDEMPOTENCY_KEY_REQUIRED or IDEMPOTENCY_KEY_INVALID."),
)


class OrderListCreateApi(APIView):
    """GET the tenant's orders; POST places one (admin key; Idempotency-Key required)."""

    required_roles = {"GET": READ, "POST": MANAGE}
    pagination_class = ApiPagination

    @extend_schema(
        operation_id="orders_list",
        parameters=[OrderFilter],
        responses={200: OrderOutput(many=True), **error_responses(400, 404)},
        tags=["billing"],
    )
    def get(self, request):
        filters = validated(OrderFilter, request.query_params)
        return paginated(
            request, self, selectors.order_list(request.tenant, **filters), OrderOutput
        )

    @extend_schema(
        operation_id="orders_create",
        description=_(
            "R2: an order pending payment at the tenant's contract price. Payment is "
            "confirmed by staff (bank transfer); new licenses are valid from that moment (R3), "
            "renewals extend from the current last service date (R4)."
        ),
        parameters=[IDEMPOTENCY_HEADER],
        request=OrderInput,
        responses={
            201: OrderOutput,
            200: OpenApiResponse(OrderOutput, _("The same key and body again: the first order.")),
            **error_responses(400, 409, e400=_ORDER_BAD_INPUT, e409=_ORDER_CONFLICT),
        },
        tags=["billing"],
    )
    def post(self, request):
        principal = request.principal
        body = request.data

        def create() -> Order:
            values = validated(OrderInput, body)
            return services.order_create(
                tenant=request.tenant,
                kind=values["kind"],
                years=values["years"],
                quantity=values.get("quantity"),
                license_ids=values.get("licenses"),
                actor=principal.actor,
            )

        order, created = services.order_create_idempotent(
            tenant=request.tenant,
            idempotency_key=request.headers.get("Idempotency-Key"),
            body=body,
            create=create,
            actor=principal.actor,
        )
        return Response(
            OrderOutput(selectors.order_get(request.tenant, order.pk)).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


def _order_or_404(request, pk: int) -> Order:
    order = selectors.order_get(request.tenant, pk) if 1 <= pk <= MAX_ID else None
    if order is None:
        raise exceptions.NotFound()
    return order


class OrderDetailApi(APIView):
    required_roles = {"GET": READ}

    @extend_schema(
        operation_id="orders_retrieve",
        responses={200: OrderOutput, **error_responses(404)},
        tags=["billing"],
    )
    def get(self, request, id: int):
        return Response(OrderOutput(_order_or_404(request, id)).data)


class RefundRequestInput(serializers.Serializer):
    reason = JsonString(max_length=2000, required=False, allow_blank=True)


class RefundRequestOutput(serializers.ModelSerializer):
    amount = _money()

    class Meta:
        model = RefundRequest
        fields = ["id", "order", "status", "reason", "amount", "requested_at"]
        read_only_fields = fields


_REFUND_CONFLICT = OpenApiResponse(
    ErrorOutput,
    _(
        "REFUND_NOT_ALLOWED (R10: not paid, has provided service, or the renewed period "
        "began) or REFUND_ALREADY_REQUESTED."
    ),
)


class OrderRefundRequestApi(APIView):
    """R10: ask for an order's money back (admin key). Staff decide in the admin."""

    required_roles = {"POST": MANAGE}

    @extend_schema(
        operation_id="orders_refund_request",
        description=_(
            "R10: a new-licenses order is refundable, whole, while none of its licenses has "
            "served; a renewal only before its renewed period begins. Staff approve or reject."
        ),
        request=RefundRequestInput,
        responses={
            201: RefundRequestOutput,
            **error_responses(400, 404, 409, e409=_REFUND_CONFLICT),
        },
        tags=["billing"],
    )
    def post(self, request, id: int):
        order = _order_or_404(request, id)
        data = validated(RefundRequestInput, request.data)
        refund = services.order_refund_request(
            tenant=request.tenant,
            order=order,
            reason=data.get("reason", ""),
            actor=request.principal.actor,
        )
        return Response(RefundRequestOutput(refund).data, status=status.HTTP_201_CREATED)
