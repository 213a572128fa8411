"""Licensing pages (licensing/views.py): the device's own page with its licenses and the
bind form, deleting a device (R7 unbinds its licenses), and the license list with bind and
unbind. Its renewal form posts to billing's /orders/renew/ (licensing never calls billing)."""

from django.urls import path

from licensing import session_views, views

urlpatterns = [
    path("control/", session_views.control_sessions, name="control-sessions"),
    path(
        "control/<int:session_id>/end/",
        session_views.control_session_end,
        name="control-session-end",
    ),
    path(
        "devices/<int:device_id>/sessions/",
        session_views.device_sessions,
        name="device-sessions",
    ),
    path("devices/<int:device_id>/", views.device_detail, name="device-detail"),
    path(
        "devices/<int:device_id>/bind-licenses/",
        views.device_bind_licenses,
        name="device-bind-licenses",
    ),
    path("devices/<int:device_id>/delete/", views.device_delete, name="device-delete"),
    path("licenses/", views.licenses, name="licenses"),
    path("licenses/<int:license_id>/bind/", views.license_bind, name="license-bind"),
    path("licenses/<int:license_id>/unbind/", views.license_unbind, name="license-unbind"),
]
