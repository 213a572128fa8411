from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from billing.urls import order_page_patterns
from console import shell_views, user_language, views
from licensing import api as licensing_api

handler500 = "console.views.server_error"

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    # Browsers that ignore the <link rel="icon"> still ask for /favicon.ico.
    path("favicon.ico", shell_views.favicon, name="favicon"),
    path(".well-known/jwks.json", licensing_api.jwks, name="jwks"),
    # Staff two-factor pages, before the admin's own URLs (console.staff_otp).
    path("admin/2fa/", include("console.staff_otp_views")),
    path("admin/", admin.site.urls),
    path("api/v1/", include("console.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file (?script), not inline,
    # so the Content-Security-Policy needs no inline script.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema"),
        name="api-docs",
    ),
    # The language switcher also saves a logged-in user's choice (console.user_language).
    path("i18n/setlang/", user_language.set_language, name="set_language"),
    path("i18n/", include("django.conf.urls.i18n")),
    # Billing pages (the receipt at /orders/<id>/receipt/).
    path("", include("billing.urls")),
    # Customer pages: devices, licenses (and the device page, which binds them), orders.
    path("", include("devices.urls")),
    path("", include("licensing.urls")),
    path("", include(order_page_patterns)),
    # Team, invitations, audit log and notification settings (console/urls_team.py).
    path("", include("console.urls_team")),
    path("", include("console.urls_console")),
]
