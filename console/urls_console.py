"""The customer console's pages, mounted at the site root by console/urls.py.

/licenses/ and /devices/ are left for the licensing and devices pages.
"""

from django.contrib.auth import views as auth_views
from django.urls import path

from console import views, webhooks_views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    # Accounts
    path("signup/", views.signup, name="signup"),
    path("signup/sent/", views.signup_sent, name="signup-sent"),
    path("signup/confirm/<str:token>/", views.signup_confirm_view, name="signup-confirm"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password-reset/", views.PasswordResetView.as_view(), name="password_reset"),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("password-change/", views.PasswordChangeView.as_view(), name="password_change"),
    path(
        "password-change/done/",
        auth_views.PasswordChangeDoneView.as_view(
            template_name="registration/change_password_done.html"
        ),
        name="password_change_done",
    ),
    # Beta application (R9)
    path("apply/", views.apply, name="apply"),
    path("application/", views.application, name="application"),
    path(
        "application/<int:pk>/withdraw/",
        views.application_withdraw,
        name="application-withdraw",
    ),
    # Tenant shell
    path("keys/", views.api_keys, name="api-keys"),
    path("keys/<int:pk>/revoke/", views.api_key_revoke_view, name="api-key-revoke"),
    # The team page is console/urls_team.py's.
    # Webhooks (R15)
    path("webhooks/", webhooks_views.webhooks_page, name="webhooks"),
    path("webhooks/<int:pk>/", webhooks_views.webhook_detail, name="webhook-detail"),
    path(
        "webhooks/<int:pk>/<str:action>/",
        webhooks_views.webhook_action,
        name="webhook-action",
    ),
    path(
        "webhooks/<int:pk>/deliveries/<int:delivery_id>/retry/",
        webhooks_views.webhook_delivery_retry,
        name="webhook-delivery-retry",
    ),
]
