"""Licensing pages (licensing/views.py): the device's own page with its licenses and the
bind form, deleting a device (R7 unbinds its licenses), and the license list with bind and
unbind. Its renewal form posts to billing's /orders/renew/ (licensing never calls billing)."""

from django.urls import path

from licensing import views

urlpatterns = [
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
