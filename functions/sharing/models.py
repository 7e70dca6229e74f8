"""Access requests, grants and their terms. No pyarrow here."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from functions.catalog.models import Classification, ColumnName, ColumnSchema, Dataset, TableSchema, Tag
from functions.core.clock import moment
from functions.core.model import Model
from functions.policy.engine import GrantFacts

PurposeCategory = Literal[
    "planning", "research", "operations", "public-health", "public-safety", "environment-monitoring", "statistics", "other"
]
LegalBasis = Literal["public-task", "legal-obligation", "vital-interests", "consent", "legitimate-interests", "none"]
Operator = Literal["eq", "ne", "lt", "le", "gt", "ge", "in", "not_null"]
Scalar = str | int | float | bool
MAX_FILTER_DEPTH = 4


def comparable_value(column: ColumnSchema, op: str, value: Any) -> None:
    """Raise ValueError unless `value` can be compared with `column` by `op` (checked before any read)."""
    types = column.type if isinstance(column.type, list) else [column.type]
    if op == "not_null":
        if value is not None:
            raise ValueError("not_null takes no value")
        return
    values = value if op == "in" else [value]
    if op == "in" and (not isinstance(value, list) or not 1 <= len(value) <= 1000):
        raise ValueError("`in` takes a list of 1 to 1000 values")
    if op != "in" and isinstance(value, list):
        raise ValueError(f"`{op}` takes one value")
    ordered = op in ("lt", "le", "gt", "ge")
    for item in values:
        if isinstance(item, bool):
            fits = "boolean" in types and not ordered
        elif isinstance(item, int | float):
            fits = bool({"number", "integer"} & set(types))
        elif isinstance(item, str):
            fits = "string" in types and (not ordered or column.format in ("date-time", "date", "time"))
        else:
            fits = False
        if not fits:
            raise ValueError(f"{item!r} cannot be compared with a {'/'.join(types)} column by `{op}`")


class Condition(Model):
    """One comparison: `column op value`."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    column: ColumnName
    op: Operator
    value: Scalar | list[Scalar] | None = None


class RowFilter(Model):
    """A small safe predicate: a condition, or all/any of nested filters. Never SQL text."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    condition: Condition | None = None
    all: list[RowFilter] | None = Field(default=None, min_length=1, max_length=20)
    any: list[RowFilter] | None = Field(default=None, min_length=1, max_length=20)

    @model_validator(mode="after")
    def _one_form(self) -> RowFilter:
        if sum(part is not None for part in (self.condition, self.all, self.any)) != 1:
            raise ValueError("a row filter is exactly one of: condition, all, any")
        if self.depth() > MAX_FILTER_DEPTH:
            raise ValueError(f"row filters nest at most {MAX_FILTER_DEPTH} deep")
        return self

    def depth(self) -> int:
        children = self.all or self.any or []
        return 1 + max((child.depth() for child in children), default=0)

    def conditions(self) -> list[Condition]:
        if self.condition is not None:
            return [self.condition]
        return [c for child in (self.all or self.any or []) for c in child.conditions()]


AggregateFunction = Literal["count", "sum", "mean", "min", "max", "p10", "p25", "median", "p75", "p90"]
# Quantile measures and their alpha: of data about people they are released with OpenDP's private
# quantile (instead of min and max, which are one person's values); of other data, estimated
# (interpolated as DuckDB's quantile_cont in views and rules; Athena's approx_percentile estimates them).
QUANTILES = {"p10": 0.1, "p25": 0.25, "median": 0.5, "p75": 0.75, "p90": 0.9}
# Candidates a private quantile chooses among, evenly spaced over the column's declared bounds.
QUANTILE_CANDIDATES = 101
DEFAULT_MIN_GROUP_SIZE = 5


class AggregateMeasure(Model):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    aggregate: AggregateFunction
    column: ColumnName

    def output(self) -> str:
        return f"{self.aggregate}_{self.column}"


class PrivacyTerms(Model):
    """Differential privacy for the groups of a dataset about people: each release (a version's
    view, built once and kept) spends `epsilon` (with `delta`) from what the grantee department may
    spend on this dataset, across all its grants, up to `budget`; then releases are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    epsilon: float = Field(gt=0, le=10, description="Spent by each release (a version's view)")
    delta: float = Field(default=1e-6, gt=0, le=1e-3, description="The chance the noise fails to hide a group")
    budget: float = Field(gt=0, le=100, description="The most the grantee department may spend on this dataset")

    @model_validator(mode="after")
    def _a_release_fits(self) -> PrivacyTerms:
        if self.epsilon > self.budget:
            raise ValueError("epsilon (spent by each release) must not exceed the budget")
        return self


class H3Cells(Model):
    """Locations coarsened to H3 cells: each row's (latitude, longitude) becomes the hex id of the
    cell holding it at `resolution` (0: continents, 7: about 5 km², 8: 0.7 km², 9: 0.1 km²), a
    column of its own to group by. The coordinates themselves are never in the view."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    column: ColumnName = Field(default="cell", description="The view's column holding the cell, e.g. cell")
    latitude: ColumnName
    longitude: ColumnName
    resolution: int = Field(ge=0, le=15)


class AggregateTerms(Model):
    """Share groups, not rows: rows grouped by `group_by` (after the grant's row filter and its
    generalisation, so a time bucket or a spatial grid is a generalised column), each group with
    its `group_size` and `measures`. Groups count subjects (whom the rows are about: the schema's
    x-subject), each subject bounded in what it contributes. Of a dataset without personal data,
    groups of at least `min_group_size` subjects are shared exactly (smaller ones suppressed and
    counted); of a dataset about people, only with `privacy`: counts and sums with calibrated noise,
    and groups released only above a noisy threshold (OpenDP)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    group_by: list[ColumnName] = Field(min_length=1, max_length=10)
    measures: list[AggregateMeasure] = Field(default_factory=list, max_length=20)
    min_group_size: int = Field(
        default=DEFAULT_MIN_GROUP_SIZE,
        ge=2,
        le=10_000,
        description="k: distinct subjects a group needs (at least 2; the platform's floor for personal data)",
    )
    privacy: PrivacyTerms | None = Field(default=None, description="Differential privacy: required for personal data")
    cells: H3Cells | None = Field(default=None, description="Group locations by H3 cell: `cells.column` is then one of group_by")

    @model_validator(mode="after")
    def _cells_are_grouped(self) -> AggregateTerms:
        if self.cells is None:
            return self
        if self.cells.column.startswith("__"):
            raise ValueError("a cells' column name does not start with __ (the view's own working columns do)")
        if self.cells.column not in self.group_by:
            raise ValueError(f"the cells' column {self.cells.column} must be one of group_by")
        exact = sorted({self.cells.latitude, self.cells.longitude} & ({*self.group_by} | {m.column for m in self.measures}))
        if exact:
            raise ValueError(f"locations grouped by cell cannot also be grouped or measured: {', '.join(exact)}")
        return self

    def columns(self) -> list[str]:
        """The view's columns, in order."""
        return [*self.group_by, "group_size", *(m.output() for m in self.measures)]

    def inputs(self) -> set[str]:
        """The stored columns the groups are made from."""
        located = {self.cells.latitude, self.cells.longitude} if self.cells else set()
        return (set(self.group_by) - {self.cells.column if self.cells else ""}) | located | {m.column for m in self.measures}


class GrantTerms(Model):
    """What a grant lets its holder read. Empty `columns` means every column."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    columns: list[ColumnName] = Field(default_factory=list, max_length=500)
    row_filter: RowFilter | None = None
    masked_columns: list[ColumnName] = Field(default_factory=list, description="Replaced by a per-grant token")
    decrypt_columns: list[ColumnName] = Field(default_factory=list, description="`encrypt` columns shown in clear")
    linked_columns: list[ColumnName] = Field(
        default_factory=list,
        max_length=20,
        description=(
            "Pseudonymised columns the grantee may link with its own data: re-keyed into this grant's own token space "
            "for the column's identifier kind (its x-personal category). Needs a legal basis, an expiry and linked_datasets."
        ),
    )
    linked_datasets: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{2,62}$")]] = Field(
        default_factory=list,
        max_length=20,
        description=(
            "The grantee's own datasets it may re-key into the grant's linkage space "
            "(their versions published while the grant lives)"
        ),
    )
    generalised: dict[ColumnName, str] = Field(
        default_factory=dict,
        max_length=50,
        description="Columns coarsened in the view: date-time to an interval (15m, 1h, 1d), numbers to a grid (0.01, 10)",
    )
    aggregate: AggregateTerms | None = Field(default=None, description="Share groups of at least k rows instead of rows")
    expires_at: str | None = Field(default=None, description="ISO 8601; the grant stops working then")

    def restricted(self) -> bool:
        return bool(
            self.columns
            or self.row_filter
            or self.masked_columns
            or self.decrypt_columns
            or self.generalised
            or self.linked_columns
            or self.aggregate
        )

    def fingerprint(self) -> str:
        """Identifies the view these terms produce (expiry does not change the data)."""
        terms = self.model_dump(exclude={"expires_at"}, mode="json")
        return hashlib.sha256(json.dumps(terms, sort_keys=True).encode()).hexdigest()[:24]

    def check_against(self, schema: TableSchema) -> None:
        """Raise ValueError when the terms name columns the schema lacks or compare with wrong values."""
        names = set(schema.properties)
        for field in ("columns", "masked_columns", "decrypt_columns", "generalised", "linked_columns"):
            unknown = sorted(set(getattr(self, field)) - names)
            if unknown:
                raise ValueError(f"{field} names columns not in the dataset: {', '.join(unknown)}")
        encrypted = {n for n, c in schema.personal_columns().items() if c.protection == "encrypt"}
        if set(self.decrypt_columns) - encrypted:
            raise ValueError("decrypt_columns must be columns protected with `encrypt`")
        dropped = names - set(schema.stored_columns())
        if set(self.columns) & dropped:
            raise ValueError(f"columns dropped at ingest cannot be granted: {', '.join(sorted(set(self.columns) & dropped))}")
        protected = set(schema.personal_columns())
        if set(self.generalised) & protected:
            raise ValueError(
                f"columns protected at ingest cannot be generalised: {', '.join(sorted(set(self.generalised) & protected))}"
            )
        for name, granularity in self.generalised.items():
            try:
                schema.properties[name].check_granularity(granularity)
            except ValueError as error:
                raise ValueError(f"generalised {name}: {error}") from None
        personal = schema.personal_columns()
        for name in self.linked_columns:
            if name not in personal or personal[name].protection != "pseudonymise" or not personal[name].category:
                raise ValueError(f"linked_columns: {name} is not a pseudonymised column with a category (its identifier kind)")
            if name in self.masked_columns or (self.columns and name not in self.columns):
                raise ValueError(f"linked_columns: {name} must be among the granted columns and not masked")
        if self.aggregate is not None:
            self._check_aggregate(self.aggregate, schema)
        for condition in self.row_filter.conditions() if self.row_filter else []:
            if condition.column not in names:
                raise ValueError(f"the row filter names a column not in the dataset: {condition.column}")
            protection = personal[condition.column].protection if condition.column in personal else None
            if protection == "drop":
                raise ValueError(f"the row filter names {condition.column}, which is dropped at ingest")
            if protection in ("pseudonymise", "encrypt") and condition.op != "not_null":
                # Stored values are tokens or ciphertexts (or absent): a clear value would match nothing.
                raise ValueError(
                    f"the row filter compares {condition.column}, which is protected at ingest ({protection}): "
                    "its stored values are not comparable with clear values; filter on another column or use not_null"
                )
            if condition.column in schema.wkb_columns() and condition.op != "not_null":
                # Stored as WKB: text compared with it would match nothing. Places are a place join's.
                raise ValueError(
                    f"the row filter compares {condition.column}, a geometry: filter on another column, "
                    "use not_null, or place rows in areas with a derived dataset's place join"
                )
            comparable_value(schema.properties[condition.column], condition.op, condition.value)

    def _check_aggregate(self, aggregate: AggregateTerms, schema: TableSchema) -> None:
        if self.masked_columns or self.decrypt_columns or self.linked_columns:
            raise ValueError("an aggregated grant shares groups: it cannot also mask, decrypt or link columns")
        names, personal = set(schema.stored_columns()), schema.personal_columns()
        unknown = sorted(aggregate.inputs() - names)
        if unknown:
            raise ValueError(f"aggregate names columns not in the dataset's stored data: {', '.join(unknown)}")
        if self.columns and not aggregate.inputs() <= set(self.columns):
            raise ValueError("an aggregated grant's columns must include its group_by and measure columns")
        if aggregate.cells is not None:
            cells = aggregate.cells
            if cells.column in names:
                raise ValueError(f"the cells' column {cells.column} is a column of the dataset already: name it otherwise")
            for coordinate in (cells.latitude, cells.longitude):
                if not {"number", "integer"} & set(schema.properties[coordinate].kinds()):
                    raise ValueError(f"cells are made of numeric coordinates, not {coordinate}")
        identifying = sorted(c for c in aggregate.inputs() if c in personal and personal[c].protection != "generalise")
        if identifying:
            raise ValueError(f"pseudonymised or encrypted columns cannot be grouped or measured: {', '.join(identifying)}")
        for measure in aggregate.measures:
            column = schema.properties[measure.column]
            if measure.aggregate in ("sum", "mean", *QUANTILES) and not {"number", "integer"} & set(column.kinds()):
                raise ValueError(f"{measure.aggregate} needs a numeric column, not {measure.column}")
            if measure.aggregate != "count" and column.geometry is not None:
                # WKB's byte order is no order of shapes: a "least" shape means nothing.
                raise ValueError(f"a geometry is counted, not {measure.aggregate}: {measure.column}")
        if schema.is_personal():
            if aggregate.privacy is None:
                raise ValueError(
                    "the dataset is about people: its groups are shared only with differential privacy "
                    '(aggregate.privacy: {"epsilon": ..., "budget": ...})'
                )
            extremes = [m.output() for m in aggregate.measures if m.aggregate in ("min", "max")]
            if extremes:
                raise ValueError(
                    f"min and max of data about people are one person's values: {', '.join(extremes)} "
                    "(p10, p25, median, p75 and p90 are released with differential privacy)"
                )
            unbounded = sorted(
                {
                    m.column
                    for m in aggregate.measures
                    if m.aggregate in ("sum", "mean", *QUANTILES)
                    and (schema.properties[m.column].minimum is None or schema.properties[m.column].maximum is None)
                }
            )
            if unbounded:
                listed = ", ".join(unbounded)
                raise ValueError(
                    f"sums, means and quantiles of data about people need the column's minimum and maximum: {listed}"
                )
        outputs = aggregate.columns()
        if len(outputs) != len(set(outputs)):
            raise ValueError("the aggregated view's columns must be distinct (group_by, group_size, aggregate_column)")


class AccessRequestCreate(Model):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    purpose: str = Field(min_length=10, max_length=2000)
    purpose_category: PurposeCategory
    legal_basis: LegalBasis
    columns: list[ColumnName] = Field(default_factory=list, max_length=500)
    until: str = Field(description="ISO 8601 date or date-time the access is wanted until")


class Decision(Model):
    by: str
    at: str
    reason: str = ""
    grant_id: str | None = None


class AccessRequest(AccessRequestCreate):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    request_id: str
    dataset_id: str
    owner: str
    requester_department: str
    requester_principal: str
    status: Literal["pending", "approved", "denied"] = "pending"
    created_at: str
    decision: Decision | None = None


class Approval(Model):
    """A steward's approval: as asked (no terms), or narrowed."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    terms: GrantTerms | None = None
    note: str = Field(default="", max_length=1000)


class Denial(Model):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    reason: str = Field(min_length=3, max_length=1000)


class GrantCreate(Model):
    """A steward's direct grant, to a department or to one of its principals."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    grantee_department: Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]{1,31}$")]
    grantee_principal: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9._-]{0,62}$")
    purpose: str = Field(min_length=10, max_length=2000)
    purpose_category: PurposeCategory
    legal_basis: LegalBasis | None = Field(
        default=None, description="What the sharing rests on: required for data about people, never assumed"
    )
    terms: GrantTerms = Field(default_factory=GrantTerms)


class TagGrantCreate(GrantCreate):
    """A grant on every dataset of the steward's department that carries all `tags`, up to a
    classification: datasets created later are covered without a new grant. It covers whole
    datasets (curated files as published, personal columns protected at ingest); restrict columns,
    rows or masking with a grant on one dataset."""

    tags: list[Tag] = Field(min_length=1, max_length=10)
    max_classification: Classification = "internal"

    @model_validator(mode="after")
    def _whole_datasets(self) -> TagGrantCreate:
        if self.terms.restricted():
            raise ValueError("a tag grant covers whole datasets: its terms may only set expires_at")
        return self


class Grant(GrantCreate):
    grant_id: str
    owner: str
    created_by: str
    created_at: str
    # One dataset, or (tag grants) every dataset of the owner carrying all `tags` up to max_classification.
    dataset_id: str | None = None
    tags: list[str] = Field(default_factory=list)
    max_classification: Classification | None = None
    # Stored: active or revoked. Listings show an active grant past its expiry as expired.
    status: Literal["active", "revoked", "expired"] = "active"
    revoked_at: str | None = None
    revoked_by: str | None = None
    access_request: str | None = None
    # The identifier kinds (x-personal categories) of its linked columns, fixed when it is made.
    linkage_kinds: list[str] = Field(default_factory=list)
    # Linkage: each linked dataset's latest version when the grant was made; only later versions
    # are re-keyed (versions inside the grant's period, ordered by number, not by clock).
    linked_after: dict[str, int] = Field(default_factory=dict)
    privacy_spent: float | None = Field(
        default=None,
        description="Differential privacy: what the grantee department has spent on the dataset, across its grants (listings)",
    )

    def facts(self) -> GrantFacts:
        """The grant as the policies decide with it (whether it lives and what it covers is theirs)."""
        return GrantFacts(
            grant_id=self.grant_id,
            owner=self.owner,
            grantee=self.grantee_department,
            grantee_principal=self.grantee_principal,
            dataset_id=self.dataset_id,
            tags=tuple(self.tags),
            max_classification=self.max_classification,
            status=self.status,
            expires=moment(self.terms.expires_at) if self.terms.expires_at else None,
            restricted=self.terms.restricted(),
            created_at=self.created_at,
        )

    def rekeyed(self, dataset: Dataset) -> list[str]:
        """The pseudonymised columns this grant serves, which its view re-keys into the grant's own
        token space (an aggregated grant serves none; linked columns go to the linkage space)."""
        if self.terms.aggregate is not None:
            return []
        granted = set(self.terms.columns or dataset.table_schema.properties)
        return [
            name
            for name, personal in dataset.table_schema.personal_columns().items()
            if personal.protection == "pseudonymise" and name in granted and name not in self.terms.linked_columns
        ]

    def needs_view(self, dataset: Dataset) -> bool:
        """Whether a read under this grant is served from a view rather than the curated files."""
        return self.terms.restricted() or bool(self.rekeyed(dataset))

    def about(self, dataset: Dataset) -> bool:
        """Whether a steward listing `dataset`'s grants should see this one: on the dataset, or a tag
        grant of its owner whose tags it carries. Listing only: whether a grant lets anyone act is
        the policies' (live-grant)."""
        if dataset.owner != self.owner:
            return False
        if self.dataset_id is not None:
            return self.dataset_id == dataset.dataset_id
        return bool(self.tags) and set(self.tags) <= set(dataset.tags)


def linked_own_columns(dataset: Dataset, kinds: list[str]) -> list[str]:
    """The columns of a grantee's own dataset that a linkage grant re-keys: its pseudonymised
    columns of the kinds the grant links."""
    return [
        name
        for name, personal in dataset.table_schema.personal_columns().items()
        if personal.protection == "pseudonymise" and personal.category in kinds
    ]


class GrantList(Model):
    grants: list[Grant]


class AccessRequestList(Model):
    requests: list[AccessRequest]
    titles: dict[str, str] = Field(default_factory=dict, description="Dataset id -> title, of the requests' datasets")
    pending: int | None = Field(default=None, description="How many requests wait, on every page")
    next_cursor: str | None = None


class PresignedFile(Model):
    url: str
    size_bytes: int
    expires_at: str


class DataAccess(Model):
    """Where to read a version from: short-lived URLs to the curated files or to a restricted view."""

    dataset_id: str
    version: int
    grant_id: str | None
    restricted: bool
    columns: list[str]
    files: list[PresignedFile]
    audit: dict[str, Any] = Field(default_factory=dict)
    suppressed: dict[str, int] | None = Field(
        default=None, description="An aggregated view's groups and rows below k, left out: {'groups': n, 'rows': m}"
    )
