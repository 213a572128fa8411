"""Device pages (devices/views.py). The device's detail and delete pages, which bind and
unbind licenses, are licensing's (licensing/urls.py) under the same /devices/ prefix."""

from django.urls import path

from devices import views

urlpatterns = [
    path("devices/", views.device_list, name="devices"),
    path("devices/<int:device_id>/edit/", views.device_edit, name="device-edit"),
    path("devices/<int:device_id>/cameras/add/", views.camera_add, name="camera-add"),
    path(
        "devices/<int:device_id>/cameras/<int:camera_id>/edit/",
        views.camera_edit,
        name="camera-edit",
    ),
    path(
        "devices/<int:device_id>/cameras/<int:camera_id>/delete/",
        views.camera_delete,
        name="camera-delete",
    ),
]
