"""Shared machinery of the in-process benchmarks (bench/admin.py, bench/console_pages.py):
Django in this process on a PostgreSQL database of the benchmark's own, production settings
(DEBUG off), pages asked through the Django test client.

This module only helps the scripts beside it; running it measures nothing."""

import contextlib
import os
import re
import sys
import warnings
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent


def configure(database_url: str) -> None:
    """The environment Django reads at set-up: the bench database, DEBUG off."""
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "console.settings"
    os.environ["DEBUG"] = "false"
    os.environ["ALLOWED_HOSTS"] = "testserver"
    os.environ.setdefault("SECRET_KEY", "bench-only-secret-key-not-for-production-0123456789abcdef")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    # whitenoise's note that var/static/ is missing (no collectstatic in a bench run)
    warnings.filterwarnings("ignore", message="No directory at")


def log(message: str) -> None:
    print(message, flush=True)


def fail(message: str) -> None:
    sys.stdout.flush()
    print(f"bench/{Path(sys.argv[0]).name}: {message}", file=sys.stderr)
    sys.exit(1)


def ensure_database(database_url: str, variable: str) -> None:
    """Create the bench database when missing (dropped first with BENCH_FRESH_DB=1)."""
    import psycopg
    from psycopg import errors

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if not re.fullmatch(r"[a-z0-9_]+", name):
        fail(f"unexpected database name {name!r} in {variable}")
    admin_url = parts._replace(path="/postgres").geturl()
    try:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            if os.environ.get("BENCH_FRESH_DB") == "1":
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
            if found.fetchone() is None:
                with contextlib.suppress(errors.DuplicateDatabase):
                    conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        fail(f"PostgreSQL is not reachable at {admin_url}: {exc}")


def setup_django(database_url: str, variable: str) -> None:
    ensure_database(database_url, variable)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def seeded(mark: str) -> bool:
    """Whether the seed finished: its last step creates the one-row table `mark`."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [mark])
        return cursor.fetchone()[0] is not None
