"""Prepared statements on the hot path (console.prepared): prepared once per PostgreSQL
session by psycopg and executed from then on, counted like any query, and a connection
that loses them falls back to plain SQL."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.db import ProgrammingError, connection, transaction
from django.test.utils import CaptureQueriesContext

from console import prepared

SQL = "SELECT %s + 1 AS fc_prepared_test"


def _run(value: int) -> int:
    [(result,)] = prepared.fetchall(SQL, [value])
    return result


def _server_statement() -> tuple[int, int] | None:
    """(executions, prepared statements) of SQL in this session, as PostgreSQL counts them."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans + custom_plans FROM pg_prepared_statements "
            "WHERE statement = 'SELECT $1 + 1 AS fc_prepared_test'"
        )
        rows = cursor.fetchall()
    return (sum(r[0] for r in rows), len(rows)) if rows else None


def _lose_prepared_statements() -> None:
    """What a transaction-pooling proxy does: the server session no longer has them, and
    psycopg does not know (sent below psycopg's bookkeeping)."""
    result = connection.connection.pgconn.exec_(b"DEALLOCATE ALL")
    assert result.status == 1  # COMMAND_OK


@pytest.mark.django_db
def test_prepared_once_per_session_then_executed(postgres_only):
    with CaptureQueriesContext(connection) as ctx:
        assert _run(1) == 2
        assert _run(41) == 42
        assert _run(99) == 100
    # Counted and logged like any other query, as the statement sent (values apart).
    assert [q["sql"] for q in ctx.captured_queries] == ["SELECT $1 + 1 AS fc_prepared_test"] * 3
    # One server-side statement, executed three times.
    assert _server_statement() == (3, 1)


@pytest.mark.django_db(transaction=True)
def test_a_lost_prepared_statement_falls_back_to_plain_sql(postgres_only):
    assert _run(1) == 2
    _lose_prepared_statements()
    try:
        assert _run(2) == 3
        assert connection.connection in prepared._plain_only
        assert _run(3) == 4
        assert _server_statement() is None  # not prepared again on this connection
    finally:
        prepared._plain_only.discard(connection.connection)


@pytest.mark.django_db(transaction=True)
def test_a_name_taken_on_the_server_falls_back_to_plain_sql(postgres_only):
    """Another client's statement of the name psycopg picks next, on a shared session."""
    connection.ensure_connection()
    raw = connection.connection
    taken = f"_pg3_{raw._prepared._prepared_idx}".encode()
    assert raw.pgconn.exec_(b"PREPARE " + taken + b" AS SELECT 1").status == 1
    try:
        assert _run(5) == 6
        assert connection.connection in prepared._plain_only
    finally:
        prepared._plain_only.discard(connection.connection)


@pytest.mark.django_db
def test_inside_a_transaction_a_lost_statement_is_an_error(postgres_only):
    """In a transaction the failed execution has already aborted it: no silent retry."""
    assert _run(1) == 2
    _lose_prepared_statements()
    with pytest.raises(ProgrammingError), transaction.atomic():
        _run(2)
    assert connection.connection not in prepared._plain_only


@pytest.mark.django_db
def test_other_databases_run_the_plain_statement():
    if connection.vendor == "postgresql":
        pytest.skip("covered above")
    with CaptureQueriesContext(connection) as ctx:
        assert _run(1) == 2
    assert ctx.captured_queries[0]["sql"].startswith("SELECT")


@pytest.mark.django_db(transaction=True)
def test_with_autocommit_off_a_lost_statement_is_an_error(postgres_only):
    """Outside atomic() but in a transaction all the same: no silent retry either."""
    assert _run(1) == 2
    transaction.set_autocommit(False)
    try:
        _lose_prepared_statements()
        with pytest.raises(ProgrammingError):
            _run(2)
        assert connection.connection not in prepared._plain_only
    finally:
        transaction.rollback()
        transaction.set_autocommit(True)


@pytest.mark.django_db
def test_behind_a_transaction_pooler_statements_are_plain(postgres_only, monkeypatch):
    """DB_TRANSACTION_POOLING: a shared server session could hold another client's
    statement under psycopg's name, so nothing is prepared."""
    monkeypatch.setitem(connection.settings_dict, "DISABLE_SERVER_SIDE_CURSORS", True)
    with CaptureQueriesContext(connection) as ctx:
        assert _run(7) == 8
    assert ctx.captured_queries[0]["sql"] == "SELECT 7 + 1 AS fc_prepared_test"
    assert _server_statement() is None


@pytest.mark.django_db
def test_server_side_binding_everywhere_is_not_turned_into_preparing(postgres_only, monkeypatch):
    """With OPTIONS server_side_binding and no prepare_threshold, a threshold set here would
    prepare Django's own queries as well: the statement runs plain instead."""
    connection.ensure_connection()
    raw = connection.connection
    monkeypatch.setitem(connection.settings_dict, "OPTIONS", {"server_side_binding": True})
    monkeypatch.setattr(raw, "prepare_threshold", None)
    assert _run(1) == 2
    assert raw.prepare_threshold is None
    assert _server_statement() is None


@pytest.mark.parametrize(
    ("value", "expected"), [("true", "True"), ("false", "False"), (None, "False")]
)
def test_db_transaction_pooling_sets_djangos_own_setting(value, expected):
    env = {k: v for k, v in os.environ.items() if k != "DB_TRANSACTION_POOLING"}
    if value is not None:
        env["DB_TRANSACTION_POOLING"] = value
    env["DJANGO_SETTINGS_MODULE"] = "console.settings"
    code = (
        "from django.conf import settings; "
        "print(settings.DATABASES['default']['DISABLE_SERVER_SIDE_CURSORS'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == expected
