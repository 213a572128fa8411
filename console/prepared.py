"""Prepared statements for the few queries on the gateways' hot path.

Django binds every query's values on the client and sends it as text, so PostgreSQL parses
and plans it on every call, and psycopg quotes every value and parses every result as text.
For the API-key look-up and the entitlement statement that was most of the work under load
(bench/RESULTS.md). On PostgreSQL they go through psycopg's own server-side binding instead:
prepared once per database session by psycopg (protocol-level Parse, then Bind/Execute with
the values apart from the SQL), with results in psycopg's binary format. The cursor is still
wrapped by Django, so the statement is logged and counted like any other query
(CaptureQueriesContext, django.db.backends logging). Other databases run the plain statement.

Plain statements are also used on PostgreSQL when:
- the deployment goes through a transaction-pooling proxy (`DB_TRANSACTION_POOLING`, which
  sets Django's own DISABLE_SERVER_SIDE_CURSORS, needed there in any case): psycopg names
  its statements _pg3_0, _pg3_1, … on every connection, so on a server session shared by
  several clients a name could stand for another client's statement.
- the database OPTIONS turn on server-side binding for every query without a
  prepare_threshold: preparing for this module would then prepare Django's queries too.
Should a statement still go missing (a proxy, DISCARD ALL), the first execution that finds
it so switches that connection back to plain statements; inside a transaction the failure
has aborted it, so it is raised instead.
"""

import weakref

import psycopg
from django.db import DEFAULT_DB_ALIAS, ProgrammingError, connections

# Driver connections that lost a prepared statement: plain statements from then on. Keyed
# by the driver's object, so a reconnect (a new object, a new session) prepares again.
_plain_only: "weakref.WeakSet[object]" = weakref.WeakSet()
# The statement this connection prepared is not there, or one of the same name already is.
_LOST_PREPARED_STATEMENT = {"26000", "42P05"}


class PreparedCursor(psycopg.Cursor):
    """psycopg's server-side binding cursor, always asking for a prepared statement and
    binary results. psycopg keeps one prepared statement per query text and parameter types
    on each connection, and forgets them itself on ROLLBACK, DISCARD ALL or DEALLOCATE ALL.
    Binary results give the same Python values as Django's text loaders for what these
    statements read (integers, text, booleans, timestamps, numerics; not json)."""

    def execute(self, query, params=None, *, prepare=None, binary=None):
        return super().execute(query, params, prepare=True, binary=True)

    def _send_query_prepared(self, name, pgq, *, binary=None):
        super()._send_query_prepared(name, pgq, binary=binary)
        # As an unprepared execution does: Django's query log reads the statement here.
        self._query = pgq


def _may_prepare(conn, raw) -> bool:
    if raw in _plain_only or conn.settings_dict.get("DISABLE_SERVER_SIDE_CURSORS"):
        return False
    if raw.prepare_threshold is None:
        if conn.settings_dict.get("OPTIONS", {}).get("server_side_binding"):
            return False
        # Django turns psycopg's automatic preparation off, and without a threshold psycopg
        # ignores prepare=True too. Django's own cursors bind on the client and never
        # prepare, whatever the threshold: only PreparedCursor asks.
        raw.prepare_threshold = 5
    return True


def fetchall(sql: str, params: list, *, using: str = DEFAULT_DB_ALIAS) -> list[tuple]:
    """The rows of `sql` (with %s placeholders, one per entry of `params`), run as a
    prepared statement on PostgreSQL and as a plain one elsewhere."""
    conn = connections[using]
    if conn.vendor == "postgresql":
        conn.close_if_health_check_failed()
        conn.ensure_connection()
        raw = conn.connection
        if _may_prepare(conn, raw):
            # One PreparedCursor per driver connection, kept open between calls (creating
            # one costs about as much as the rest of the call's Python work); a reconnect
            # (a new driver connection) gets a new one. Django wraps it on every call, so
            # whether queries are logged is decided per call, as for any cursor.
            cached = getattr(conn, "_fc_prepared_cursor", None)
            if cached is None or cached.connection is not raw or cached.closed:
                cached = conn._fc_prepared_cursor = PreparedCursor(raw)
            with conn.wrap_database_errors:
                cursor = conn._prepare_cursor(cached)
            try:
                cursor.execute(sql, params)
                return cursor.fetchall()
            except ProgrammingError as exc:
                lost = getattr(exc.__cause__, "sqlstate", None) in _LOST_PREPARED_STATEMENT
                # In a transaction (atomic, or autocommit off) the failure aborted it.
                if not lost or conn.in_atomic_block or not conn.get_autocommit():
                    raise
                _plain_only.add(raw)
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()
