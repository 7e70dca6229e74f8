"""What a department may read of one dataset, as DuckDB sees it: the columns and the row filter of
the grant it reads under (everything, for the owner and for public data). Masked columns are left
out: their per-grant tokens are made only in views. Row filters become parameterised SQL, never text
pasted from a caller."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from functions.catalog.models import GRID_TOLERANCE, Dataset, grid
from functions.sharing.models import Grant, RowFilter

_OPERATORS = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}


@dataclass(frozen=True)
class ReadScope:
    dataset_id: str
    columns: list[str]
    row_filter: RowFilter | None = None
    grant_id: str | None = None
    column_types: dict[str, str] = field(default_factory=dict)
    # Columns the grant coarsens: name -> (granularity, kind: date-time | integer | number)
    generalised: dict[str, tuple[str, str]] = field(default_factory=dict)

    def select_list(self, dialect: str = "duckdb") -> str:
        """The scope's columns as a SELECT list, coarsened where the grant says so."""
        return ", ".join(
            f"{coarsened(quoted(c), *self.generalised[c], dialect)} AS {quoted(c)}" if c in self.generalised else quoted(c)
            for c in self.columns
        )


def scope_for(dataset: Dataset, grant: Grant | None) -> ReadScope:
    """The scope of reading `dataset` under `grant` (None: the owner's or public whole dataset)."""
    stored = dataset.table_schema.stored_columns()
    if grant is None:
        return ReadScope(dataset.dataset_id, stored)
    allowed = set(grant.terms.columns or stored) - set(grant.terms.masked_columns)
    properties = dataset.table_schema.properties
    generalised = {
        name: (granularity, properties[name].check_granularity(granularity))
        for name, granularity in grant.terms.generalised.items()
        if name in allowed
    }
    return ReadScope(
        dataset.dataset_id, [c for c in stored if c in allowed], grant.terms.row_filter, grant.grant_id, {}, generalised
    )


_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def coarsened(column: str, granularity: str, kind: str, dialect: str = "duckdb") -> str:
    """SQL that coarsens `column` as a grant's view does (granularity validated: 15m, 1h, 0.01, 10)."""
    if kind == "date-time":
        seconds = int(granularity[:-1]) * _SECONDS[granularity[-1]]
        if dialect == "athena":
            return f"from_unixtime(floor(to_unixtime({column}) / {seconds}) * {seconds})"
        return f"time_bucket(to_seconds({seconds}), {column}, TIMESTAMPTZ '1970-01-01 00:00:00+00')"
    units, decimals = grid(granularity)
    if kind == "integer":
        # The start of the bucket in integer arithmetic: column - floor-mod(column, width).
        width = max(units // 10**decimals, 1)
        return f"CAST({column} - ((({column} % {width}) + {width}) % {width}) AS BIGINT)"
    # As functions.ingest.protect.generalise, operation for operation in IEEE doubles: the grid cell
    # (a value on a grid line stays in its cell), its start as (cell * units) / 10^decimals.
    scale = f"CAST({float(10**decimals)!r} AS DOUBLE)"
    quotient = f"(CAST({column} AS DOUBLE) / ({float(units)!r} / {scale}))"
    cells = f"floor({quotient} + greatest(abs({quotient}), 1.0) * {GRID_TOLERANCE!r})"
    return f"(({cells} * {float(units)!r}) / {scale})"


def quoted(name: str) -> str:
    """A column or table name as a DuckDB identifier (names are validated [a-z0-9_] before this)."""
    return '"' + name.replace('"', '""') + '"'


def filter_sql(row_filter: RowFilter, literal: Callable[[str, Any], str] | None = None) -> tuple[str, list[Any]]:
    """The filter as a WHERE expression with `?` parameters (or, given `literal(column, value)`, with
    values written as escaped literals, for engines without typed parameters); NULL compares false."""

    def value(column: str, item: Any, params: list[Any]) -> str:
        if literal is not None:
            return literal(column, item)
        params.append(item)
        return "?"

    if row_filter.condition is not None:
        condition = row_filter.condition
        column = quoted(condition.column)
        params: list[Any] = []
        if condition.op == "not_null":
            return f"({column} IS NOT NULL)", []
        if condition.op == "in":
            values = list(condition.value) if isinstance(condition.value, list) else [condition.value]
            listed = ", ".join(value(condition.column, v, params) for v in values)
            return f"(coalesce({column} IN ({listed}), false))", params
        compared = value(condition.column, condition.value, params)
        return f"(coalesce({column} {_OPERATORS[condition.op]} {compared}, false))", params
    parts = [filter_sql(child, literal) for child in (row_filter.all or row_filter.any or [])]
    joiner = " AND " if row_filter.all else " OR "
    return "(" + joiner.join(sql for sql, _ in parts) + ")", [value for _, params in parts for value in params]


def table_name(dataset_id: str) -> str:
    """How an input dataset is named in a derived dataset's SQL: `air-quality` -> air_quality."""
    return dataset_id.replace("-", "_")
