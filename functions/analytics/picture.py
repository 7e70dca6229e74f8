"""What GET /city answers (functions/analytics/city.py makes it): models only, so the API's route
imports them without the service's modules (the API function's cold start pays for those on the
first /city request, not on every cold start)."""

from __future__ import annotations

from pydantic import Field

from functions.core.model import Model


class SeriesPoint(Model):
    at: str
    value: float


class Source(Model):
    """An input behind an indicator: the version it was built from and the grants it is read under."""

    dataset_id: str
    version: int | None = None
    owner: str | None = Field(default=None, description="Null when the caller may no longer see the dataset")
    readable: bool = Field(default=False, description="Whether the department may still read it (a grant revoked: no)")
    grant_id: str | None = Field(default=None, description="The grant it is read under (null: own or open data)")


class CityIndicator(Model):
    dataset_id: str
    title: str
    unit: str
    combine: str
    limit: float | None
    better: str
    version: int | None = Field(default=None, description="The derived dataset's latest version (null: not built yet)")
    at: str | None = Field(default=None, description="The latest time of the series")
    city: float | None = Field(default=None, description="The city's figure at the latest time (districts combined)")
    districts: dict[str, float] = Field(default_factory=dict, description="District -> figure at the latest time")
    series: list[SeriesPoint] = Field(default_factory=list, description="The city's figure over time, oldest first")
    sources: list[Source] = Field(default_factory=list)
    problem: str | None = Field(default=None, description="Why the figures are missing, when they are")


class RuleAlerts(Model):
    rule_id: str
    name: str
    dataset_id: str
    raised: int = Field(description="Alerts the rule raised (every version kept)")
    open: int = Field(description="Of them, raised on the dataset's latest version: still what the data says")
    latest: str | None = None
    districts: dict[str, int] = Field(default_factory=dict, description="Open alerts by district, where the rule groups by it")


class Boundaries(Model):
    dataset_id: str
    version: int
    districts: dict[str, list[list[list[float]]]] = Field(description="District -> its polygons' outer rings, [lon, lat]")


class CityPicture(Model):
    department: str
    generated_at: str
    indicators: list[CityIndicator]
    alerts: list[RuleAlerts]
    boundaries: Boundaries | None = None
