"""Benchmark: every customer console page at fleet size (issue 12).

1. Uses a PostgreSQL database of its own (BENCH_CONSOLE_DATABASE_URL, default
   postgres://postgres@127.0.0.1:5432/fc_bench_console): created if missing, migrated, and
   seeded once; later runs reuse the seed (BENCH_FRESH_DB=1 drops the database first).
2. The seed, set-based (INSERT … SELECT generate_series), in one transaction: a fleet tenant
   with 10,000 devices, 30,000 cameras, 20,000 licenses (half bound; one in thirteen
   expired, the rest expiring over 400 days), 500 orders, 20 cockpits, 5,000 control sessions and
   50,000 audit events; and a small tenant with 10 devices and the same proportions.
3. With the Django test client in this process (DEBUG off), logged in as each tenant's
   owner, each page — dashboard, devices (list, search, status filter, sort, last page),
   a device's page, licenses (list, expiry window, status, unbound), orders, and the team,
   cockpits, remote control and audit log pages when they exist — gets one warm-up, then
   BENCH_ROUNDS timed requests (the median is the figure) and one request counting SQL.

Target: every median < 150 ms at 10,000 devices, and each page's query count the same for
10 and 10,000 devices. Exits non-zero on a miss. Prints a table; keeps it in
bench/out/console_pages.json. Numbers go to bench/RESULTS.md.

Run: `make bench`, or `.venv/bin/python bench/console_pages.py` from the project folder.
Options by environment: BENCH_CONSOLE_DATABASE_URL, BENCH_ROUNDS (7), BENCH_FRESH_DB.
"""

import contextlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import inprocess

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
DATABASE_URL = os.environ.get(
    "BENCH_CONSOLE_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/fc_bench_console"
)
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "7"))
TARGET_MS = 150.0
SEED_MARK = "bench_console_seed"  # a one-row table: the seed is complete
FLEETS = {"small": 10, "fleet": 10_000}  # devices per tenant; the rest in proportion

inprocess.configure(DATABASE_URL)
log, fail = inprocess.log, inprocess.fail


def setup_django() -> None:
    inprocess.setup_django(DATABASE_URL, "BENCH_CONSOLE_DATABASE_URL")


def seeded() -> bool:
    return inprocess.seeded(SEED_MARK)


def _seed_tenant(cursor, *, slug: str, devices: int) -> None:
    """One tenant, its owner and its fleet, in set-based statements."""
    from django.contrib.auth.hashers import make_password
    from django.utils import timezone

    from billing.models import Order
    from console.models import AuditEvent, Membership, Tenant, User
    from devices.models import Camera, ControlSession, FieldDevice, RemoteCockpit
    from licensing.models import License

    now = timezone.now()
    tenant = Tenant.objects.create(name=f"Bench {slug}", slug=f"bench-{slug}", language="en")
    owner = User.objects.create(
        email=f"owner-{slug}@example.com", password=make_password("bench password 42")
    )
    Membership.objects.create(user=owner, tenant=tenant, role=Membership.Role.OWNER)
    t = {m: m._meta.db_table for m in (FieldDevice, Camera, License, Order, AuditEvent)}
    t.update(
        {RemoteCockpit: RemoteCockpit._meta.db_table, ControlSession: ControlSession._meta.db_table}
    )
    scale = devices
    # Devices: every fifth limits its concurrent streams.
    cursor.execute(
        f"""INSERT INTO {t[FieldDevice]}
            (tenant_id, serial, name, max_concurrent_streams, created_at)
        SELECT %s, 'dev_' || lpad(i::text, 6, '0'), 'Machine ' || i,
               CASE WHEN mod(i, 5) = 0 THEN 2 END, %s - (i || ' minutes')::interval
        FROM generate_series(1, %s) i""",
        [tenant.pk, now, scale],
    )
    # Three cameras each: 1280×720, 640×480 and, every third device, 1920×1080.
    cursor.execute(
        f"""INSERT INTO {t[Camera]}
            (device_id, slot, name, width, height, enabled, priority, created_at)
        SELECT d.id, s, 'cam ' || s,
               CASE s WHEN 1 THEN 1280 WHEN 2 THEN 640 ELSE
                   CASE WHEN mod(d.id, 3) = 0 THEN 1920 ELSE 640 END END,
               CASE s WHEN 1 THEN 720 WHEN 2 THEN 480 ELSE
                   CASE WHEN mod(d.id, 3) = 0 THEN 1080 ELSE 480 END END,
               true, 3 - s, %s
        FROM {t[FieldDevice]} d CROSS JOIN generate_series(1, 3) s
        WHERE d.tenant_id = %s""",
        [now, tenant.pk],
    )
    # Two licenses per device: the first half bound one per device but every seventh device
    # (unlicensed), every thirteenth expired, the rest expiring over the next 400 days.
    cursor.execute(
        f"""INSERT INTO {t[License]}
            (tenant_id, device_id, starts_at, expires_at, status, created_at)
        SELECT %s,
               CASE WHEN i <= %s AND mod(i, 7) <> 0 THEN
                   (SELECT id FROM {t[FieldDevice]} WHERE tenant_id = %s
                    AND serial = 'dev_' || lpad(i::text, 6, '0')) END,
               %s - interval '400 days',
               CASE WHEN mod(i, 13) = 0 THEN %s - (mod(i, 20) + 1) * interval '1 day'
                    WHEN mod(i, 6) = 1 THEN %s + (mod(i, 29) + 1) * interval '1 day'
                    ELSE %s + (mod(i * 7919, 400) + 1) * interval '1 day' END,
               'active', %s
        FROM generate_series(1, %s) i""",
        [tenant.pk, scale, tenant.pk, now, now, now, now, now, 2 * scale],
    )
    orders = max(5, scale // 20)
    cursor.execute(
        f"""INSERT INTO {t[Order]} (tenant_id, kind, channel, quantity, years, unit_price, total,
               currency, status, created_by, created_at, transfer_reference, paid_at,
               cancel_reason)
        SELECT %s, CASE WHEN mod(i, 4) = 0 THEN 'renewal' ELSE 'new' END, 'online', 40, 1,
               3600.00, 144000.00, 'CNY',
               CASE WHEN mod(i, 10) = 0 THEN 'pending_payment' ELSE 'paid' END,
               %s, %s - (i || ' hours')::interval, 'B' || %s || '-' || i,
               CASE WHEN mod(i, 10) = 0 THEN NULL ELSE %s - (i || ' hours')::interval END, ''
        FROM generate_series(1, %s) i""",
        [tenant.pk, owner.email, now, tenant.pk, now, min(orders, 500)],
    )
    cursor.execute(
        f"""INSERT INTO {t[RemoteCockpit]} (tenant_id, name, created_at)
        SELECT %s, 'Cockpit ' || i, %s FROM generate_series(1, 20) i""",
        [tenant.pk, now],
    )
    cursor.execute(
        f"""INSERT INTO {t[ControlSession]} (device_id, cockpit_id, started_at, lease_expires_at,
               ended_at, end_reason, token_digest)
        SELECT d.id, c.id, %s - (g.i || ' hours')::interval,
               %s - (g.i || ' hours')::interval + interval '30 seconds',
               %s - (g.i || ' hours')::interval + interval '20 minutes', 'released', ''
        FROM generate_series(1, %s) g(i)
        JOIN LATERAL (SELECT id FROM {t[FieldDevice]} WHERE tenant_id = %s
                      ORDER BY id OFFSET mod(g.i, %s) LIMIT 1) d ON true
        JOIN LATERAL (SELECT id FROM {t[RemoteCockpit]} WHERE tenant_id = %s
                      ORDER BY id OFFSET mod(g.i, 20) LIMIT 1) c ON true""",
        [now, now, now, scale // 2, tenant.pk, scale, tenant.pk],
    )
    cursor.execute(
        f"""INSERT INTO {t[AuditEvent]} (tenant_id, actor_id, actor_label, action, target_type,
               target_id, data, created_at)
        SELECT %s, %s, %s,
               (ARRAY['device.created', 'camera.created', 'license.bound', 'order.placed',
                      'license.unbound'])[1 + mod(i, 5)],
               'device', i::text, '{{}}'::jsonb, %s - (i || ' minutes')::interval
        FROM generate_series(1, %s) i""",
        [tenant.pk, owner.pk, owner.email, now, scale * 5],
    )


def seed() -> None:
    from django.db import connection, transaction

    started = time.monotonic()
    with transaction.atomic(), connection.cursor() as cursor:
        for slug, devices in FLEETS.items():
            _seed_tenant(cursor, slug=slug, devices=devices)
            log(f"   {time.monotonic() - started:6.1f} s  tenant {slug}: {devices:,} devices")
        cursor.execute(f"CREATE TABLE {SEED_MARK} (done boolean)")
        cursor.execute(f"INSERT INTO {SEED_MARK} VALUES (true)")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


class Counter:
    """An execute wrapper that counts the SQL statements run through Django."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def pages(slug: str) -> list[tuple[str, str]]:
    from django.urls import NoReverseMatch, reverse

    from console.models import Tenant
    from devices.models import FieldDevice

    tenant = Tenant.objects.get(slug=f"bench-{slug}")
    device = FieldDevice.objects.filter(tenant=tenant).order_by("id")[3]
    last_page = (FieldDevice.objects.filter(tenant=tenant).count() + 49) // 50
    found = [
        ("dashboard", "/"),
        ("devices", "/devices/"),
        ("devices search 'dev_0000'", "/devices/?q=dev_0000"),
        ("devices status=under_licensed", "/devices/?status=under_licensed"),
        ("devices status=unlicensed", "/devices/?status=unlicensed"),
        ("devices sort=-name", "/devices/?sort=-name"),
        ("devices last page", f"/devices/?page={last_page}"),
        ("device page", f"/devices/{device.pk}/"),
        ("licenses", "/licenses/"),
        ("licenses expiring=30", "/licenses/?expiring=30"),
        ("licenses status=expired", "/licenses/?status=expired"),
        ("licenses unbound, newest", "/licenses/?device=none&sort=-id"),
        ("licenses of a device", f"/licenses/?device={device.pk}"),
        ("orders", "/orders/"),
        ("orders status=paid", "/orders/?status=paid&sort=-total"),
        ("api keys", "/keys/"),
    ]
    # The pages the rest of issue 12 adds, measured when they exist.
    for name, label in [
        ("team", "team"),
        ("cockpits", "cockpits"),
        ("control-sessions", "remote control"),
        ("audit-log", "audit log"),
        ("webhooks", "webhooks"),
        ("notification-settings", "notification settings"),
        ("device-import", "device import"),
    ]:
        with contextlib.suppress(NoReverseMatch):
            found.append((label, reverse(name)))
    return found


def measure(slug: str) -> dict[str, dict]:
    from django.conf import settings
    from django.db import connection
    from django.test import Client
    from django.test.utils import override_settings

    from console.models import User

    plain = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}
    results = {}
    with override_settings(STORAGES={**settings.STORAGES, "staticfiles": plain}):
        client = Client()
        client.force_login(User.objects.get(email=f"owner-{slug}@example.com"))
        for label, url in pages(slug):
            response = client.get(url, secure=True)
            if response.status_code != 200:
                results[label] = {"url": url, "status": response.status_code}
                continue
            queries = Counter()
            with connection.execute_wrapper(queries):
                client.get(url, secure=True)
            times = []
            for _ in range(ROUNDS):
                started = time.perf_counter()
                response = client.get(url, secure=True)
                times.append((time.perf_counter() - started) * 1000)
            results[label] = {
                "url": url,
                "status": response.status_code,
                "median_ms": statistics.median(times),
                "max_ms": max(times),
                "queries": queries.count,
            }
            log(f"   {slug:5s} {results[label]['median_ms']:7.1f} ms {queries.count:3d} q  {label}")
    return results


def main() -> int:
    from httpbench import loadavg, machine

    OUT.mkdir(parents=True, exist_ok=True)
    log(f"== database {DATABASE_URL}")
    setup_django()
    if not seeded():
        log("== seeding (once; later runs reuse it)")
        seed()
    else:
        log("== reusing the seed")
    log(f"== {ROUNDS} timed requests per page after one warm-up (load {loadavg()})")
    load_before = loadavg()
    results = {slug: measure(slug) for slug in FLEETS}
    load_after = loadavg()
    info = machine()

    print()
    for key, value in info.items():
        print(f"{key}: {value}")
    print(f"load (1/5/15 min): {load_before} before, {load_after} after")
    print()
    print(
        "| page | 10 devices: median ms | queries "
        "| 10,000 devices: median ms | max ms | queries | verdict |"
    )
    print("|---|---:|---:|---:|---:|---:|---|")
    missed = []
    for label, big in results["fleet"].items():
        small = results["small"].get(label, {})
        if big.get("status") != 200 or small.get("status") != 200:
            missed.append(f"{label}: HTTP {small.get('status')} / {big.get('status')}")
            print(
                f"| {label} | HTTP {small.get('status')} | | HTTP {big.get('status')} | | | miss |"
            )
            continue
        slow = big["median_ms"] >= TARGET_MS
        grows = big["queries"] != small["queries"]
        verdict = (
            "ok"
            if not (slow or grows)
            else ("over 150 ms" if slow else "") + (" queries grow" if grows else "")
        )
        if slow or grows:
            missed.append(f"{label}: {verdict.strip()}")
        print(
            f"| {label} | {small['median_ms']:.1f} | {small['queries']} | {big['median_ms']:.1f}"
            f" | {big['max_ms']:.1f} | {big['queries']} | {verdict.strip()} |"
        )
    (OUT / "console_pages.json").write_text(
        json.dumps(
            {"machine": info, "load": [load_before, load_after], "results": results}, indent=2
        )
    )
    print()
    if missed:
        print("MISSED: " + "; ".join(missed))
        return 1
    print(f"every page < {TARGET_MS:.0f} ms at 10,000 devices, query counts equal at 10 and 10,000")
    return 0


if __name__ == "__main__":
    sys.exit(main())
