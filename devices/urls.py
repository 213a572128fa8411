"""Device pages (devices/views.py). The device's detail and delete pages, which bind and
unbind licenses, are licensing's (licensing/urls.py) under the same /devices/ prefix."""

from django.urls import path

from devices import cockpit_views, import_views, views

urlpatterns = [
    path("cockpits/", cockpit_views.cockpit_list, name="cockpits"),
    path("cockpits/<int:cockpit_id>/edit/", cockpit_views.cockpit_edit, name="cockpit-edit"),
    path("cockpits/<int:cockpit_id>/delete/", cockpit_views.cockpit_delete, name="cockpit-delete"),
    path("devices/", views.device_list, name="devices"),
    path("devices/import/", import_views.import_upload, name="device-import"),
    path("devices/import/template/", import_views.import_template, name="device-import-template"),
    path("devices/import/<int:job_id>/", import_views.import_job, name="device-import-job"),
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
