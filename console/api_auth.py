"""API authentication and roles.

Gateways and cockpits send `Authorization: Bearer <tenant API key>`. The key is looked up by
its SHA-256 digest (one indexed query that also loads the tenant) and compared in constant
time; `last_used_at` is written at most once a minute so the hot path stays read-only.
Logged-in console users reach the browsable API through their session and membership.
"""

import datetime as dt
import hmac
import weakref
from dataclasses import dataclass

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import DEFERRED, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions, permissions

from console import prepared
from console.models import ApiKey, Membership, Tenant, api_key_digest

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


# The key look-up runs on every API call, the gateways' hot path included, so it is one
# hand-written statement (the ORM's query compilation cost several times the database's
# work): the key's columns needed here and all of its tenant's, through Django's own
# converters, into model instances. The key's other fields load on first access.
_KEY_FIELDS = [
    ApiKey._meta.get_field(name)
    for name in ("id", "tenant", "role", "prefix", "digest", "last_used_at")
]
_TENANT_FIELDS = list(Tenant._meta.concrete_fields)
# Per database connection object (one per thread): the converters are its backend's.
_KEY_LOOKUP: "weakref.WeakKeyDictionary[object, tuple[str, list]]" = weakref.WeakKeyDictionary()


def _key_lookup(connection) -> tuple[str, list]:
    cached = _KEY_LOOKUP.get(connection)
    if cached is None:
        q = connection.ops.quote_name
        columns = [f"k.{q(f.column)}" for f in _KEY_FIELDS]
        columns += [f"t.{q(f.column)}" for f in _TENANT_FIELDS]
        sql = (
            f"SELECT {', '.join(columns)} "  # noqa: S608 - model metadata only; values are params
            f"FROM {q(ApiKey._meta.db_table)} k "
            f"JOIN {q(Tenant._meta.db_table)} t ON t.{q('id')} = k.{q('tenant_id')} "
            f"WHERE k.{q('digest')} = %s AND k.{q('revoked_at')} IS NULL"
        )
        converters = []
        for field in _KEY_FIELDS + _TENANT_FIELDS:
            col = field.get_col(field.model._meta.db_table)
            funcs = connection.ops.get_db_converters(col) + field.get_db_converters(connection)
            converters.append((col, funcs))
        cached = _KEY_LOOKUP[connection] = (sql, converters)
    return cached


def _instance(model, fields, values, alias):
    loaded = {f.attname: v for f, v in zip(fields, values, strict=True)}
    row = [loaded.get(f.attname, DEFERRED) for f in model._meta.concrete_fields]
    return model.from_db(alias, list(loaded), row)


def active_key_by_digest(digest: str) -> ApiKey | None:
    """The unrevoked key with this digest and its tenant, in one indexed query; or None."""
    conn = connections[DEFAULT_DB_ALIAS]  # one thread-local look-up, not one per use
    sql, converters = _key_lookup(conn)
    with conn.cursor() as cursor:
        prepared.execute(
            cursor, name="fc_api_key_lookup", sql=sql, params=[digest], types=["text"], conn=conn
        )
        row = cursor.fetchone()
    if row is None:
        return None
    values = []
    for value, (col, funcs) in zip(row, converters, strict=True):
        for func in funcs:
            value = func(value, col, conn)
        values.append(value)
    n = len(_KEY_FIELDS)
    key = _instance(ApiKey, _KEY_FIELDS, values[:n], conn.alias)
    key.tenant = _instance(Tenant, _TENANT_FIELDS, values[n:], conn.alias)
    return key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
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
        digest = api_key_digest(raw)
        key = active_key_by_digest(digest)
        # The database matched the digest already; the constant-time compare keeps the
        # final yes/no independent of how many leading characters agree.
        if key is None or not hmac.compare_digest(key.digest, digest):
            raise exceptions.AuthenticationFailed(_("Invalid or revoked API key."))
        self._touch(key)
        return ApiPrincipal(tenant=key.tenant, role=key.role, key=key), key

    @staticmethod
    def _touch(key: ApiKey) -> None:
        now = timezone.now()
        stale = now - dt.timedelta(seconds=settings.API_KEY_TOUCH_SECONDS)
        if key.last_used_at is not None and key.last_used_at >= stale:
            return
        # Conditional update: of several calls in the same minute (other workers), one writes.
        ApiKey.objects.filter(
            Q(last_used_at__isnull=True) | Q(last_used_at__lt=stale), pk=key.pk
        ).update(last_used_at=now)
        key.last_used_at = now

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
    cached = getattr(request, "_api_principal", None)
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
    request._api_principal = principal
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
        if principal.tenant.status != Tenant.Status.ACTIVE:
            raise TenantSuspended()
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
