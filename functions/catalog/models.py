"""Datasets as the catalog holds them, and the JSON Schema subset that declares their columns."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    field_validator,
    model_serializer,
    model_validator,
)

from functions.core.model import Model

DatasetId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{2,62}$")]
ColumnName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
Tag = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$")]
Classification = Literal["public", "internal", "confidential", "restricted"]
ColumnType = Literal["string", "number", "integer", "boolean"]
Protection = Literal["pseudonymise", "encrypt", "generalise", "drop"]
MAX_COLUMNS = 500
# Relative tolerance that puts a value on a grid line when floating-point division lands a hair
# below it (4.01 / 0.01 = 400.99999999999994): far above double rounding error (~1e-16), far below
# any decimal a city records. Used by every engine that coarsens numbers (pyarrow, DuckDB, Athena).
GRID_TOLERANCE = 1e-13


def grid(granularity: str) -> tuple[int, int]:
    """A numeric granularity as an exact fraction (units, decimals): the step is units / 10**decimals.
    "0.01" -> (1, 2), "2.5" -> (25, 1), "10" -> (10, 0). A cell's start is written as
    (cell * units) / 10**decimals: two exact numbers divided once, so the result is the double
    nearest the decimal value (52.37, never 52.370000000000005)."""
    step = Decimal(granularity).normalize()
    exponent = step.as_tuple().exponent
    decimals = max(0, -exponent) if isinstance(exponent, int) else 0
    return int(step.scaleb(decimals)), decimals


class JsonSchemaModel(Model):
    """Serialises as the JSON Schema it stands for: by alias, without unset keywords."""

    @model_serializer(mode="wrap")
    def _without_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if v is not None}


class PersonalData(JsonSchemaModel):
    """How a personal column is protected before it reaches curated storage (applied at ingest)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    protection: Protection
    category: str = Field(default="", max_length=64, description="e.g. vehicle-plate, phone, address, location")
    # For `generalise`: a grid in decimal degrees, a time interval ("15m", "1h"), a bucket width, or
    # an H3 cell ("h3:9"): a location pair stored as the centre of the cell holding it.
    granularity: str | None = Field(default=None, max_length=16)
    axis: Literal["latitude", "longitude"] | None = Field(default=None, description="For h3 cells: which coordinate")

    def h3_resolution(self) -> int | None:
        """The H3 resolution a location is generalised to on ingest, if it is one."""
        found = re.fullmatch(r"h3:([0-9]{1,2})", self.granularity or "")
        return int(found.group(1)) if found and self.protection == "generalise" else None


GeometryType = Literal["Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"]
WORLD = (-180.0, -90.0, 180.0, 90.0)


class GeometrySpec(JsonSchemaModel):
    """`x-geometry`: a text column of GeoJSON geometries ([longitude, latitude], WGS 84), of the
    listed types, within `bounds` (west, south, east, north). Checked on ingest: valid GeoJSON of
    those types, a valid shape (no self-crossing ring), inside the bounds. Stored as WKB, in GeoParquet."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    types: list[GeometryType] = Field(min_length=1, max_length=6)
    bounds: list[float] | None = Field(default=None, min_length=4, max_length=4, description="Default: the whole earth")

    def box(self) -> tuple[float, float, float, float]:
        west, south, east, north = self.bounds or WORLD
        return west, south, east, north

    @model_validator(mode="after")
    def _bounds_are_a_box_on_earth(self) -> GeometrySpec:
        west, south, east, north = self.box()
        if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
            raise ValueError("x-geometry bounds are [west, south, east, north] in degrees, west < east, south < north")
        return self


class ColumnSchema(JsonSchemaModel):
    """One column: a JSON Schema property with CityShare's `x-unit` and `x-personal` keywords."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, populate_by_name=True, serialize_by_alias=True)

    type: ColumnType | list[ColumnType | Literal["null"]]
    description: str | None = Field(default=None, max_length=1000)
    format: Literal["date-time", "date", "time"] | None = None
    enum: list[str | int | float | bool] | None = Field(default=None, max_length=1000)
    minimum: int | float | None = None
    maximum: int | float | None = None
    minLength: int | None = Field(default=None, ge=0)  # noqa: N815 - JSON Schema's spelling
    maxLength: int | None = Field(default=None, ge=0)  # noqa: N815
    pattern: str | None = Field(default=None, max_length=512)
    unit: str | None = Field(default=None, alias="x-unit", max_length=32)
    personal: PersonalData | None = Field(default=None, alias="x-personal")
    geometry: GeometrySpec | None = Field(default=None, alias="x-geometry")

    @model_validator(mode="after")
    def _protection_fits_the_type(self) -> ColumnSchema:
        if self.personal is not None and (self.personal.granularity or "").startswith("h3:"):
            resolution = self.personal.h3_resolution()
            if resolution is None or resolution > 15 or self.personal.axis is None or "number" not in self.kinds():
                raise ValueError(
                    'an H3 generalisation is "h3:<resolution 0-15>" of a number column '
                    "that names its axis (latitude or longitude)"
                )
        elif self.personal is not None and self.personal.protection == "generalise":
            self.check_granularity(self.personal.granularity)
        if self.geometry is not None and self.kinds() != ["string"]:
            raise ValueError("x-geometry applies to a string column (GeoJSON text)")
        if self.geometry is not None and self.maxLength is None:
            raise ValueError("a geometry column declares its maxLength (each value is parsed on ingest)")
        return self

    def kinds(self) -> list[str]:
        return [t for t in (self.type if isinstance(self.type, list) else [self.type]) if t != "null"]

    def check_granularity(self, granularity: str | None) -> str:
        """Raise ValueError unless the column can be generalised to `granularity`; returns the column's
        kind for it: "date-time", "integer" or "number"."""
        kinds = self.kinds()
        temporal = "string" in kinds and self.format == "date-time"
        if not (temporal or {"number", "integer"} & set(kinds)):
            raise ValueError("generalise applies to numbers, integers and date-time strings")
        if not granularity:
            raise ValueError("generalise needs a granularity (a grid like 0.01, a bucket width, or an interval like 15m)")
        if temporal and not re.fullmatch(r"[1-9][0-9]{0,3}[smhd]", granularity):
            raise ValueError("a date-time granularity looks like 30s, 15m, 1h or 1d")
        if granularity.startswith("h3:"):
            raise ValueError("H3 cells are declared on ingest (x-personal) or by an aggregated grant's cells, not as a grid")
        if not temporal and not re.fullmatch(r"[0-9]*\.?[0-9]+", granularity):
            raise ValueError("a numeric granularity is a positive number such as 0.01 or 10")
        if not temporal and float(granularity) <= 0:
            raise ValueError("a numeric granularity is a positive number such as 0.01 or 10")
        kind = "date-time" if temporal else ("number" if "number" in kinds else "integer")
        if kind == "integer" and Decimal(granularity) != Decimal(granularity).to_integral_value():
            raise ValueError("an integer column's granularity is a whole number of units, such as 10")
        return kind

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"pattern does not compile: {error}") from None
        return value


class SubjectDeclaration(JsonSchemaModel):
    """Whom (or what) the rows are about — a citizen, a vehicle — and how much any one of them may
    weigh in what is released in groups: `columns` identify the subject (typically a pseudonymised
    column: tokens count as well as values), or `each_row` says every row is its own subject. A
    subject counts for at most `max_rows_per_group` rows in a group and in at most `max_groups`
    groups of one release, and numbers it contributes are clamped to the columns' declared
    minimum and maximum: one person cannot dominate a count or a sum."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, populate_by_name=True, serialize_by_alias=True)

    columns: list[ColumnName] = Field(default_factory=list, max_length=3)
    each_row: bool | None = None
    max_rows_per_group: int = Field(default=1, ge=1, le=1000)
    max_groups: int = Field(default=10, ge=1, le=1000)

    @model_validator(mode="after")
    def _one_way(self) -> SubjectDeclaration:
        if bool(self.columns) == self.each_row:
            raise ValueError("x-subject names its columns, or says each_row: true (not both)")
        return self


class TableSchema(JsonSchemaModel):
    """A dataset's schema: a JSON Schema object whose properties are the columns."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, populate_by_name=True, serialize_by_alias=True)

    json_schema: str | None = Field(default=None, alias="$schema")
    id: str | None = Field(default=None, alias="$id", max_length=200)
    title: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    type: Literal["object"] = "object"
    properties: dict[ColumnName, ColumnSchema] = Field(min_length=1, max_length=MAX_COLUMNS)
    required: list[ColumnName] = Field(default_factory=list)
    additionalProperties: bool = False  # noqa: N815 - JSON Schema's spelling
    subject: SubjectDeclaration | None = Field(default=None, alias="x-subject")

    @model_validator(mode="after")
    def _required_are_columns(self) -> TableSchema:
        unknown = sorted(set(self.required) - set(self.properties))
        if unknown:
            raise ValueError(f"required names columns that are not declared: {', '.join(unknown)}")
        if self.subject is not None:
            missing = sorted(set(self.subject.columns) - set(self.stored_columns()))
            if missing:
                raise ValueError(f"x-subject names columns that are not stored: {', '.join(missing)}")
        cells = {name: p for name, p in self.personal_columns().items() if p.h3_resolution() is not None}
        if cells and (
            sorted(p.axis or "" for p in cells.values()) != ["latitude", "longitude"]
            or len({p.granularity for p in cells.values()}) != 1
        ):
            raise ValueError("H3 cells generalise a pair: one latitude and one longitude column, at the same resolution")
        return self

    def h3_pair(self) -> tuple[str, str, int] | None:
        """(latitude column, longitude column, resolution) of a location generalised to H3 cells on ingest."""
        cells = {
            p.axis: (name, p.h3_resolution()) for name, p in self.personal_columns().items() if p.h3_resolution() is not None
        }
        if not cells:
            return None
        (latitude, resolution), (longitude, _) = cells["latitude"], cells["longitude"]
        return latitude, longitude, int(resolution or 0)

    def subjects(self) -> SubjectDeclaration:
        """Whom the rows are about (undeclared: each row is its own subject)."""
        return self.subject or SubjectDeclaration(each_row=True)

    def is_personal(self) -> bool:
        """Whether the rows are about people (some column is personal data)."""
        return bool(self.personal_columns())

    def geometry_columns(self) -> dict[str, GeometrySpec]:
        return {name: col.geometry for name, col in self.properties.items() if col.geometry is not None}

    def wkb_columns(self) -> dict[str, GeometrySpec]:
        """The geometry columns curated data holds as WKB (GeoParquet): those not protected at ingest
        (a pseudonymised or encrypted one holds tokens or ciphertexts of the text, a dropped one nothing)."""
        return {name: spec for name, spec in self.geometry_columns().items() if self.properties[name].personal is None}

    def personal_columns(self) -> dict[str, PersonalData]:
        return {name: col.personal for name, col in self.properties.items() if col.personal is not None}

    def pseudonymised_columns(self) -> list[str]:
        return [name for name, personal in self.personal_columns().items() if personal.protection == "pseudonymise"]

    def stored_columns(self) -> list[str]:
        """The columns of the curated Parquet, in order: all but those dropped at ingest."""
        dropped = {n for n, p in self.personal_columns().items() if p.protection == "drop"}
        return [name for name in self.properties if name not in dropped]


class IngestPolicy(Model):
    """What to do with invalid rows: refuse the whole file, or publish the valid rows when the
    invalid ones are at most `max_invalid_share` of the file (they are reported either way)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    on_invalid_rows: Literal["reject_file", "accept_valid"] = "reject_file"
    max_invalid_share: float = Field(default=0.05, ge=0, le=1)


# The EU's data themes (publications.europa.eu/resource/authority/data-theme), as DCAT-AP uses them.
DataTheme = Literal["AGRI", "ECON", "EDUC", "ENER", "ENVI", "GOVE", "HEAL", "INTR", "JUST", "REGI", "SOCI", "TECH", "TRAN"]
LicenceUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s<>\"{}|\\^`]{3,500}$")]


class ContactPoint(Model):
    """Who answers questions about a dataset (DCAT's contact point, a vCard)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=200)
    email: str = Field(pattern=r"^[^@\s<>\"]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,24}$")


class DatasetFields(Model):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, populate_by_name=True, serialize_by_alias=True)

    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    classification: Classification
    table_schema: TableSchema = Field(alias="schema")
    ingest: IngestPolicy = Field(default_factory=IngestPolicy)
    # For the open-data catalog (GET /catalog/dcat): optional, validated.
    licence: LicenceUrl | None = Field(
        default=None, description="The licence's URL, e.g. https://creativecommons.org/licenses/by/4.0/"
    )
    contact_point: ContactPoint | None = None
    themes: list[DataTheme] = Field(default_factory=list, max_length=13, description="EU data themes, e.g. TRAN, ENVI")

    @field_validator("tags")
    @classmethod
    def _unique_tags(cls, tags: list[str]) -> list[str]:
        return sorted(set(tags))


class DatasetCreate(DatasetFields):
    """What a department sends to create a dataset; the owner is the caller's department."""

    dataset_id: DatasetId

    @model_validator(mode="after")
    def _personal_data_names_its_subjects(self) -> DatasetCreate:
        if type(self) is DatasetCreate and self.table_schema.is_personal() and self.table_schema.subject is None:
            raise ValueError(
                "a schema with personal columns names whom its rows are about: "
                '"x-subject": {"columns": [...]} (a pseudonymised id, say) or {"each_row": true}'
            )
        if type(self) is DatasetCreate and self.classification == "public":
            check_public(self.table_schema)
        return self


def check_public(table_schema: TableSchema) -> None:
    """Public data is read by anyone without a grant, so it would carry its owner's own tokens, which
    never leave the owner: a dataset with pseudonymised columns is not public."""
    if table_schema.pseudonymised_columns():
        raise ValueError(
            f"a public dataset holds no pseudonymised column ({', '.join(table_schema.pseudonymised_columns())}): "
            "share it with grants, or drop or generalise those columns"
        )


class DatasetUpdate(Model):
    """A partial change of a dataset's metadata. `revision`, when given, must match (optimistic lock)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=4000)
    tags: list[Tag] | None = Field(default=None, max_length=20)
    classification: Classification | None = None
    ingest: IngestPolicy | None = None
    licence: LicenceUrl | None = None
    contact_point: ContactPoint | None = None
    themes: list[DataTheme] | None = Field(default=None, max_length=13)
    revision: int | None = Field(default=None, ge=1)

    def changes(self) -> dict[str, Any]:
        values = self.model_dump(exclude_none=True, exclude={"revision"})
        if "tags" in values:
            values["tags"] = sorted(set(values["tags"]))
        return values


class DatasetEntry(DatasetCreate):
    """A dataset as the API shows it: its metadata, and the latest version's size only to those who
    may see figures (its owner, and readers of its whole rows)."""

    owner: str
    created_at: str
    updated_at: str
    created_by: str
    revision: int = 1
    legal_hold: bool = False
    latest_version: int = 0
    latest_bytes: int | None = Field(
        default=None, description="The latest version's size in bytes; null unless the caller may see figures"
    )
    # Derived datasets: the classification of their most restricted input, below which they may not go.
    classification_floor: Classification | None = None


class Dataset(DatasetEntry):
    """A dataset as stored."""

    # The latest version's curated files, written in the same transaction as latest_version, so a
    # read of the latest version needs no second lookup. Never shown: they are the platform's.
    latest_files: list[str] = Field(default_factory=list)
    latest_bytes: int = 0

    def entry(self, figures: bool) -> DatasetEntry:
        """What the API shows of it; `figures`: whether the caller may see its size."""
        shown = self.model_dump(by_alias=True, exclude={"latest_files"})
        return DatasetEntry.model_validate(shown | ({} if figures else {"latest_bytes": None}))


class DatasetPage(Model):
    datasets: list[DatasetEntry]
    next_cursor: str | None = None
