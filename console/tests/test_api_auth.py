"""API key authentication: the one-statement key look-up and its `last_used_at` stamp.

Which keys and roles get 401/403 on every endpoint is in test_api_access.py.
"""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from console.api_auth import active_key_by_digest, touch_if_stale
from console.models import ApiKey, Tenant, api_key_digest
from console.tests.factories import TenantFactory, make_api_key

pytestmark = pytest.mark.django_db


def test_lookup_loads_the_key_and_its_whole_tenant_in_one_query(db):
    tenant = TenantFactory(contract_unit_price=Decimal("3100.50"))
    key, raw = make_api_key(tenant, ApiKey.Role.OPERATOR, name="gateway 7")
    now = timezone.now()
    with CaptureQueriesContext(connection) as ctx:
        found, loaded = active_key_by_digest(api_key_digest(raw), now=now)
        values = (found.pk, found.role, found.prefix, found.stale)
        tenant_values = [getattr(loaded, f.attname) for f in Tenant._meta.concrete_fields]
    assert len(ctx.captured_queries) == 1
    assert values == (key.pk, "operator", key.prefix, True)  # never used: stale
    assert tenant_values == [getattr(tenant, f.attname) for f in Tenant._meta.concrete_fields]
    # Billing prices with it: a real Decimal, not a float or a default.
    assert loaded.contract_unit_price == Decimal("3100.50")
    assert loaded.created_at.tzinfo is not None
    assert isinstance(loaded, Tenant) and loaded.pk == tenant.pk


def test_lookup_ignores_revoked_and_unknown_keys(tenant):
    key, raw = make_api_key(tenant)
    now = timezone.now()
    assert active_key_by_digest(api_key_digest(raw + "x"), now=now) is None
    ApiKey.objects.filter(pk=key.pk).update(revoked_at=now)
    assert active_key_by_digest(api_key_digest(raw), now=now) is None


def test_staleness_is_read_with_the_key(tenant):
    """last_used_at is rewritten at most once a minute: the look-up says when it is due."""
    key, raw = make_api_key(tenant)
    now = timezone.now()
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=now - dt.timedelta(seconds=59))
    assert active_key_by_digest(api_key_digest(raw), now=now)[0].stale is False
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=now - dt.timedelta(seconds=61))
    assert active_key_by_digest(api_key_digest(raw), now=now)[0].stale is True


def test_last_used_at_is_a_conditional_write(tenant, time_machine):
    """Of two workers that both saw a stale stamp, only one writes."""
    start = timezone.now()
    time_machine.move_to(start, tick=False)
    key, _raw = make_api_key(tenant)
    touch_if_stale(key.pk, start)
    time_machine.shift(dt.timedelta(seconds=1))
    with CaptureQueriesContext(connection) as ctx:
        touch_if_stale(key.pk, timezone.now())
    assert len(ctx.captured_queries) == 1  # tried, and matched no row
    assert ApiKey.objects.get(pk=key.pk).last_used_at == start
