"""API key authentication: the one-statement key look-up and its `last_used_at` stamp.

Which keys and roles get 401/403 on every endpoint is in test_api_access.py.
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from console.api_auth import ApiKeyAuthentication, active_key_by_digest
from console.models import ApiKey, Tenant, api_key_digest
from console.tests.factories import TenantFactory, make_api_key

pytestmark = pytest.mark.django_db


def test_lookup_loads_the_key_and_its_whole_tenant_in_one_query(db):
    tenant = TenantFactory(contract_unit_price=Decimal("3100.50"))
    key, raw = make_api_key(tenant, ApiKey.Role.OPERATOR, name="gateway 7")
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
