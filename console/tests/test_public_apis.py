"""Public, documented APIs only: no private (underscore) name of Django, DRF, psycopg or any
other library anywhere in the project's own modules, and no model instance built by hand.

An upgrade that renames a private hook would otherwise turn every API call into a 500. The
scan is over the source (tests and migrations excluded), so it holds for code no test runs.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APPS = ("console", "devices", "licensing", "billing")
# Django documents these underscore names as API (Model._meta, the managers; reading a
# model state's `adding` and `db`).
ALLOWED_ATTRIBUTES = {"_meta", "_default_manager", "_base_manager"}
ALLOWED_STATE_READS = {"adding", "db"}
LIBRARIES = ("django", "rest_framework", "drf_spectacular", "psycopg", "celery", "kombu")


def project_modules() -> list[Path]:
    files = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            parts = path.relative_to(ROOT).parts
            if "tests" in parts or "migrations" in parts:
                continue
            files.append(path)
    return files


def _own_name(node: ast.expr) -> bool:
    """`self._x` and `cls._x` are the project's own attributes."""
    return isinstance(node, ast.Name) and node.id in {"self", "cls"}


def private_uses(source: str) -> list[str]:
    """Every use of another object's underscore attribute, private import or hand-built
    model instance in `source`, as "line: what"."""
    tree = ast.parse(source)
    parents: dict[ast.AST, ast.AST] = {}
    for parent in ast.walk(tree):
        for child in ast.iter_child_nodes(parent):
            parents[child] = parent
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            name = node.attr
            if not name.startswith("_") or (name.startswith("__") and name.endswith("__")):
                if name == "__new__":
                    found.append(f"{node.lineno}: .__new__ (an instance built by hand)")
                continue
            if name in ALLOWED_ATTRIBUTES or _own_name(node.value):
                continue
            if name == "_state":
                parent = parents.get(node)
                reads = (
                    isinstance(parent, ast.Attribute)
                    and parent.attr in ALLOWED_STATE_READS
                    and isinstance(parent.ctx, ast.Load)
                )
                if reads:
                    continue
            found.append(f"{node.lineno}: .{name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            library = node.module.split(".")[0] in LIBRARIES
            private_module = any(part.startswith("_") for part in node.module.split("."))
            for alias in node.names:
                if library and (private_module or alias.name.startswith("_")):
                    found.append(f"{node.lineno}: from {node.module} import {alias.name}")
                if library and alias.name == "ModelState":
                    found.append(f"{node.lineno}: ModelState (an instance built by hand)")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] in LIBRARIES and any(p.startswith("_") for p in parts):
                    found.append(f"{node.lineno}: import {alias.name}")
    return found


def test_the_scan_finds_what_it_must():
    """The scan itself: each kind of private use is found, public ones are not."""
    source = (
        "from django.db.models.base import ModelState\n"
        "from psycopg import _queries\n"
        "from django.utils._os import safe_join\n"
        "cursor._send_query_prepared(1)\n"
        "conn._prepare_cursor(x)\n"
        "obj._state.adding = False\n"
        "obj = Model.__new__(Model)\n"
        "request._request.META\n"
    )
    assert len(private_uses(source)) == 8
    public = (
        "self._cache = 1\n"
        "Model._meta.get_field('x')\n"
        "Model._default_manager.all()\n"
        "if obj._state.adding: pass\n"
        "alias = obj._state.db\n"
        "from django.db import connection\n"
    )
    assert private_uses(public) == []


@pytest.mark.parametrize("path", project_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_names_of_libraries(path):
    uses = private_uses(path.read_text(encoding="utf-8"))
    assert uses == [], f"{path.relative_to(ROOT)} uses private names: {uses}"
