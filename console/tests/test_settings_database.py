"""The default configuration is production: on PostgreSQL, persistent connections checked
before reuse, server-side binding and prepared statements, with nothing to set; a transaction
pooler turns binding and preparing off. Each case evaluates console.settings afresh in a
child process with only the environment it names."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PG = "postgres://u@db.example:5432/fc"


def database_settings(**env: str) -> dict:
    code = (
        "import json, django, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'console.settings'; "
        "from django.conf import settings; "
        "print(json.dumps(settings.DATABASES['default'], default=str))"
    )
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**keep, "SECRET_KEY": "x" * 50, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("extra", [{}, {"DEBUG": "false"}])
def test_postgresql_defaults_are_fast_and_safe(extra):
    db = database_settings(DATABASE_URL=PG, **extra)
    assert db["CONN_MAX_AGE"] == 600
    assert db["CONN_HEALTH_CHECKS"] is True
    assert db["OPTIONS"]["server_side_binding"] is True
    assert db["OPTIONS"]["prepare_threshold"] == 5
    assert db["DISABLE_SERVER_SIDE_CURSORS"] is False


def test_a_transaction_pooler_turns_binding_and_preparing_off():
    db = database_settings(DATABASE_URL=PG, DB_TRANSACTION_POOLING="true")
    options = db.get("OPTIONS", {})
    # Django's own default then: client-side binding, psycopg preparing nothing.
    assert "server_side_binding" not in options and "prepare_threshold" not in options
    assert db["DISABLE_SERVER_SIDE_CURSORS"] is True
    assert db["CONN_MAX_AGE"] == 600


def test_the_embedded_default_needs_no_setting():
    db = database_settings()
    assert db["ENGINE"] == "django.db.backends.sqlite3"
    assert db["CONN_MAX_AGE"] == 0
    assert "server_side_binding" not in db.get("OPTIONS", {})
