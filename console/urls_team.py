"""The console's team, audit log and notification settings pages (console/team_views.py,
console/audit_views.py, console/notify_views.py), mounted at the site root."""

from django.urls import path

from console import audit_views, notify_views, team_views

urlpatterns = [
    path("team/", team_views.team_page, name="team"),
    path("team/members/<int:pk>/role/", team_views.member_role, name="member-role"),
    path("team/members/<int:pk>/remove/", team_views.member_remove, name="member-remove"),
    path(
        "team/invitations/<int:pk>/resend/",
        team_views.invitation_resend,
        name="invitation-resend",
    ),
    path(
        "team/invitations/<int:pk>/revoke/",
        team_views.invitation_revoke,
        name="invitation-revoke",
    ),
    path("invite/<str:token>/", team_views.invitation_accept, name="invitation-accept"),
    path("audit/", audit_views.audit_log, name="audit-log"),
    path("audit/export.csv", audit_views.audit_export, name="audit-export"),
    path(
        "settings/notifications/", notify_views.notification_settings, name="notification-settings"
    ),
    path(
        "settings/notifications/<int:pk>/delete/",
        notify_views.notification_recipient_delete,
        name="notification-recipient-delete",
    ),
]
