"""The city picture (GET /city): what a department's indicators say, per district on a map of the
city and over time, built only from what it may read.

An indicator is a derived dataset the department defined with `indicator` (functions/analytics/
models.py): the analytics already in the platform compute it from the inputs its grants allow, and
rebuild it when they change. The picture reads each indicator's latest version (a small,
pre-aggregated table) and answers a few numbers per district and a short series; the map's
districts come from a dataset tagged `boundaries` the department may read (a `district` and a
GeoJSON `geometry` column); the alerts are those of the department's rules on the indicators'
inputs. Every read is a ReadData decision, audited like any other.
"""

from __future__ import annotations

import json
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextvars import copy_context
from functools import cache
from itertools import islice
from threading import Lock
from typing import Any, Protocol, cast

from functions.analytics.models import Alert, AlertRule, Indicator
from functions.analytics.picture import Boundaries, CityIndicator, CityPicture, RuleAlerts, Source
from functions.analytics.repository import AnalyticsRepository
from functions.analytics.scope import scope_for
from functions.catalog.models import Dataset
from functions.catalog.repository import CatalogQuery
from functions.catalog.service import CatalogService, CoveringGrants
from functions.core.clock import utc_now
from functions.core.errors import Forbidden, InvalidRequest, NotFound
from functions.core.observability import logger
from functions.identity.models import Caller
from functions.ingest.repository import IngestRepository
from functions.sharing.models import Grant

MAX_INDICATORS = 20
SERIES_POINTS = 60
# Coordinates to about 10 m: a district's outline, not a survey.
COORDINATE_DECIMALS = 4

READERS = 8
MAX_MAPS = 10
SCAN_PAGE = 100  # a tag is a filter: few datasets match in many read


class ReadFiles(Protocol):
    """Reads the named columns of a version's curated files, through a session acting for their owner."""

    def prepare(self, dataset: Dataset) -> None: ...

    def __call__(self, dataset: Dataset, files: list[str], columns: list[str]) -> Any: ...


class GrantsTo(Protocol):
    def grants_to(self, department: str) -> Sequence[Any]: ...


class CuratedFiles:
    """Reads columns of a version's curated Parquet through a session acting for the data's owner
    (the caller's own department for its indicators; the boundaries' owner once ReadData allowed it)."""

    def __init__(self, scopes: Any, bucket: str) -> None:
        self._scopes = scopes
        self._bucket = bucket

    def prepare(self, dataset: Dataset) -> None:
        self._scopes.s3(dataset.owner, dataset.dataset_id)

    def __call__(self, dataset: Dataset, files: list[str], columns: list[str]) -> Any:
        import io

        import pyarrow as pa  # only where a picture is drawn

        from functions.columnar.types import read_parquet

        s3 = self._scopes.s3(dataset.owner, dataset.dataset_id)
        tables = [read_parquet(io.BytesIO(s3.get_object(Bucket=self._bucket, Key=f)["Body"].read()), columns) for f in files]
        return pa.concat_tables(tables) if tables else pa.table({c: [] for c in columns})


class CityService:
    """Draws the picture in a few rounds: the definitions, datasets and grants it needs in batches,
    then every decision (each data read audited, in order), then the reads themselves in parallel."""

    def __init__(
        self,
        catalog: CatalogService,
        repository: AnalyticsRepository,
        versions: IngestRepository,
        grants: GrantsTo,
        read_files: ReadFiles,
        clock: Callable[[], str] = utc_now,
    ) -> None:
        self._catalog = catalog
        self._repository = repository
        self._versions = versions
        self._grants = grants
        self._read_files = read_files
        self._clock = clock

    def picture(self, caller: Caller, request_id: str = "") -> CityPicture:
        department = caller.department_id
        pool = _readers()
        defined_future = pool.submit(self._repository.derived_of, department)
        maps_future = pool.submit(self._scan, CatalogQuery(tag="boundaries"), MAX_MAPS)
        grants_future = pool.submit(self._grants.grants_to, department)
        definitions = [d for d in defined_future.result() if d.indicator is not None and d.owner == department]
        definitions = sorted(definitions, key=lambda d: d.dataset_id)[:MAX_INDICATORS]
        all_inputs = sorted({i for definition in definitions for i in definition.inputs})
        found = self._catalog.repository.get_many([*(d.dataset_id for d in definitions), *all_inputs]) if definitions else {}
        # An indicator whose dataset is gone (or was never made) is not shown, nor are its inputs' alerts.
        indicators = [
            (found[d.dataset_id], d) for d in definitions if d.dataset_id in found and found[d.dataset_id].owner == department
        ]
        input_ids = sorted({i for _, definition in indicators for i in definition.inputs})
        rules_future = {i: pool.submit(self._repository.rules_of, i) for i in input_ids}
        inputs = {i: found[i] for i in input_ids if i in found}
        grants = grants_future.result()
        covering = CoveringGrants(grants)
        candidates = {d.dataset_id: covering.of(d) for d in [*inputs.values(), *maps_future.result()]}

        # Decisions, each data read audited: the department's own datasets (its indicators, and the
        # map when it is its own) in one write to its chain, the others each in its owner's chain.
        boundaries = self._readable_map(caller, maps_future.result(), candidates)
        own_map = [boundaries] if boundaries is not None and boundaries.owner == department else []
        self._catalog.require_own(caller, "ReadData", [*(d for d, _ in indicators), *own_map], "city-picture", request_id)
        if boundaries is not None and not own_map:
            self._catalog.require(
                caller, "ReadData", boundaries, candidates[boundaries.dataset_id], purpose="city-picture", request_id=request_id
            )
        watched = {}
        for input_id, future in rules_future.items():
            rules = [r for r in future.result() if r.owner == department]
            watched_input = inputs.get(input_id)
            if not rules or watched_input is None or not self._may(caller, "ReadData", watched_input, candidates[input_id]):
                continue
            try:
                self._catalog.require(
                    caller, "ReadData", watched_input, candidates[input_id], purpose="alerts", request_id=request_id
                )
            except (Forbidden, NotFound):
                continue  # the grant ended since: the refusal is audited, the alerts are not shown
            watched[input_id] = (watched_input, rules)

        # The reads, in parallel: each indicator's figures and the versions it was built from, the
        # alerts, the map. A version never changes: what was computed of it is kept (per process).
        for read in [d for d, _ in indicators] + ([boundaries] if boundaries else []):
            self._read_files.prepare(read)  # its session, made once before the threads share it
        computed = {
            d.dataset_id: _submit(pool, self._computed, d, definition.indicator)
            for d, definition in indicators
            if d.latest_version and definition.indicator is not None
        }
        raised = {i: pool.submit(self._repository.alerts_of, i) for i in watched}
        outline = _submit(pool, self._outlines, boundaries) if boundaries else None

        shown = []
        for dataset, definition in indicators:
            assert definition.indicator is not None
            found_figures: dict[str, Any] = {}
            lineage: list[str] = []
            problem = None
            if dataset.dataset_id in computed:
                try:
                    found_figures, lineage = computed[dataset.dataset_id].result()
                except Exception as error:  # one indicator that cannot be read leaves the others shown
                    logger.warning("indicator not computed", extra={"dataset": dataset.dataset_id, "error": str(error)[:200]})
                    problem = "its latest version could not be read; the others are shown"
            tile = CityIndicator(
                dataset_id=dataset.dataset_id,
                title=definition.indicator.title,
                unit=definition.indicator.unit,
                combine=definition.indicator.combine,
                limit=definition.indicator.limit,
                better=definition.indicator.better,
                version=dataset.latest_version or None,
                sources=self._sources(caller, definition.inputs, lineage, inputs, candidates),
                problem=problem,
            )
            shown.append(CityIndicator.model_validate(tile.model_dump() | found_figures) if found_figures else tile)
        return CityPicture(
            department=department,
            generated_at=self._clock(),
            indicators=shown,
            alerts=[a for i, (dataset, rules) in watched.items() for a in _rule_alerts(dataset, rules, raised[i].result())],
            boundaries=self._drawn(boundaries, outline),
        )

    @staticmethod
    def _drawn(boundaries: Dataset | None, outline: Any) -> Boundaries | None:
        if boundaries is None or outline is None:
            return None
        try:
            return Boundaries(dataset_id=boundaries.dataset_id, version=boundaries.latest_version, districts=outline.result())
        except Exception as error:  # a map that cannot be read leaves the figures shown
            logger.warning("boundaries not read", extra={"dataset": boundaries.dataset_id, "error": str(error)[:200]})
            return None

    def _computed(self, dataset: Dataset, indicator: Indicator) -> tuple[dict[str, Any], list[str]]:
        """An indicator version's figures and the input versions it was built from (kept once computed)."""

        def compute() -> tuple[dict[str, Any], list[str]]:
            table = self._read_files(dataset, dataset.latest_files, indicator.columns())
            return figures(table, indicator), self._versions.get_version(dataset.dataset_id, dataset.latest_version).inputs

        key = ("indicator", dataset.dataset_id, dataset.created_at, dataset.latest_version, indicator.model_dump_json())
        return cast(tuple[dict[str, Any], list[str]], _remembered(key, compute))

    def _outlines(self, dataset: Dataset) -> dict[str, list[list[list[float]]]]:
        def compute() -> dict[str, list[list[list[float]]]]:
            table = self._read_files(dataset, dataset.latest_files, ["district", "geometry"])
            return outlines(table.set_column(1, "geometry", geojson_texts(table.column("geometry"))).to_pylist())

        return cast(
            dict[str, list[list[list[float]]]],
            _remembered(("outlines", dataset.dataset_id, dataset.created_at, dataset.latest_version), compute),
        )

    def _scan(self, query: CatalogQuery, most: int) -> list[Dataset]:
        return [dataset for dataset, _ in islice(self._catalog.repository.scan_pages(query, SCAN_PAGE, None), most)]

    def _may(self, caller: Caller, action: str, dataset: Dataset, candidates: Sequence[Any]) -> bool:
        return self._catalog.decide(caller, action, dataset, candidates, audit=False)[0].allowed

    def _sources(
        self,
        caller: Caller,
        input_ids: list[str],
        lineage: list[str],
        inputs: dict[str, Dataset],
        candidates: dict[str, list[Any]],
    ) -> list[Source]:
        versions = {i.split("@")[0]: int(i.split("@")[1]) for i in lineage}
        sources = []
        for input_id in input_ids:
            dataset = inputs.get(input_id)
            if dataset is None or not self._may(caller, "ViewDataset", dataset, candidates[input_id]):
                sources.append(Source(dataset_id=input_id))  # gone, or no longer visible: nothing more said
                continue
            decision, grant = self._catalog.decide(caller, "ReadData", dataset, candidates[input_id], audit=False)
            sources.append(
                Source(
                    dataset_id=input_id,
                    version=versions.get(input_id),
                    owner=dataset.owner,
                    readable=decision.allowed,
                    grant_id=grant.facts().grant_id if grant is not None else None,
                )
            )
        return sources

    def _readable_map(self, caller: Caller, maps: list[Dataset], candidates: dict[str, list[Any]]) -> Dataset | None:
        """The first dataset tagged `boundaries` (its own first) the department may read whole: its own, public, or
        granted with its `district` and `geometry` columns, every row and no coarsening (the outlines
        are then the same for every reader, and kept once read). Decided here, not audited: the
        caller authorises (and audits) the read of the one chosen."""
        for dataset in sorted(maps, key=lambda d: d.owner != caller.department_id):  # its own map first
            if not dataset.latest_version:
                continue
            decision, grant = self._catalog.decide(caller, "ReadData", dataset, candidates[dataset.dataset_id], audit=False)
            if not decision.allowed:
                continue
            try:
                scope = scope_for(dataset, cast(Grant | None, grant))
            except InvalidRequest:
                continue  # a differentially private grant: groups, not outlines
            whole = scope.aggregate is None and scope.row_filter is None and not {"district", "geometry"} & set(scope.generalised)
            if whole and {"district", "geometry"} <= set(scope.columns):
                return dataset
        return None


_kept: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_kept_lock = Lock()
MAX_KEPT = 256


def _remembered(key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
    """What `compute` made of an immutable version (the key names it), kept for the next pictures of
    a warm process. Only ever handed out after the caller's own read was authorised."""
    with _kept_lock:
        if key in _kept:
            _kept.move_to_end(key)
            return _kept[key]
    value = compute()
    with _kept_lock:
        _kept[key] = value
        while len(_kept) > MAX_KEPT:
            _kept.popitem(last=False)
    return value


def _submit(pool: ThreadPoolExecutor, work: Callable[..., Any], *args: Any) -> Future[Any]:
    """Run `work` on a reader thread within this request's context: its data sessions are the request's
    (functions/core/scoped.py `serving`)."""
    return pool.submit(copy_context().run, work, *args)


@cache
def _readers() -> ThreadPoolExecutor:
    """The threads that read in parallel, made once per process (a warm Lambda keeps them)."""
    return ThreadPoolExecutor(max_workers=READERS, thread_name_prefix="city-reader")


def _rule_alerts(dataset: Dataset, rules: list[AlertRule], raised: list[Alert]) -> list[RuleAlerts]:
    """Each rule's alerts: raised on any version, and open (raised on the latest: still what the data says)."""
    found = []
    for rule in rules:
        mine = [a for a in raised if a.rule_id == rule.rule_id]
        still = [a for a in mine if a.version == dataset.latest_version]
        districts = Counter(str(a.group["district"]) for a in still if "district" in a.group)
        ends = [end for a in mine if (end := a.window_end or a.window_start)]
        found.append(
            RuleAlerts(
                rule_id=rule.rule_id,
                name=rule.name,
                dataset_id=dataset.dataset_id,
                raised=len(mine),
                open=len(still),
                latest=max(ends) if ends else None,
                districts=dict(districts),
            )
        )
    return found


def figures(table: Any, indicator: Indicator) -> dict[str, Any]:
    """The indicator's figures from its derived table (pyarrow): each district's value at the latest
    time (several rows of a district combined), the city's (its districts' values combined; every
    row's, for a city-wide indicator), and the city's series over its last SERIES_POINTS times.
    Times are ordered as what they are (times, numbers), then written as text."""
    rows = [r for r in table.to_pylist() if r.get(indicator.value) is not None]
    if indicator.time:
        rows = [r for r in rows if r.get(indicator.time) is not None]
    if indicator.district:
        rows = [r for r in rows if r.get(indicator.district) is not None]
    if not rows:
        return {}

    def combined(values: Sequence[float]) -> float:
        return float(sum(values)) if indicator.combine == "sum" else float(sum(values)) / len(values)

    def per_district(at_time: list[dict[str, Any]]) -> dict[str, float]:
        districts: dict[str, list[float]] = {}
        for row in at_time:
            districts.setdefault(str(row[indicator.district or ""]), []).append(float(row[indicator.value]))
        return {name: combined(values) for name, values in sorted(districts.items())}

    def city(at_time: list[dict[str, Any]]) -> float:
        if indicator.district:
            return round(combined(list(per_district(at_time).values())), 3)
        return round(combined([float(row[indicator.value]) for row in at_time]), 3)

    by_time: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        by_time.setdefault(row[indicator.time] if indicator.time else None, []).append(row)
    times = sorted(by_time) if indicator.time else [None]
    latest = times[-1]
    return {
        "at": _moment(latest) if indicator.time else None,
        "city": city(by_time[latest]),
        "districts": {name: round(value, 3) for name, value in per_district(by_time[latest]).items()}
        if indicator.district
        else {},
        "series": [{"at": _moment(at), "value": city(by_time[at])} for at in times[-SERIES_POINTS:]] if indicator.time else [],
    }


def _moment(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def geojson_texts(values: Any) -> Any:
    """A geometry column as GeoJSON text: stored as WKB (older versions hold the text itself)."""
    import pyarrow as pa

    if not pa.types.is_binary(values.type):
        return values
    from functions.columnar.geometry import geojson_of_wkb  # shapely: the API's layer carries it

    return geojson_of_wkb(values.combine_chunks())


def outlines(rows: list[dict[str, Any]]) -> dict[str, list[list[list[float]]]]:
    """Each district's polygons (GeoJSON Polygon or MultiPolygon text) as their outer rings; rows
    whose geometry is not one are left out."""
    found: dict[str, list[list[list[float]]]] = {}
    for row in rows:
        try:
            geometry = json.loads(row["geometry"]) if isinstance(row.get("geometry"), str) else None
        except ValueError:
            continue
        if not isinstance(geometry, dict) or row.get("district") is None:
            continue
        polygons = {"Polygon": [geometry.get("coordinates")], "MultiPolygon": geometry.get("coordinates")}.get(
            str(geometry.get("type")), []
        )
        for polygon in polygons if isinstance(polygons, list) else []:
            try:
                ring = [[round(float(x), COORDINATE_DECIMALS), round(float(y), COORDINATE_DECIMALS)] for x, y, *_ in polygon[0]]
            except (TypeError, ValueError, IndexError, KeyError):
                continue  # not a ring of [lon, lat] pairs
            if len(ring) >= 3:
                found.setdefault(str(row["district"]), []).append(ring)
    return found
