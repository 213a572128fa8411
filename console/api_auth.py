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
from django.db.models.base import ModelState
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import HTTP_HEADER_ENCODING, authentication, exceptions, permissions

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
    rows = prepared.fetchall(sql, [digest])
    if not rows:
        return None
    (row,) = rows  # digests are unique
    values = []
    for value, (col, funcs) in zip(row, converters, strict=True):
        for func in funcs:
            value = func(value, col, conn)
        values.append(value)
    n = len(_KEY_FIELDS)
    key = _instance(ApiKey, _KEY_FIELDS, values[:n], conn.alias)
    key.tenant = _instance(Tenant, _TENANT_FIELDS, values[n:], conn.alias)
    return key


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


def _touch_if_stale(key_id: int, now: dt.datetime) -> None:
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
        # A DRF request names its view; a plain one (a direct call) never defers.
        view = (getattr(request, "parser_context", None) or {}).get("view")
        if request.method in getattr(view, "key_checked_methods", ()):
            return PendingApiKey(digest), None  # the view's own statement reads the key
        key = active_key_by_digest(digest)
        # The database matched the digest already; the constant-time compare keeps the
        # final yes/no independent of how many leading characters agree.
        if key is None or not hmac.compare_digest(key.digest, digest):
            raise exceptions.AuthenticationFailed(_INVALID_KEY)
        self._touch(key)
        return ApiPrincipal(tenant=key.tenant, role=key.role, key=key), key

    @staticmethod
    def _touch(key: ApiKey) -> None:
        now = timezone.now()
        if key.last_used_at is not None and key.last_used_at >= key_stale_before(now):
            return
        _touch_if_stale(key.pk, now)
        key.last_used_at = now

    def authenticate_header(self, request):
        return self.keyword


# --- keys checked by the view's own statement (the entitlement hot path) ---------------------
#
# A key look-up is a database round trip of its own. A view whose first statement can read
# the key along with everything else it needs lists the methods concerned in
# `key_checked_methods`. For those, ApiKeyAuthentication checks only the header (a malformed
# one is still a 401) and the request carries a PendingApiKey, which HasTenant lets through;
# the view, before anything else, runs its statement (built around key_lookup_sql) and hands
# the key's row to key_checked, which applies exactly the checks ApiKeyAuthentication and
# HasTenant would: 401, last_used_at, 403 TENANT_SUSPENDED, role. Other methods of the view
# (OPTIONS, a 405) authenticate as usual. Nothing is cached between requests: revocation
# and suspension take effect at once.


class PendingApiKey:
    """A well-formed Bearer key not yet checked against the database (see above)."""

    __slots__ = ("digest",)
    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    pk = None

    def __init__(self, digest: str):
        self.digest = digest


@dataclass(slots=True)
class ApiKeyRow:
    """The columns key_lookup_sql selects, in this order."""

    key_id: int
    role: str
    prefix: str
    digest: str
    stale: bool  # last_used_at older than API_KEY_TOUCH_SECONDS (or never used)
    tenant_id: int
    tenant_status: str


API_KEY_ROW_COLUMNS = 7
_KEY_SQL: dict[str, str] = {}


def key_lookup_sql(connection) -> str:
    """A SELECT of the unrevoked key with a digest and its tenant's id and status, as
    ApiKeyRow's columns (for a WITH clause). Its parameters, in order: the instant before
    which last_used_at is stale (key_stale_before), then the digest."""
    sql = _KEY_SQL.get(connection.vendor)
    if sql is None:
        q = connection.ops.quote_name
        sql = _KEY_SQL[connection.vendor] = (
            f"SELECT k.{q('id')} AS key_id, k.{q('role')} AS role, "  # noqa: S608 - metadata
            f"k.{q('prefix')} AS prefix, k.{q('digest')} AS digest, "
            f"(k.{q('last_used_at')} IS NULL OR k.{q('last_used_at')} < %s) AS stale, "
            f"t.{q('id')} AS tenant_id, t.{q('status')} AS tenant_status "
            f"FROM {q(ApiKey._meta.db_table)} k "
            f"JOIN {q(Tenant._meta.db_table)} t ON t.{q('id')} = k.{q('tenant_id')} "
            f"WHERE k.{q('digest')} = %s AND k.{q('revoked_at')} IS NULL"
        )
    return sql


_KEY_TENANT = ApiKey._meta.get_field("tenant")


def _as_loaded(model, values: dict):
    """An instance of `model` as loaded from the database with only `values` (by attname);
    its other fields load on first access. Built the way unpickling builds one, without
    Model.__init__'s pass over every field: this is on the hot path."""
    obj = model.__new__(model)
    obj.__dict__.update(values)
    obj._state = ModelState()
    obj._state.adding = False
    obj._state.db = DEFAULT_DB_ALIAS
    return obj


def key_checked(request, view, row: ApiKeyRow | None, *, now: dt.datetime) -> ApiPrincipal:
    """Check a PendingApiKey against the row the view's statement read for its digest
    (None: no unrevoked key has it), as ApiKeyAuthentication and HasTenant would: 401,
    stamp last_used_at when stale, 403 TENANT_SUSPENDED, role. Sets request.user,
    request.auth, request.tenant and request.principal; returns the principal. The
    tenant and key carry the columns read (others load on first access)."""
    pending = request.user
    if row is None or not hmac.compare_digest(row.digest, pending.digest):
        raise exceptions.AuthenticationFailed(_INVALID_KEY)
    if row.stale:
        _touch_if_stale(row.key_id, now)
    if row.tenant_status != Tenant.Status.ACTIVE:
        raise TenantSuspended()
    if row.role not in required_roles(view, request.method):
        raise exceptions.PermissionDenied(_("This key's role does not allow this call."))
    tenant = _as_loaded(Tenant, {"id": row.tenant_id, "status": row.tenant_status})
    key = _as_loaded(
        ApiKey,
        {
            "id": row.key_id,
            "tenant_id": row.tenant_id,
            "role": row.role,
            "prefix": row.prefix,
            "digest": row.digest,
        },
    )
    _KEY_TENANT.set_cached_value(key, tenant)
    principal = ApiPrincipal(tenant=tenant, role=row.role, key=key)
    request.user = principal
    request.auth = key
    request.tenant = tenant
    request.principal = principal
    return principal


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
        if type(request.user) is PendingApiKey:
            # The view checks the key, tenant and role in its own statement (key_checked).
            return True
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
