"""URLs of API v1, mounted at /api/v1/ (CONTRACT.md, "HTTP API"). Paths are public names:
keep them exactly, including where a trailing slash is and is not."""

from django.urls import path, re_path

from billing import api as billing_api
from console import api_webhooks as webhooks_api
from console.api_errors import api_not_found
from devices import api as devices_api
from licensing import api as licensing_api

urlpatterns = [
    path("devices/", devices_api.DeviceListApi.as_view(), name="api-devices"),
    path("devices/<int:id>/", devices_api.DeviceDetailApi.as_view(), name="api-device"),
    path(
        "devices/<int:id>/bind-licenses",
        licensing_api.DeviceBindLicensesApi.as_view(),
        name="api-device-bind-licenses",
    ),
    path(
        "devices/<int:id>/entitlement",
        licensing_api.EntitlementApi.as_view(),
        name="api-device-entitlement",
    ),
    path(
        "devices/<int:id>/entitlement-token",
        licensing_api.EntitlementTokenApi.as_view(),
        name="api-device-entitlement-token",
    ),
    path(
        "devices/<int:id>/control-session",
        licensing_api.ControlSessionAcquireApi.as_view(),
        name="api-device-control-session",
    ),
    path("cameras/", devices_api.CameraListApi.as_view(), name="api-cameras"),
    path("cameras/<int:id>/", devices_api.CameraDetailApi.as_view(), name="api-camera"),
    path("cockpits/", devices_api.CockpitListApi.as_view(), name="api-cockpits"),
    path("cockpits/<int:id>/", devices_api.CockpitDetailApi.as_view(), name="api-cockpit"),
    path("licenses/", licensing_api.LicenseListApi.as_view(), name="api-licenses"),
    path("licenses/<int:id>/", licensing_api.LicenseDetailApi.as_view(), name="api-license"),
    path("licenses/<int:id>/bind", licensing_api.LicenseBindApi.as_view(), name="api-license-bind"),
    path(
        "licenses/<int:id>/unbind",
        licensing_api.LicenseUnbindApi.as_view(),
        name="api-license-unbind",
    ),
    path(
        "control-sessions/<int:id>/heartbeat",
        licensing_api.ControlSessionHeartbeatApi.as_view(),
        name="api-control-session-heartbeat",
    ),
    path(
        "control-sessions/<int:id>",
        licensing_api.ControlSessionApi.as_view(),
        name="api-control-session",
    ),
    # Billing (issue 5): quote, orders, refund requests.
    path("quote", billing_api.QuoteApi.as_view(), name="api-quote"),
    path("orders/", billing_api.OrderListCreateApi.as_view(), name="api-orders"),
    path("orders/<int:id>/", billing_api.OrderDetailApi.as_view(), name="api-order"),
    path(
        "orders/<int:id>/refund-request",
        billing_api.OrderRefundRequestApi.as_view(),
        name="api-order-refund-request",
    ),
    # Webhooks (R15).
    path(
        "webhook-endpoints/", webhooks_api.EndpointListApi.as_view(), name="api-webhook-endpoints"
    ),
    path(
        "webhook-endpoints/<int:id>/",
        webhooks_api.EndpointDetailApi.as_view(),
        name="api-webhook-endpoint",
    ),
    path(
        "webhook-endpoints/<int:id>/deliveries/",
        webhooks_api.DeliveryListApi.as_view(),
        name="api-webhook-deliveries",
    ),
    path(
        "webhook-endpoints/<int:id>/deliveries/<int:delivery_id>/retry",
        webhooks_api.DeliveryRetryApi.as_view(),
        name="api-webhook-delivery-retry",
    ),
    path(
        "webhook-endpoints/<int:id>/ping",
        webhooks_api.EndpointPingApi.as_view(),
        name="api-webhook-endpoint-ping",
    ),
    path(
        "webhook-endpoints/<int:id>/rotate-secret",
        webhooks_api.EndpointRotateSecretApi.as_view(),
        name="api-webhook-endpoint-rotate-secret",
    ),
]

# Keep last: any other path under /api/v1/ is a 404 in the API's error shape, not HTML.
urlpatterns.append(re_path(r"^", api_not_found))
