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
from django.db import connection
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import HTTP_HEADER_ENCODING, authentication, exceptions, permissions

from console.errors import Forbidden
from console.models import ApiKey, Membership, Tenant, api_key_digest
from console.services import tenant_require_active

ADMIN = ApiKey.Role.ADMIN
OPERATOR = ApiKey.Role.OPERATOR
VIEWER = ApiKey.Role.VIEWER
# What each kind of call allows (CONTRACT.md, "Key roles").
READ = frozenset({ADMIN, OPERATOR, VIEWER})
ENTITLEMENT = READ
CONTROL = frozenset({ADMIN, OPERATOR})
MANAGE = frozenset({ADMIN})

# Real keys are "fc_" + 43 characters; anything far longer is not worth hashing.
_MAX_KEY_LENGTH = 128


@dataclass
class ApiPrincipal:
    """Who is calling: a tenant with a role, through a key or a console session."""

    tenant: Tenant
    role: str
    key: "KeyRef | None" = None
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


@dataclass(frozen=True)
class KeyRef:
    """The calling API key as a request needs it (request.auth): no secret, no model."""

    pk: int
    role: str
    prefix: str
    digest: str
    stale: bool  # last_used_at older than API_KEY_TOUCH_SECONDS, or never used


_KEY_SQL: dict[str, str] = {}


def _key_sql() -> str:
    # The key's columns ride along the tenant's row as annotations of Manager.raw(): one
    # indexed look-up, without the ORM's query compilation, which cost three times the
    # database's work on every API call (bench/RESULTS.md). Built once per database
    # vendor from the models' own metadata; the values are parameters.
    sql = _KEY_SQL.get(connection.vendor)
    if sql is None:
        q = connection.ops.quote_name
        tenant_columns = ", ".join(f"t.{q(f.column)}" for f in Tenant._meta.concrete_fields)
        sql = _KEY_SQL[connection.vendor] = (
            f"SELECT {tenant_columns}, k.{q('id')} AS fc_key_id, "  # noqa: S608 - metadata
            f"k.{q('role')} AS fc_key_role, k.{q('prefix')} AS fc_key_prefix, "
            f"k.{q('digest')} AS fc_key_digest, "
            f"(k.{q('last_used_at')} IS NULL OR k.{q('last_used_at')} < %s) AS fc_key_stale "
            f"FROM {q(Tenant._meta.db_table)} t "
            f"JOIN {q(ApiKey._meta.db_table)} k ON k.{q('tenant_id')} = t.{q('id')} "
            f"WHERE k.{q('digest')} = %s AND k.{q('revoked_at')} IS NULL"
        )
    return sql


def active_key_by_digest(digest: str, *, now: dt.datetime) -> tuple[KeyRef, Tenant] | None:
    """The unrevoked key with this digest and its tenant, in one indexed query; or None.

    The one key look-up of the API: every call, the gateways' hot path included, comes
    through here (ApiKeyAuthentication)."""
    stale_before = connection.ops.adapt_datetimefield_value(key_stale_before(now))
    rows = list(Tenant.objects.raw(_key_sql(), [stale_before, digest]))
    if not rows:
        return None
    (tenant,) = rows  # digests are unique
    key = KeyRef(
        pk=tenant.fc_key_id,
        role=tenant.fc_key_role,
        prefix=tenant.fc_key_prefix,
        digest=tenant.fc_key_digest,
        stale=bool(tenant.fc_key_stale),  # SQLite answers 0/1
    )
    return key, tenant


_INVALID_KEY = _("Invalid or revoked API key.")


def bearer_digest(request) -> str | None:
    """The digest of the request's Bearer key; None without an Authorization header.
    A header that is not a well-formed Bearer key is a 401."""
    # META rather than DRF's get_authorization_header: request.headers would build a
    # mapping of every header on each call, for this one.
    header = request.META.get("HTTP_AUTHORIZATION", b"")
    if isinstance(header, str):
        header = header.encode(HTTP_HEADER_ENCODING)
    header = header.split()
    if not header:
        return None
    if header[0].lower() != b"bearer":
        raise exceptions.AuthenticationFailed(_("Use 'Authorization: Bearer <API key>'."))
    if len(header) != 2 or len(header[1]) > _MAX_KEY_LENGTH:
        raise exceptions.AuthenticationFailed(_("Malformed Authorization header."))
    try:
        raw = header[1].decode("ascii")
    except UnicodeDecodeError as exc:
        raise exceptions.AuthenticationFailed(_("Malformed API key.")) from exc
    return api_key_digest(raw)


def key_stale_before(now: dt.datetime) -> dt.datetime:
    """Before this instant a key's last_used_at is stale and gets rewritten (at most once a
    minute per key, so the hot path stays read-only); also key_lookup_sql's first parameter."""
    return now - dt.timedelta(seconds=settings.API_KEY_TOUCH_SECONDS)


def touch_if_stale(key_id: int, now: dt.datetime) -> None:
    # Conditional update: of several calls in the same minute (other workers), one writes.
    ApiKey.objects.filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=key_stale_before(now)), pk=key_id
    ).update(last_used_at=now)


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        digest = bearer_digest(request)
        if digest is None:
            return None
        now = timezone.now()
        found = active_key_by_digest(digest, now=now)
        # The database matched the digest already; the constant-time compare keeps the
        # final yes/no independent of how many leading characters agree.
        if found is None or not hmac.compare_digest(found[0].digest, digest):
            raise exceptions.AuthenticationFailed(_INVALID_KEY)
        key, tenant = found
        if key.stale:
            touch_if_stale(key.pk, now)
        return ApiPrincipal(tenant=tenant, role=key.role, key=key), key

    def authenticate_header(self, request):
        return self.keyword


class ApiKeyScheme(OpenApiAuthenticationExtension):
    """Documents the Bearer key in the OpenAPI schema."""

    target_class = ApiKeyAuthentication
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "description": str(_("A tenant API key: `Authorization: Bearer fc_…`.")),
        }


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
    cached = getattr(request, "fc_api_principal", None)
    if cached is not None:
        return cached
    memberships = Membership.objects.select_related("tenant").filter(user=user)
    # The console keeps the tenant being worked on in the session; otherwise the first one.
    tenant_id = request.session.get("tenant_id") if hasattr(request, "session") else None
    if tenant_id:
        memberships = memberships.filter(tenant_id=tenant_id)
    membership = memberships.order_by("created_at", "id").first()
    if membership is None:
        return None
    principal = ApiPrincipal(
        tenant=membership.tenant, role=SESSION_ROLE[membership.role], user=user
    )
    request.fc_api_principal = principal
    return principal


class TenantSuspended(exceptions.PermissionDenied):
    default_detail = _("This tenant is suspended.")
    default_code = "TENANT_SUSPENDED"


class HasTenant(permissions.BasePermission):
    """An active tenant's key or member, whose role allows this call (R9: a suspended
    tenant's calls are 403 TENANT_SUSPENDED).

    Views say which roles may call each method in `required_roles` (HTTP method → role set,
    "*" for the rest); without an entry, reads are open to every role and writes need admin.
    """

    def has_permission(self, request, view):
        principal = principal_for(request)
        if principal is None:
            if not getattr(request.user, "is_authenticated", False):
                raise exceptions.NotAuthenticated()
            raise exceptions.PermissionDenied(_("You are not a member of any tenant."))
        try:
            tenant_require_active(principal.tenant)
        except Forbidden as exc:
            raise TenantSuspended() from exc
        request.tenant = principal.tenant
        request.principal = principal
        # A method the view does not serve is a 405, whatever the role.
        if not hasattr(view, request.method.lower()):
            return True
        if principal.role not in required_roles(view, request.method):
            raise exceptions.PermissionDenied(_("This key's role does not allow this call."))
        return True


def required_roles(view, method: str) -> frozenset:
    table = getattr(view, "required_roles", None) or {}
    if method in table:
        return table[method]
    if "*" in table:
        return table["*"]
    return READ if method in permissions.SAFE_METHODS else MANAGE
