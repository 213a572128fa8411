"""API key authentication: the one-statement key look-up and its `last_used_at` stamp.

Which keys and roles get 401/403 on every endpoint is in test_api_access.py.
"""

import datetime as dt
from dataclasses import replace
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework import exceptions

from console.api_auth import (
    MANAGE,
    ApiKeyAuthentication,
    ApiKeyRow,
    PendingApiKey,
    TenantSuspended,
    active_key_by_digest,
    key_checked,
)
from console.models import ApiKey, Tenant, api_key_digest
from console.tests.factories import TenantFactory, make_api_key

pytestmark = pytest.mark.django_db


def test_lookup_loads_the_key_and_its_whole_tenant_in_one_query(db):
    tenant = TenantFactory(contract_unit_price=Decimal("3100.50"))
    key, raw = make_api_key(tenant, ApiKey.Role.OPERATOR, name="gateway 7")
    active_key_by_digest("0" * 64)  # the first look-up of a session also prepares it
    with CaptureQueriesContext(connection) as ctx:
        found = active_key_by_digest(api_key_digest(raw))
        loaded = found.tenant
        values = (found.pk, found.role, found.prefix, found.last_used_at)
        tenant_values = [getattr(loaded, f.attname) for f in Tenant._meta.concrete_fields]
    assert len(ctx.captured_queries) == 1
    assert values == (key.pk, "operator", key.prefix, None)
    assert tenant_values == [getattr(tenant, f.attname) for f in Tenant._meta.concrete_fields]
    # Billing prices with it: a real Decimal, not a float or a default.
    assert loaded.contract_unit_price == Decimal("3100.50")
    assert loaded.created_at.tzinfo is not None
    # The key's other fields load on first use.
    assert found.name == "gateway 7"


def test_lookup_ignores_revoked_and_unknown_keys(tenant):
    key, raw = make_api_key(tenant)
    assert active_key_by_digest(api_key_digest(raw + "x")) is None
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=timezone.now())
    assert active_key_by_digest(api_key_digest(raw)) is None


def test_last_used_at_is_a_conditional_write(tenant, time_machine):
    """Of two workers that both saw a stale stamp, only one writes."""
    start = timezone.now()
    time_machine.move_to(start, tick=False)
    key, raw = make_api_key(tenant)
    first = active_key_by_digest(api_key_digest(raw))
    second = active_key_by_digest(api_key_digest(raw))
    ApiKeyAuthentication._touch(first)
    time_machine.shift(dt.timedelta(seconds=1))
    with CaptureQueriesContext(connection) as ctx:
        ApiKeyAuthentication._touch(second)
    assert len(ctx.captured_queries) == 1  # tried, and matched no row
    assert ApiKey.objects.get(pk=key.pk).last_used_at == start
    time_machine.shift(dt.timedelta(seconds=30))
    with CaptureQueriesContext(connection) as ctx:
        ApiKeyAuthentication._touch(first)  # stamped this minute: no write at all
    assert len(ctx.captured_queries) == 0


def _pending(raw: str, method: str = "POST"):
    return SimpleNamespace(user=PendingApiKey(api_key_digest(raw)), method=method)


def test_key_checked_applies_the_usual_checks(tenant, time_machine):
    """A key read by a view's own statement gets ApiKeyAuthentication's and HasTenant's
    checks: another digest is a 401, a suspended tenant a 403 TENANT_SUSPENDED, a role the
    view does not allow a 403 FORBIDDEN; a stale last_used_at is stamped."""
    now = timezone.now()
    time_machine.move_to(now, tick=False)
    key, raw = make_api_key(tenant, ApiKey.Role.OPERATOR)
    row = ApiKeyRow(key.pk, "operator", key.prefix, key.digest, True, tenant.pk, "active")
    open_view = SimpleNamespace(required_roles={"POST": frozenset({"operator"})})
    admin_view = SimpleNamespace(required_roles={"POST": MANAGE})

    with pytest.raises(exceptions.AuthenticationFailed):
        key_checked(_pending(raw + "x"), open_view, row, now=now)
    with pytest.raises(exceptions.AuthenticationFailed):
        key_checked(_pending(raw), open_view, None, now=now)
    with pytest.raises(TenantSuspended):
        key_checked(_pending(raw), open_view, replace(row, tenant_status="suspended"), now=now)
    with pytest.raises(exceptions.PermissionDenied) as refused:
        key_checked(_pending(raw), admin_view, row, now=now)
    assert not isinstance(refused.value, TenantSuspended)

    request = _pending(raw)
    principal = key_checked(request, open_view, row, now=now)
    assert request.user is principal and request.principal is principal
    assert request.tenant.pk == tenant.pk and request.auth.pk == key.pk
    assert request.auth.tenant is request.tenant
    # The instances carry what was read; other fields load on first access.
    assert request.tenant.name == tenant.name and request.auth.name == key.name
    assert principal.role == "operator" and principal.actor == f"api-key:{key.prefix}"
    assert ApiKey.objects.get(pk=key.pk).last_used_at == now
