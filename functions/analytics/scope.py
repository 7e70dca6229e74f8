"""What a department may read of one dataset, as DuckDB sees it: the columns and the row filter of
the grant it reads under (everything, for the owner and for public data). Masked columns are left
out: their per-grant tokens are made only in views. Row filters become parameterised SQL, never text
pasted from a caller."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from functions.catalog.models import GRID_TOLERANCE, Dataset, grid
from functions.core.errors import InvalidRequest
from functions.sharing.models import QUANTILES, AggregateTerms, Grant, RowFilter

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
    # An aggregated grant: its groups (of at least k subjects) are what may be read, never rows.
    aggregate: AggregateTerms | None = None
    # The columns naming whom rows are about (none: each row is its own subject).
    subjects: list[str] = field(default_factory=list)
    # Geometry columns: stored as WKB, read as GeoJSON text (what rules, place joins and SQL see).
    geometry: frozenset[str] = frozenset()

    def select_list(self, dialect: str = "duckdb") -> str:
        """The scope's columns as a SELECT list, coarsened where the grant says so."""
        return ", ".join(
            f"{self._expression(c, dialect)} AS {quoted(c)}" if c in self.generalised or c in self.geometry else quoted(c)
            for c in self.columns
        )

    def query(self, source: str, where: str, dialect: str = "duckdb") -> str:
        """The SELECT that reads what the scope allows from `source`: its rows, or its groups."""
        if self.aggregate is None:
            return f"SELECT {self.select_list(dialect)} FROM {source} WHERE {where}"
        keys = [self._expression(c, dialect) for c in self.aggregate.group_by]
        selected = [f"{key} AS {quoted(c)}" for key, c in zip(keys, self.aggregate.group_by, strict=True)]
        selected.append('count(*) AS "group_size"')
        selected += [
            f"{_measure(m.aggregate, quoted(m.column), dialect)} AS {quoted(m.output())}" for m in self.aggregate.measures
        ]
        # k is a validated integer; groups of fewer subjects are never visible to the query. A row
        # whose subject is null stands for itself, as in the grant's view.
        counted = "count(*)"
        if self.subjects:
            subject = " || chr(31) || ".join(
                self._expression(c, dialect) if c in self.geometry else f"CAST({quoted(c)} AS VARCHAR)" for c in self.subjects
            )
            counted = f"(count(DISTINCT {subject}) + sum(CASE WHEN {subject} IS NULL THEN 1 ELSE 0 END))"
        having = f"{counted} >= {int(self.aggregate.min_group_size)}"
        return f"SELECT {', '.join(selected)} FROM {source} WHERE {where} GROUP BY {', '.join(keys)} HAVING {having}"

    def typed(self, stored_types: dict[str, str]) -> ReadScope:
        """The scope with DuckDB types for its columns, given those of the dataset's stored columns."""
        types = {c: "VARCHAR" if c in self.geometry else stored_types.get(c, "VARCHAR") for c in self.columns}
        if self.aggregate is not None:
            types["group_size"] = "BIGINT"
            for measure in self.aggregate.measures:
                kept = measure.aggregate in ("min", "max")
                types[measure.output()] = stored_types.get(measure.column, "DOUBLE") if kept else "DOUBLE"
        return replace(self, column_types=types)

    def _expression(self, column: str, dialect: str) -> str:
        cells = self.aggregate.cells if self.aggregate is not None else None
        if cells is not None and column == cells.column:
            if dialect != "duckdb":
                raise InvalidRequest("a grant's H3 cells are read with the duckdb engine (Athena's SQL has no h3 here)")
            # The cell of the coordinates as the grant coarsens them (functions.columnar.cells, as views do).
            latitude, longitude = (self._expression(c, dialect) for c in (cells.latitude, cells.longitude))
            return f"h3_cell(CAST({latitude} AS DOUBLE), CAST({longitude} AS DOUBLE), {int(cells.resolution)})"
        if column in self.geometry:
            return geojson_text(quoted(column), dialect)
        return coarsened(quoted(column), *self.generalised[column], dialect) if column in self.generalised else quoted(column)


def geojson_text(column: str, dialect: str) -> str:
    """A geometry column as GeoJSON text. DuckDB reads GeoParquet's WKB as GEOMETRY; a version
    written before geometries were stored as WKB holds the text itself, which the cast leaves as is.
    Athena (Trino) has no GEOMETRY column type: its WKB is varbinary."""
    if dialect == "athena":
        return f"to_geojson_geometry(to_spherical_geography(ST_GeomFromBinary({column})))"
    return f"CAST(coalesce(ST_AsGeoJSON(TRY_CAST({column} AS GEOMETRY)), CAST({column} AS VARCHAR)) AS VARCHAR)"


# The SQL of rules, forecasts and scopes alike: aggregates, comparisons, and date-times written as text.
SQL_AGGREGATES = {"count": "count", "sum": "sum", "mean": "avg", "min": "min", "max": "max"}
SQL_COMPARISONS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def _measure(aggregate: str, column: str, dialect: str) -> str:
    """A measure as SQL: quantiles interpolated by DuckDB, estimated by Athena (which has no exact one)."""
    if aggregate in QUANTILES:
        function = "approx_percentile" if dialect == "athena" else "quantile_cont"
        return f"{function}(CAST({column} AS DOUBLE), {QUANTILES[aggregate]})"
    return f"{SQL_AGGREGATES[aggregate]}({column})"


def scope_for(dataset: Dataset, grant: Grant | None) -> ReadScope:
    """The scope of reading `dataset` under `grant` (None: the owner's or public whole dataset), as
    rules and derived datasets read it. Under a grant: its row filter and coarsening; its groups
    only when it aggregates; otherwise its columns but none that is personal (protected at ingest),
    masked or linked — rules and derived datasets could single people out, so personal data reaches
    them only as groups of at least k subjects (an exact aggregated grant), and tokens only through views."""
    stored = dataset.table_schema.stored_columns()
    shapes = frozenset(dataset.table_schema.wkb_columns())
    if grant is None:
        return ReadScope(dataset.dataset_id, stored, geometry=shapes)
    terms = grant.terms
    properties = dataset.table_schema.properties
    used = terms.aggregate.inputs() if terms.aggregate else set(terms.columns or stored)
    generalised = {
        name: (granularity, properties[name].check_granularity(granularity))
        for name, granularity in terms.generalised.items()
        if name in used
    }
    if terms.aggregate is not None and terms.aggregate.privacy is not None:
        # Every evaluation would be a release spending the grantee's budget: a private grant is read
        # through its views only.
        raise InvalidRequest("a grant with differential privacy is read through its views, not by rules or derived datasets")
    if terms.aggregate is not None:
        subject = dataset.table_schema.subjects()
        return ReadScope(
            dataset.dataset_id,
            terms.aggregate.columns(),
            terms.row_filter,
            grant.grant_id,
            {},
            generalised,
            terms.aggregate,
            [] if subject.each_row else list(subject.columns),
            shapes,
        )
    hidden = set(terms.masked_columns) | set(terms.linked_columns) | set(dataset.table_schema.personal_columns())
    return ReadScope(
        dataset.dataset_id,
        [c for c in stored if c in used and c not in hidden],
        terms.row_filter,
        grant.grant_id,
        {},
        generalised,
        geometry=shapes,
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
    # As functions.privacy.protect.generalise, operation for operation in IEEE doubles: the grid cell
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
