"""Alert rules, subscriptions and derived datasets: what departments ask CityShare to do when data lands."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, HttpUrl, model_validator

from functions.catalog.models import ColumnName, Tag
from functions.core.events import Forecasted
from functions.core.model import Model

DatasetId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{2,62}$")]
Aggregate = Literal["mean", "sum", "count", "min", "max"]
Comparison = Literal["gt", "ge", "lt", "le"]
SubscriptionKind = Literal["versions", "alerts"]
# A forecast season in minutes (the window divides it).
SEASON_MINUTES = {"day": 1440, "week": 10080}
ResultType = Literal["string", "integer", "number", "boolean", "date-time", "date"]


class Measure(Model):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    aggregate: Aggregate
    column: ColumnName | None = Field(default=None, description="Not needed for count (rows)")

    @model_validator(mode="after")
    def _column_unless_count(self) -> Measure:
        if self.aggregate != "count" and self.column is None:
            raise ValueError(f"{self.aggregate} needs a column")
        return self


class Window(Model):
    """Tumbling windows over a date-time column."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    column: ColumnName
    minutes: int = Field(ge=1, le=43_200)


class Baseline(Model):
    """Compare each window with `factor` x the median (or mean) of the group's previous windows."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    statistic: Literal["median", "mean"] = "median"
    windows: int = Field(ge=1, le=1000, description="How many previous windows of the group")
    factor: float = Field(gt=0, le=1000)


class ForecastTerms(Model):
    """Fire on a forecast: each group's windows forecast `horizon` windows ahead (a seasonal profile
    of the last `history` seasons, corrected by how far the latest window is from it), firing when a
    forecast window crosses the threshold (or, with trigger `interval`, the interval's far bound)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    horizon: int = Field(ge=1, le=168, description="Windows ahead, e.g. 6 hourly windows for the next 6 hours")
    season: Literal["day", "week"] = Field(default="week", description="The cycle the profile follows")
    history: int = Field(default=4, ge=1, le=52, description="Seasons of history the profile and the fit use")
    level: float = Field(default=0.95, ge=0.5, le=0.999, description="The prediction interval's coverage")
    trigger: Literal["forecast", "interval"] = Field(
        default="forecast", description="What must cross: the forecast, or its interval's far bound"
    )
    max_seconds: int = Field(
        default=15,
        ge=1,
        le=20,
        description="The time budget of a fit (each new version) and of the backtest (within the API's 29 s)",
    )
    engine: Literal["duckdb", "athena"] = Field(
        default="duckdb",
        description="Where the rows are reduced to each group's windows: duckdb (in the function, from the "
        "version's files) or athena (AWS only: a dataset too large for the function; the fit runs on the windows)",
    )


class AlertRuleCreate(Model):
    """E.g. hourly mean of pm25 per station_id above 75; 5-minute mean speed per segment below 10 for 3
    windows in a row; daily count per district above 2x its 28-day median."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    name: str = Field(min_length=3, max_length=200)
    measure: Measure
    group_by: list[ColumnName] = Field(default_factory=list, max_length=5)
    window: Window | None = None
    comparison: Comparison
    threshold: float | None = None
    baseline: Baseline | None = None
    consecutive: int = Field(default=1, ge=1, le=100, description="Windows in a row that must all cross")
    forecast: ForecastTerms | None = Field(default=None, description="Fire when a forecast crosses the threshold, ahead of time")

    @model_validator(mode="after")
    def _consistent(self) -> AlertRuleCreate:
        if (self.threshold is None) == (self.baseline is None):
            raise ValueError("give exactly one of threshold and baseline")
        if (self.consecutive > 1 or self.baseline is not None) and self.window is None:
            raise ValueError("consecutive windows and baselines need a window")
        if self.forecast is not None:
            if self.window is None or self.threshold is None or self.baseline is not None or self.consecutive != 1:
                raise ValueError("a forecast rule has a window and a threshold (no baseline, no consecutive windows)")
            season = SEASON_MINUTES[self.forecast.season]
            if season % self.window.minutes:
                raise ValueError(f"a forecast's window divides its season ({season} minutes): {self.window.minutes} does not")
            if self.forecast.horizon > season // self.window.minutes:
                raise ValueError("a forecast looks at most one season ahead")
        return self

    def columns(self) -> set[str]:
        used = set(self.group_by) | ({self.measure.column} if self.measure.column else set())
        return used | ({self.window.column} if self.window else set())


class Backtest(Model):
    """A forecast rule run at every window of the history, scored against what then happened."""

    origins: int = Field(description="Windows (per group) the rule was run at")
    alarms: int = Field(description="Of those, the ones at which it would have fired")
    false_alarms: int = Field(description="Alarms after which no window of the horizon crossed")
    events: int = Field(description="Windows that crossed after one that did not, while forecasts were made")
    hits: int = Field(description="Events forecast to cross from a window of the horizon before them")
    misses: int
    hit_rate: float | None = None
    false_alarm_ratio: float | None = Field(default=None, description="false_alarms / alarms")
    mean_lead_minutes: float | None = Field(default=None, description="How long before a hit event it was first forecast")
    mase: float | None = Field(default=None, description="Mean absolute error over the seasonal-naive forecast's (< 1: better)")
    forecasts_scored: int = 0
    history_version: int | None = Field(default=None, description="The version whose history was backtested")


class AlertRule(AlertRuleCreate):
    rule_id: str
    dataset_id: str
    owner: str = Field(description="The department that defined the rule (not necessarily the dataset's)")
    created_by: str
    created_at: str
    grant_id: str | None = Field(default=None, description="The grant the rule reads under (none for the dataset's owner)")
    backtest: Backtest | None = Field(default=None, description="A forecast rule's backtest on the history, run when defined")


class RuleList(Model):
    rules: list[AlertRule]


class Alert(Model):
    alert_id: str
    rule_id: str
    dataset_id: str
    version: int
    group: dict[str, Any]
    window_start: str | None = None
    window_end: str | None = None
    value: float
    threshold: float
    forecast: Forecasted | None = Field(default=None, description="A forecast rule's: the interval and how far ahead")


class SubscriptionCreate(Model):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    dataset_id: DatasetId | None = None
    tag: Tag | None = None
    kinds: list[SubscriptionKind] = Field(default_factory=lambda: list[SubscriptionKind](["versions"]), min_length=1)
    webhook_url: HttpUrl | None = Field(default=None, description="Also POST each notification here, signed (HMAC-SHA256)")

    @model_validator(mode="after")
    def _one_subject(self) -> SubscriptionCreate:
        if (self.dataset_id is None) == (self.tag is None):
            raise ValueError("subscribe to exactly one of dataset_id and tag")
        return self


class Subscription(Model):
    subscription_id: str
    department: str
    dataset_id: str | None = None
    tag: str | None = None
    kinds: list[str]
    webhook_url: str | None = None
    created_by: str
    created_at: str


class CreatedSubscription(Subscription):
    webhook_secret: str | None = Field(
        default=None, description="Shown once: verify X-CityShare-Signature = hex HMAC-SHA256(secret, timestamp + '.' + body)"
    )


class SubscriptionList(Model):
    subscriptions: list[Subscription]


class Indicator(Model):
    """A derived dataset as a tile of the city picture (GET /city): its `value` per `district` (none:
    one figure for the city) and over `time`, the latest time's values on the map."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    title: str = Field(min_length=1, max_length=60, description="The tile's name, e.g. Air quality")
    unit: str = Field(default="", max_length=20, description="e.g. µg/m³, km/h, %")
    value: ColumnName = Field(description="The result column holding the figure")
    district: ColumnName | None = Field(default="district", description="The result column naming the district; null: city-wide")
    time: ColumnName | None = Field(default=None, description="The result column of the time (a day, an hour); null: no series")
    combine: Literal["mean", "sum"] = Field(default="mean", description="How districts' values make the city's")
    limit: float | None = Field(default=None, description="A limit to compare with (e.g. a legal or WHO limit)")
    better: Literal["lower", "higher"] = Field(default="lower", description="Which way is good, for colours")

    def columns(self) -> list[str]:
        return [c for c in (self.value, self.district, self.time) if c]


class PlaceJoin(Model):
    """Places each row of one input (points) in the areas of another (polygons) that hold it, e.g.
    vehicles' positions in the city's districts: a table the query reads, holding the points' columns
    and the named columns of the area each point lies in. A point in no area is left out; a point in
    two overlapping areas appears once for each."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    table: ColumnName = Field(description="The table the query reads, e.g. positions_in_districts")
    points: DatasetId = Field(description="An input whose rows are points")
    longitude: ColumnName | None = Field(default=None, description="The points' longitude column (degrees)")
    latitude: ColumnName | None = Field(default=None, description="The points' latitude column (degrees)")
    point: ColumnName | None = Field(default=None, description="Or: the points' x-geometry column of GeoJSON Points")
    areas: DatasetId = Field(description="An input whose x-geometry column holds Polygons or MultiPolygons")
    geometry: ColumnName = Field(default="geometry", description="The areas' geometry column")
    area_columns: list[ColumnName] = Field(min_length=1, max_length=10, description="The areas' columns each row gains")

    @model_validator(mode="after")
    def _one_way_to_place(self) -> PlaceJoin:
        coordinates = self.longitude is not None and self.latitude is not None
        if coordinates == (self.point is not None) or (self.longitude is None) != (self.latitude is None):
            raise ValueError("give the points as longitude and latitude columns, or as a point column")
        if self.geometry in self.area_columns:
            raise ValueError("area_columns name what each row gains; the area's geometry is not one of them")
        return self


class DerivedDatasetCreate(Model):
    """A dataset computed by a SQL query over datasets the definer may read; rebuilt when an input
    gets a new version. Inputs appear in the query as tables named like the dataset with `_` for `-`."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    dataset_id: DatasetId
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    inputs: list[DatasetId] = Field(min_length=1, max_length=5)
    sql: str = Field(min_length=8, max_length=20_000)
    engine: Literal["duckdb", "athena"] = Field(
        default="duckdb",
        description="duckdb (default; DuckDB SQL, on Lambda) or athena (Athena SQL, for inputs too large for Lambda; AWS only)",
    )
    result_columns: dict[ColumnName, ResultType] | None = Field(
        default=None, description="athena only: the result's columns and types (DuckDB infers them itself)"
    )
    indicator: Indicator | None = Field(default=None, description="Show the result in the department's city picture")
    places: list[PlaceJoin] = Field(
        default_factory=list, max_length=3, description="duckdb only: point-in-polygon joins of inputs, as tables the query reads"
    )

    @model_validator(mode="after")
    def _athena_declares_columns(self) -> DerivedDatasetCreate:
        if self.engine == "athena" and not self.result_columns:
            raise ValueError("an athena derived dataset declares its result_columns")
        if self.engine == "athena" and self.places:
            raise ValueError("places are joined on the duckdb engine; in Athena SQL use ST_Contains and from_geojson_geometry")
        for place in self.places:
            outside = sorted({place.points, place.areas} - set(self.inputs))
            if outside:
                raise ValueError(f"a place join reads inputs only: {', '.join(outside)} is not among them")
        tables = [place.table for place in self.places]
        if len(set(tables)) != len(tables) or set(tables) & {i.replace("-", "_") for i in self.inputs}:
            raise ValueError("each place join names a table of its own, not an input's")
        return self


class DerivedDataset(DerivedDatasetCreate):
    owner: str
    classification: str
    created_by: str
    created_at: str
    columns: dict[str, str] = Field(description="Result column -> DuckDB type")


class LineageEdge(Model):
    dataset_id: str
    version: int | None = None


class Lineage(Model):
    dataset_id: str
    version: int | None = Field(default=None, description="The latest version, whose inputs `upstream` lists")
    upstream: list[LineageEdge]
    downstream: list[LineageEdge]
    sql: str | None = None
