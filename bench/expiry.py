"""Benchmark: the nightly expiry job (R5) and the renewal reminder job (R11) at scale.

1. Recreates a PostgreSQL database of its own (BENCH_EXPIRY_DATABASE_URL, default
   postgres://postgres@127.0.0.1:5432/fieldconsole_bench_expiry) and migrates it.
2. Seeds 10,000 tenants, each with an owner and a device with two cameras, and 1,000,000
   licenses (INSERT … SELECT generate_series): 100,000 due (expired at today's 00:00
   Asia/Shanghai, 10 per tenant, 5 of them bound) and 900,000 that expire 60–400 days
   from now (one per tenant bound, so the devices drop to degraded, not to none).
3. Three rounds (BENCH_ROUNDS) of: reset the due rows to active (vacuum, checkpoint), the
   raw baseline — one SQL UPDATE of the due rows (status → expired) — timed; reset; for
   context, the same UPDATE with the audit rows inserted by the same statement; reset;
   then the job: licensing.expiry.licenses_expire_due in a fresh process (the code the task
   and the `expirelicenses` command run): wall time, SQL statements, peak RSS (VmHWM) of
   that process. Its expiry-date notices are queued on kombu's in-memory broker (nothing
   leaves the process). The medians of the rounds are compared.
4. reminders: the job's notices are deleted, then licensing.reminders.reminders_send_due claims
   them again for the 10,000 tenants (milestone 0): time and statements. Then the first
   2,000 (BENCH_SEND) reminders are built and their emails stored in the outbox with
   reminder_send, as the send tasks do: time and statements per email. Statements per
   tenant = claim statements / tenants + statements per email.

Targets: job ≤ 2 × the raw UPDATE (medians); job peak memory < 150 MB; a small constant
number of statements per tenant for reminders (≤ 9). Exits non-zero when a target is missed.

Run: `make bench`, or `.venv/bin/python bench/expiry.py` from the project folder.
Options by environment: BENCH_EXPIRY_DATABASE_URL, BENCH_LICENSES (1000000), BENCH_DUE
(100000), BENCH_TENANTS (10000), BENCH_ROUNDS (3), BENCH_SEND (2000). Results: printed, and
bench/out/expiry.json. Takes about three minutes on 2 cores (seeding ~30 s).
"""

import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
DATABASE_URL = os.environ.get(
    "BENCH_EXPIRY_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/fieldconsole_bench_expiry"
)
LICENSES = int(os.environ.get("BENCH_LICENSES", "1000000"))
DUE = int(os.environ.get("BENCH_DUE", "100000"))
TENANTS = int(os.environ.get("BENCH_TENANTS", "10000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
# Emails built and sent in the reminder phase (each ~15 ms of CPU: all 10,000 take minutes).
SEND_SAMPLE = int(os.environ.get("BENCH_SEND", "2000"))
TARGET_RATIO = 2.0
TARGET_RSS_MB = 150.0
# Per tenant: the claim's share, then one reminder's claim, reads, the outbox INSERT of all
# its emails (R13, one per recipient) and the "sent" mark: 7 when the job itself talked to
# the mail server, 8 with the outbox, 9 with the tenant's extra reminder recipients (a read
# of their own), and a few ten-thousandths for the claim's share. The point is that it stays
# the same whatever the number of licenses and devices (the fixed ceiling below).
TARGET_STATEMENTS_PER_TENANT = 9.01

sys.path.insert(0, str(ROOT))
os.environ["DATABASE_URL"] = DATABASE_URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# Not a test run: tasks are published, never run inline (see _isolate_broker).
os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"


def log(message: str) -> None:
    print(message, flush=True)


def rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not getrusage's ru_maxrss: on Linux
    that carries over the parent's peak into a child started with fork + exec."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


# --- database ----------------------------------------------------------------------------


def recreate_database() -> None:
    import psycopg

    parts = urlsplit(DATABASE_URL)
    name = parts.path.lstrip("/")
    admin_url = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def setup_django() -> None:
    import django

    django.setup()
    _isolate_broker()


def _isolate_broker() -> None:
    """Queue tasks on kombu's in-memory transport: publishing still costs what it costs
    in-process, but no message reaches the shared filesystem queue or a Redis."""
    from console.celery import app

    app.conf.broker_url = "memory://"
    app.conf.broker_transport_options = {}
    app._pool = None
    app.amqp._producer_pool = None


class StatementCounter:
    def __init__(self):
        self.count = 0

    def __call__(self, execute, sql, params, many, context):
        self.count += 1
        return execute(sql, params, many, context)


def counting():
    from django.db import connection

    counter = StatementCounter()
    return counter, connection.execute_wrapper(counter)


def seed() -> dict:
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from console.models import Membership, Tenant, User
    from console.timeutils import business_date, start_of_business_day
    from devices.models import Camera, FieldDevice

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    log(f"  migrated in {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    now = timezone.now()
    tenants = Tenant.objects.bulk_create(
        [
            Tenant(name=f"Bench {i}", slug=f"bench-{i}", language="en" if i % 2 else "zh-hans")
            for i in range(TENANTS)
        ],
        batch_size=5000,
    )
    users = User.objects.bulk_create(
        [User(email=f"owner{i}@bench.example.com", password="!") for i in range(TENANTS)],
        batch_size=5000,
    )
    Membership.objects.bulk_create(
        [
            Membership(user=u, tenant=t, role=Membership.Role.OWNER)
            for u, t in zip(users, tenants, strict=True)
        ],
        batch_size=5000,
    )
    devices = FieldDevice.objects.bulk_create(
        [
            FieldDevice(tenant=t, serial=f"dev_{i}", name=f"Truck {i}")
            for i, t in enumerate(tenants)
        ],
        batch_size=5000,
    )
    Camera.objects.bulk_create(
        [
            Camera(device=d, slot=slot, name=f"cam {slot}", width=1280, height=720)
            for d in devices
            for slot in (1, 2)
        ],
        batch_size=5000,
    )
    today = business_date(now)
    due_at = start_of_business_day(today)  # expired at today's 00:00 CST: due now
    later = LICENSES - DUE
    with connection.cursor() as cursor:
        # Tenants and devices are numbered 1..TENANTS in id order: license g goes to tenant
        # g mod TENANTS. Due licenses: of each tenant's ten, every second one (g div
        # TENANTS even) bound to its device. Later ones: the first of each tenant bound.
        cursor.execute(
            f"""
            WITH t AS (SELECT array_agg(id ORDER BY id) AS ids FROM console_tenant),
                 d AS (SELECT array_agg(id ORDER BY tenant_id) AS ids FROM devices_fielddevice)
            INSERT INTO licensing_license
                (tenant_id, device_id, starts_at, expires_at, status, created_at)
            SELECT t.ids[1 + mod(g, {TENANTS})],
                   CASE WHEN mod(g / {TENANTS}, 2) = 0 THEN d.ids[1 + mod(g, {TENANTS})] END,
                   %(due_at)s - interval '365 days',
                   %(due_at)s,
                   'active',
                   %(due_at)s - interval '365 days'
            FROM generate_series(0, {DUE - 1}) AS g, t, d
            """,
            {"due_at": due_at},
        )
        cursor.execute(
            f"""
            WITH t AS (SELECT array_agg(id ORDER BY id) AS ids FROM console_tenant),
                 d AS (SELECT array_agg(id ORDER BY tenant_id) AS ids FROM devices_fielddevice)
            INSERT INTO licensing_license
                (tenant_id, device_id, starts_at, expires_at, status, created_at)
            SELECT t.ids[1 + mod(g, {TENANTS})],
                   CASE WHEN g < {TENANTS} THEN d.ids[1 + mod(g, {TENANTS})] END,
                   %(now)s - interval '1 day',
                   %(start)s + (60 + mod(g, 341)) * interval '1 day',
                   'active',
                   %(now)s - interval '1 day'
            FROM generate_series(0, {later - 1}) AS g, t, d
            """,
            {"now": now, "start": start_of_business_day(today)},
        )
        cursor.execute("VACUUM ANALYZE")
    log(
        f"  seeded {TENANTS:,} tenants, {LICENSES:,} licenses ({DUE:,} due) in "
        f"{time.perf_counter() - started:.1f} s"
    )
    return {"due_at": due_at.isoformat()}


def raw_update() -> dict:
    from django.db import connection, transaction
    from django.utils import timezone

    at = timezone.now()
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "UPDATE licensing_license SET status = 'expired' "
            "WHERE status = 'active' AND expires_at <= %s",
            [at],
        )
        rows = cursor.rowcount
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": seconds}


def raw_update_and_audit() -> dict:
    """For context, not the target: the bare SQL floor of the job's work, the same UPDATE
    with its audit rows written by the same statement (no batches, no notices)."""
    from django.db import connection, transaction
    from django.utils import timezone

    at = timezone.now()
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            """
            WITH expired AS (
                UPDATE licensing_license SET status = 'expired'
                WHERE status = 'active' AND expires_at <= %(at)s
                RETURNING id, tenant_id, expires_at
            )
            INSERT INTO console_auditevent
                (tenant_id, actor_id, actor_label, action, target_type, target_id, data,
                 created_at)
            SELECT tenant_id, NULL, 'bench', 'license.expired', 'licensing.license',
                   id::text, jsonb_build_object('expires_at', expires_at), %(at)s
            FROM expired
            """,
            {"at": at},
        )
        rows = cursor.rowcount
    return {"rows": rows, "seconds": time.perf_counter() - started}


def reset() -> None:
    """Put the table back as the raw UPDATE found it: same rows due, no audit, no notices."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("UPDATE licensing_license SET status = 'active' WHERE status = 'expired'")
        cursor.execute("DELETE FROM console_auditevent WHERE action = 'license.expired'")
        cursor.execute("DELETE FROM licensing_sentreminder")
        cursor.execute("VACUUM ANALYZE licensing_license")
        cursor.execute("VACUUM ANALYZE console_auditevent")
        cursor.execute("VACUUM ANALYZE licensing_sentreminder")
        cursor.execute("CHECKPOINT")


def run_child(phase: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--phase", phase],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- phases run in a fresh process ------------------------------------------------------------


def phase_job() -> dict:
    setup_django()
    from licensing.expiry import licenses_expire_due

    baseline = rss_mb()
    counter, wrapper = counting()
    started = time.perf_counter()
    with wrapper:
        run = licenses_expire_due(actor="bench")
    seconds = time.perf_counter() - started
    return {
        "seconds": seconds,
        "expired": run.expired,
        "notices": run.notices,
        "statements": counter.count,
        "rss_baseline_mb": baseline,
        "rss_peak_mb": rss_mb(),
    }


def phase_reminders() -> dict:
    setup_django()
    from django.conf import settings
    from django.core import mail

    from console.models import OutboundEmail
    from licensing import reminders
    from licensing.models import SentReminder

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    SentReminder.objects.all().delete()
    OutboundEmail.objects.all().delete()

    claimed: list[int] = []
    real_dispatch = reminders.reminders_dispatch
    reminders.reminders_dispatch = lambda *, reminder_ids, inline=False: claimed.extend(
        reminder_ids
    )
    counter, wrapper = counting()
    started = time.perf_counter()
    with wrapper:
        run = reminders.reminders_send_due()
    claim_seconds = time.perf_counter() - started
    claim_statements = counter.count
    reminders.reminders_dispatch = real_dispatch

    counter, wrapper = counting()
    outcomes: dict[str, int] = {}
    sent_messages = 0
    started = time.perf_counter()
    with wrapper:
        for reminder_id in claimed[:SEND_SAMPLE]:
            outcome = reminders.reminder_send(reminder_id=reminder_id)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if len(mail.outbox) >= 500:
                sent_messages += len(mail.outbox)
                mail.outbox = []
    send_seconds = time.perf_counter() - started
    # R13: reminder_send stores the emails in the outbox (delivery is the worker's, queued
    # on the in-memory broker here): the emails are the rows it stored.
    sent_messages += len(mail.outbox) + OutboundEmail.objects.count()
    tenants = len(set(SentReminder.objects.values_list("tenant_id", flat=True)))
    return {
        "claimed": {str(k): v for k, v in run.claimed.items()},
        "tenants": tenants,
        "claim_seconds": claim_seconds,
        "claim_statements": claim_statements,
        "send_seconds": send_seconds,
        "send_statements": counter.count,
        "outcomes": outcomes,
        "emails": sent_messages,
        # claim statements spread over every tenant, plus what one email costs
        "statements_per_tenant": claim_statements / max(tenants, 1)
        + counter.count / max(min(SEND_SAMPLE, len(claimed)), 1),
        "send_statements_per_email": counter.count / max(min(SEND_SAMPLE, len(claimed)), 1),
        "rss_peak_mb": rss_mb(),
    }


# --- main ----------------------------------------------------------------------------------------


def main() -> int:
    if "--phase" in sys.argv:
        phase = sys.argv[sys.argv.index("--phase") + 1]
        result = {"job": phase_job, "reminders": phase_reminders}[phase]()
        print(json.dumps(result))
        return 0

    log(f"bench/expiry.py on {DATABASE_URL}")
    recreate_database()
    setup_django()
    seed()

    # Alternate raw UPDATE and job, each on the same freshly reset table, and compare the
    # medians: one run of each is at the mercy of whatever else the machine is doing.
    raws, floors, jobs = [], [], []
    for round_ in range(1, ROUNDS + 1):
        reset()
        raws.append(raw_update())
        reset()
        floors.append(raw_update_and_audit())
        reset()
        jobs.append(run_child("job"))
        raw, floor, job = raws[-1], floors[-1], jobs[-1]
        log(
            f"  round {round_}: raw UPDATE {raw['rows']:,} rows {raw['seconds']:.3f} s; "
            f"raw UPDATE + audit INSERT {floor['seconds']:.3f} s; "
            f"expiry job {job['expired']:,} licenses {job['seconds']:.3f} s "
            f"({job['statements']} statements, {job['notices']:,} notices queued, "
            f"peak RSS {job['rss_peak_mb']:.0f} MB, {job['rss_baseline_mb']:.0f} MB after "
            "start-up)"
        )
    raw_median = statistics.median(r["seconds"] for r in raws)
    floor_median = statistics.median(f["seconds"] for f in floors)
    job_median = statistics.median(j["seconds"] for j in jobs)
    ratio = job_median / raw_median
    rss_peak = max(j["rss_peak_mb"] for j in jobs)
    log(
        f"  median: raw UPDATE {raw_median:.3f} s, raw UPDATE + audit {floor_median:.3f} s, "
        f"expiry job {job_median:.3f} s → "
        f"{ratio:.2f} × (target ≤ {TARGET_RATIO:.0f} ×); peak RSS {rss_peak:.0f} MB "
        f"(target < {TARGET_RSS_MB:.0f} MB)"
    )

    reminders = run_child("reminders")
    log(
        f"  reminders: {reminders['tenants']:,} tenants claimed in "
        f"{reminders['claim_seconds']:.2f} s, {reminders['claim_statements']} statements; "
        f"{reminders['emails']:,} emails built and sent in {reminders['send_seconds']:.1f} s "
        f"({reminders['send_seconds'] / max(reminders['emails'], 1) * 1000:.1f} ms and "
        f"{reminders['send_statements_per_email']:.2f} statements each); statements per "
        f"tenant: {reminders['statements_per_tenant']:.2f}; outcomes {reminders['outcomes']}"
    )

    ok = (
        all(r["rows"] == DUE for r in raws)
        and all(j["expired"] == DUE for j in jobs)
        and ratio <= TARGET_RATIO
        and rss_peak < TARGET_RSS_MB
        and reminders["tenants"] == TENANTS
        and reminders["emails"] == min(SEND_SAMPLE, TENANTS)
        and reminders["statements_per_tenant"] <= TARGET_STATEMENTS_PER_TENANT
    )
    OUT.mkdir(parents=True, exist_ok=True)
    result = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "licenses": LICENSES,
        "due": DUE,
        "tenants": TENANTS,
        "rounds": ROUNDS,
        "raw_update": raws,
        "raw_update_and_audit": floors,
        "raw_update_and_audit_median_seconds": floor_median,
        "job": jobs,
        "raw_median_seconds": raw_median,
        "job_median_seconds": job_median,
        "ratio": ratio,
        "job_rss_peak_mb": rss_peak,
        "reminders": reminders,
        "targets_met": ok,
    }
    (OUT / "expiry.json").write_text(json.dumps(result, indent=2))
    log(f"  targets {'met' if ok else 'MISSED'}; details in bench/out/expiry.json")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
