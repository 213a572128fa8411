"""Prepared statements for the few queries on the gateways' hot path.

Django sends every query as text with its values inlined, so PostgreSQL parses and plans it
on every call. For the API-key look-up and the entitlement statement that was most of the
database's work under load (bench/RESULTS.md). On PostgreSQL each of them is prepared once
per database session and then run with EXECUTE — through Django's cursor all the same, so
it is logged and counted like any other query. Other databases run the plain statement.

Behind a transaction-pooling proxy (PgBouncer) a session's prepared statement may be gone:
the first EXECUTE that finds it missing switches that connection back to plain statements.
"""

import re
import weakref

from django.db import DEFAULT_DB_ALIAS, ProgrammingError, connections

# The underlying driver connection → names prepared in its session. Keyed by the driver's
# object, so a reconnect (a new object, a new session) starts empty.
_prepared: "weakref.WeakKeyDictionary[object, set[str]]" = weakref.WeakKeyDictionary()
_plain_only: "weakref.WeakSet[object]" = weakref.WeakSet()
_PLACEHOLDER = re.compile(r"%s")
_MISSING_PREPARED_STATEMENT = "26000"


def execute(cursor, *, name: str, sql: str, params: list, types: list[str], conn=None) -> None:
    """Run `sql` (with %s placeholders, one per entry of `params`, whose PostgreSQL types
    are `types`) on `cursor` of `conn` (default: the default database), as prepared
    statement `name` on PostgreSQL."""
    conn = conn or connections[DEFAULT_DB_ALIAS]
    raw = conn.connection
    if conn.vendor != "postgresql" or raw is None or raw in _plain_only:
        cursor.execute(sql, params)
        return
    names = _prepared.setdefault(raw, set())
    if name not in names:
        numbers = iter(range(1, len(params) + 1))
        numbered = _PLACEHOLDER.sub(lambda _m: f"${next(numbers)}", sql)
        cursor.execute(f"PREPARE {name} ({', '.join(types)}) AS {numbered}")
        names.add(name)
    placeholders = ", ".join(["%s"] * len(params))
    try:
        cursor.execute(f"EXECUTE {name} ({placeholders})", params)
    except ProgrammingError as exc:
        missing = getattr(exc.__cause__, "sqlstate", None) == _MISSING_PREPARED_STATEMENT
        if not missing or conn.in_atomic_block:
            raise
        _plain_only.add(raw)
        cursor.execute(sql, params)
