"""API authentication and roles.

Gateways and cockpits send `Authorization: Bearer <tenant API key>`. The key is looked up by
its SHA-256 digest (one indexed query that also loads the tenant) and compared in constant
time; `last_used_at` is written at most once a minute so the hot path stays read-only.
Logged-in console users reach the browsable API through their session and membership.
"""

import datetime as dt
import hmac
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import authentication, exceptions, permissions

from console.models import ApiKey, Membership, Tenant, api_key_digest

ADMIN = ApiKey.Role.ADMIN
OPERATOR = ApiKey.Role.OPERATOR
VIEWER = ApiKey.Role.VIEWER
# What each kind of call allows (CONTRACT.md, "Key roles").
READ = frozenset({ADMIN, OPERATOR, VIEWER})
ENTITLEMENT = READ
CONTROL = frozenset({ADMIN, OPERATOR})
MANAGE = frozenset({ADMIN})


@dataclass
class ApiPrincipal:
    """Who is calling: a tenant with a role, through a key or a console session."""

    tenant: Tenant
    role: str
    key: ApiKey | None = None
    user: object | None = None

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    pk = None

    @property
    def label(self) -> str:
        if self.key is not None:
            return f"api-key:{self.key.prefix}"
        return str(self.user)

    @property
    def actor(self):
        """For audit events: the console user, or the key's label."""
        return self.user if self.user is not None else self.label

    def __str__(self) -> str:
        return self.label


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() != self.keyword.lower().encode():
            raise exceptions.AuthenticationFailed(_("Use 'Authorization: Bearer <API key>'."))
        if len(header) != 2:
            raise exceptions.AuthenticationFailed(_("Malformed Authorization header."))
        try:
            raw = header[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed(_("Malformed API key.")) from exc
        digest = api_key_digest(raw)
        key = (
            ApiKey.objects.select_related("tenant")
            .filter(digest=digest, revoked_at__isnull=True)
            .first()
        )
        if key is None or not hmac.compare_digest(key.digest, digest):
            raise exceptions.AuthenticationFailed(_("Invalid or revoked API key."))
        self._touch(key)
        return ApiPrincipal(tenant=key.tenant, role=key.role, key=key), key

    @staticmethod
    def _touch(key: ApiKey) -> None:
        now = timezone.now()
        stale = now - dt.timedelta(seconds=settings.API_KEY_TOUCH_SECONDS)
        if key.last_used_at is None or key.last_used_at < stale:
            # Conditional update: concurrent calls in the same minute write once.
            ApiKey.objects.filter(pk=key.pk).filter(last_used_at__isnull=True).update(
                last_used_at=now
            ) or ApiKey.objects.filter(pk=key.pk, last_used_at__lt=stale).update(last_used_at=now)
            key.last_used_at = now

    def authenticate_header(self, request):
        return self.keyword


SESSION_ROLE = {
    Membership.Role.OWNER: ADMIN,
    Membership.Role.ADMIN: ADMIN,
    Membership.Role.VIEWER: VIEWER,
}


def principal_for(request) -> ApiPrincipal | None:
    """The calling tenant and role, from the key or from the console session's membership."""
    user = request.user
    if isinstance(user, ApiPrincipal):
        return user
    if not getattr(user, "is_authenticated", False):
        return None
    cached = getattr(request, "_api_principal", None)
    if cached is not None:
        return cached
    memberships = Membership.objects.select_related("tenant").filter(user=user)
    tenant_id = request.session.get("tenant_id") if hasattr(request, "session") else None
    if tenant_id:
        memberships = memberships.filter(tenant_id=tenant_id)
    membership = memberships.order_by("created_at", "id").first()
    if membership is None:
        return None
    principal = ApiPrincipal(
        tenant=membership.tenant, role=SESSION_ROLE[membership.role], user=user
    )
    request._api_principal = principal
    return principal


class TenantSuspended(exceptions.PermissionDenied):
    default_detail = _("This tenant is suspended.")
    default_code = "TENANT_SUSPENDED"


class HasTenant(permissions.BasePermission):
    """An active tenant's key or member, whose role allows this call.

    Views say which roles may call each method in `required_roles` (a dict of HTTP method →
    role set, with "*" as the default); without it, reads are open to every role and writes
    need an admin key.
    """

    def has_permission(self, request, view):
        principal = principal_for(request)
        if principal is None:
            if not getattr(request.user, "is_authenticated", False):
                raise exceptions.NotAuthenticated()
            raise exceptions.PermissionDenied(_("You are not a member of any tenant."))
        if principal.tenant.status != Tenant.Status.ACTIVE:
            raise TenantSuspended()
        roles = required_roles(view, request.method)
        if principal.role not in roles:
            raise exceptions.PermissionDenied(_("This key's role does not allow this call."))
        request.tenant = principal.tenant
        request.principal = principal
        return True


def required_roles(view, method: str) -> frozenset:
    table = getattr(view, "required_roles", None)
    if table:
        return table.get(method, table.get("*", MANAGE))
    return READ if method in permissions.SAFE_METHODS else MANAGE
