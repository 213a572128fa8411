"""The admin at production size: counts, search and money shared by every changelist.

A changelist of 1,000,000 licenses must answer in well under a second (bench/admin.py), so
three things stock Django does are replaced here:

- **Counting.** The stock paginator runs COUNT(*) over the whole filtered table on every
  page. `LargeTablePaginator` counts at most `EXACT_COUNT_LIMIT` rows exactly; beyond that it
  takes PostgreSQL's planner estimate (through `QuerySet.explain()`), which for the
  unfiltered table is the statistics' row count. Admins also set
  `show_full_result_count = False`, or Django counts the unfiltered table once more.
- **Searching.** Stock search ORs every search field, joins included, into one WHERE, which
  on a big table is a full scan of a join (2.5 s for licenses) — and `=id` compares the id
  cast to text, which no index serves. `IndexedSearchMixin` reads the same `search_fields`
  and runs them as look-ups an index serves: a number matches integer ids exactly; a field
  across a foreign key (`tenant__name`, `device__serial`) is matched on the related, small,
  table first and the big table is filtered by the keys found; the model's own text fields
  are searched as declared (give big tables `__startswith`/`__exact` look-ups with a
  pattern index).
- **Money.** Computed money columns (sums) show two decimals (R2), never through float.
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_UP, Decimal

from django.core.exceptions import FieldDoesNotExist
from django.core.paginator import Paginator
from django.db import connections, models
from django.db.models import Q
from django.utils.formats import number_format
from django.utils.functional import cached_property
from django.utils.text import smart_split, unescape_string_literal

# Up to this many rows a changelist's count is exact; a page of 100 with a count this size
# costs a few milliseconds on any index.
EXACT_COUNT_LIMIT = 10_000
# A search that matches more related rows than this filters the big table by a subquery
# instead of a list of keys (an unselective term: the page is found early either way).
RELATED_KEYS_LIMIT = 1_000
CENTS = Decimal("0.01")


class LargeTablePaginator(Paginator):
    """A paginator whose count never scans a huge table (see the module docstring)."""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, models.QuerySet):
            return super().count
        capped = queryset.order_by()[: EXACT_COUNT_LIMIT + 1].count()
        if capped <= EXACT_COUNT_LIMIT:
            return capped
        estimate = planner_estimate(queryset)
        if estimate is None:
            return queryset.count()  # SQLite (development): exact, the tables are small
        # The estimate may be low for a filtered query; never below what was counted.
        return max(estimate, capped)


def planner_estimate(queryset: models.QuerySet) -> int | None:
    """PostgreSQL's estimate of the rows `queryset` returns, from its statistics; None on
    other databases."""
    if connections[queryset.db].vendor != "postgresql":
        return None
    plan = json.loads(queryset.order_by().explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


class IndexedSearchMixin:
    """Runs `search_fields` as index look-ups (see the module docstring).

    Each word of the search must match (as in stock Django); a word matches when any of the
    model's own fields matches it. Fields across a relation are matched on the related table
    with all the words at once ("Acme Mining" finds the tenant of that name), and the whole
    term, when it is a number, matches the integer fields (`=id`, `=order__id`) exactly."""

    def get_search_results(self, request, queryset, search_term):
        words = _words(search_term)
        if not words:
            return queryset, False
        own, integers, related = _route(queryset.model, self.get_search_fields(request))
        found = Q()
        matched = False
        if own:
            found |= Q.create(
                [Q.create([(f, w) for f in own], connector=Q.OR) for w in words],
                connector=Q.AND,
            )
            matched = True
        number = _number(search_term)
        if number is not None:
            for column in integers:
                found |= Q(**{column: number})
                matched = True
        for relation, lookups in related.items():
            condition = _related_condition(queryset.model, relation, lookups, words)
            if condition is not None:
                found |= condition
                matched = True
        if not matched:
            return queryset.none(), False
        return queryset.filter(found), False


def _words(term: str) -> list[str]:
    words = []
    for bit in smart_split(term or ""):
        if bit.startswith(('"', "'")) and bit[0] == bit[-1] and len(bit) > 1:
            bit = unescape_string_literal(bit)
        if bit:
            words.append(bit)
    return words


def _number(term: str) -> int | None:
    text = (term or "").strip()
    if text.isdigit() and len(text) < 19:
        return int(text)
    return None


def _lookup(spec: str) -> str:
    """Django's search-field syntax as an ORM look-up: ^ starts with, = exact (case
    insensitive), a trailing look-up as written, else contains."""
    if spec.startswith("^"):
        return f"{spec[1:]}__istartswith"
    if spec.startswith("="):
        return f"{spec[1:]}__iexact"
    last = spec.rsplit("__", 1)[-1]
    if "__" in spec and last in _LOOKUPS:
        return spec
    return f"{spec}__icontains"


_LOOKUPS = {"exact", "iexact", "startswith", "istartswith", "contains", "icontains"}


def _route(model, search_fields) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """Split search fields into the model's own text look-ups, its integer columns matched
    by a number, and {relation: look-ups on the related model}."""
    own, integers, related = [], [], {}
    opts = model._meta
    for spec in map(str, search_fields):
        prefix = spec[0] if spec[:1] in ("^", "=") else ""
        path = spec[len(prefix) :]
        first, _sep, rest = path.partition("__")
        try:
            field = opts.pk if first == "pk" else opts.get_field(first)
        except FieldDoesNotExist:
            own.append(_lookup(spec))
            continue
        if not field.is_relation and isinstance(field, (models.AutoField, models.IntegerField)):
            integers.append(field.attname)  # `=id`, `id__exact`: matched by a number only
        elif field.is_relation and rest:
            target = field.related_model._meta
            if rest in ("id", "pk", target.pk.name) and field.concrete:
                integers.append(field.attname)  # `=order__id`: the key column itself
            else:
                related.setdefault(first, []).append(_lookup(prefix + rest))
        else:
            own.append(_lookup(spec))
    return own, integers, related


def _related_condition(model, relation: str, lookups: list[str], words: list[str]) -> Q | None:
    """The rows of `model` whose `relation` matches every word on some look-up, as a filter
    on the key column: a short list of keys when few match, else a subquery."""
    field = model._meta.get_field(relation)
    related = field.related_model
    matching = related._default_manager.filter(
        Q.create(
            [Q.create([(f, w) for f in lookups], connector=Q.OR) for w in words],
            connector=Q.AND,
        )
    ).order_by()
    if field.concrete:  # a foreign key on this model: tenant_id IN (…)
        column, key = f"{field.attname}__in", "pk"
    else:  # a reverse one-to-one (an order's payment): id IN (… its order_id …)
        column, key = "pk__in", field.field.attname
    keys = list(matching.values_list(key, flat=True)[: RELATED_KEYS_LIMIT + 1])
    if not keys:
        return None
    if len(keys) > RELATED_KEYS_LIMIT:
        return Q(**{column: matching.values(key)})
    return Q(**{column: keys})


def money(value) -> str:
    """A money amount with two decimals (R2), "18000" → "18000.00", through Decimal."""
    if value is None:
        return "—"
    return number_format(Decimal(value).quantize(CENTS, ROUND_HALF_UP), decimal_pos=2)
