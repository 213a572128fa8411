"""Prepared statements on the hot path (console.prepared): prepared once per PostgreSQL
session, counted like any query, and a connection that loses them falls back to plain SQL."""

import pytest
from django.db import ProgrammingError, connection, transaction
from django.test.utils import CaptureQueriesContext

from console import prepared


def _run(value: int) -> int:
    with connection.cursor() as cursor:
        prepared.execute(
            cursor,
            name="fc_test_add_one",
            sql="SELECT %s + 1",
            params=[value],
            types=["bigint"],
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_prepared_once_per_session_then_executed(postgres_only):
    prepared._prepared.pop(connection.connection, None)
    with CaptureQueriesContext(connection) as ctx:
        assert _run(1) == 2
        assert _run(41) == 42
    statements = [q["sql"].split(" ", 1)[0] for q in ctx.captured_queries]
    assert statements == ["PREPARE", "EXECUTE", "EXECUTE"]


@pytest.mark.django_db(transaction=True)
def test_a_lost_prepared_statement_falls_back_to_plain_sql(postgres_only):
    """What a transaction-pooling proxy does: the session no longer has the statement."""
    assert _run(1) == 2
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    try:
        with CaptureQueriesContext(connection) as ctx:
            assert _run(2) == 3
            assert _run(3) == 4
        assert [q["sql"] for q in ctx.captured_queries][-1].startswith("SELECT")
    finally:
        prepared._plain_only.discard(connection.connection)
        prepared._prepared.pop(connection.connection, None)


@pytest.mark.django_db
def test_inside_a_transaction_a_lost_statement_is_an_error(postgres_only):
    """In a transaction the failed EXECUTE has already aborted it: no silent retry."""
    assert _run(1) == 2
    with connection.cursor() as cursor:
        cursor.execute("DEALLOCATE ALL")
    with pytest.raises(ProgrammingError), transaction.atomic():
        _run(2)
    prepared._prepared.pop(connection.connection, None)


@pytest.mark.django_db
def test_other_databases_run_the_plain_statement():
    if connection.vendor == "postgresql":
        pytest.skip("covered above")
    with CaptureQueriesContext(connection) as ctx:
        assert _run(1) == 2
    assert ctx.captured_queries[0]["sql"].startswith("SELECT")
