"""Geometry columns (`x-geometry`, issue: Analytics that look ahead and in space): GeoJSON text (or
WKB) checked on ingest (GeoJSON, the declared types, a valid shape, inside the declared bounds),
stored as WKB in GeoParquet, the shapes' bounding box in the profile and in the open-data catalog's DCAT."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cityshare.generators import generate
from functions.catalog.models import IngestPolicy, TableSchema
from tests.unit.ingest_helpers import city_schema, ingest

SQUARE = {"type": "Polygon", "coordinates": [[[-2.6, 51.4], [-2.5, 51.4], [-2.5, 51.5], [-2.6, 51.5], [-2.6, 51.4]]]}
BOW_TIE = {"type": "Polygon", "coordinates": [[[-2.6, 51.4], [-2.5, 51.5], [-2.5, 51.4], [-2.6, 51.5], [-2.6, 51.4]]]}


def lines(*rows: dict[str, object]) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def test_the_demo_city_districts_are_valid_polygons_and_profiled_by_their_box(tmp_path: Path) -> None:
    source = generate("district-boundaries", 8, tmp_path / "districts.jsonl")
    outcome, rows, _ = ingest(source.read_bytes(), city_schema("district-boundaries"), "jsonl")
    assert outcome.accepted and outcome.report.rows_rejected == 0 and len(rows) == 8
    assert outcome.profile is not None
    west, south, east, north = outcome.profile.columns["geometry"].bbox or []
    assert -2.66 < west < -2.6 < -2.56 < east < -2.48 and 51.39 < south < 51.45 < north < 51.5
    assert outcome.profile.columns["geometry"].min is None  # a shape has no meaningful order


def test_curated_geometries_are_wkb_in_geoparquet_that_duckdb_reads_as_geometry(tmp_path: Path) -> None:
    import duckdb
    import pyarrow.parquet as pq
    import shapely

    source = generate("district-boundaries", 8, tmp_path / "districts.jsonl")
    given = [json.loads(json.loads(line)["geometry"]) for line in source.read_text().splitlines()]
    _, rows, curated = ingest(source.read_bytes(), city_schema("district-boundaries"), "jsonl")
    stored = shapely.from_wkb([r["geometry"] for r in rows])
    assert all(shapely.equals(shape, shapely.from_geojson(json.dumps(g))) for shape, g in zip(stored, given, strict=True))
    (tmp_path / "curated.parquet").write_bytes(curated)
    geo = json.loads(pq.read_schema(tmp_path / "curated.parquet").metadata[b"geo"])
    assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry"
    kinds = ["Polygon", "MultiPolygon", "Polygon Z", "MultiPolygon Z"]  # a height may come as GeoJSON's third number
    assert geo["columns"] == {"geometry": {"encoding": "WKB", "geometry_types": kinds}}
    described = duckdb.sql(f"DESCRIBE SELECT geometry FROM read_parquet('{tmp_path / 'curated.parquet'}')").fetchall()
    assert described[0][1].startswith("GEOMETRY")


@pytest.mark.parametrize(
    ("geometry", "rule"),
    [
        ("not json at all", "not_geojson"),
        (json.dumps({"type": "Polygon", "coordinates": "nowhere"}), "not_geojson"),
        (json.dumps({"type": "Point", "coordinates": [-2.58, 51.45]}), "geometry_type"),
        (json.dumps(BOW_TIE), "invalid_geometry"),
        (json.dumps({"type": "Polygon", "coordinates": []}), "not_geojson"),  # empty: no place at all
        (json.dumps({"type": "Feature", "properties": {"owner": "A. Person"}, "geometry": SQUARE}), "not_geojson"),
        (json.dumps({"type": "Polygon", "coordinates": [[[-2.6, 51.4], [-2.5, 51.4], [-2.5, 51.5]]]}), "not_geojson"),
        (json.dumps({"type": "Polygon", "coordinates": [[[10, 51.4], [10.1, 51.4], [10.1, 51.5], [10, 51.4]]]}), "out_of_bounds"),
    ],
)
def test_a_geometry_that_is_not_what_the_column_declares_is_rejected_with_its_rule(geometry: str, rule: str) -> None:
    schema = city_schema("district-boundaries").model_dump(by_alias=True)
    schema["properties"]["geometry"]["x-geometry"]["bounds"] = [-3.0, 51.0, -2.0, 52.0]  # the city's region
    data = lines({"district": "Good", "geometry": json.dumps(SQUARE)}, {"district": "Bad", "geometry": geometry})
    policy = IngestPolicy(on_invalid_rows="accept_valid", max_invalid_share=0.5)
    outcome, rows, _ = ingest(data, TableSchema.model_validate(schema), "jsonl", policy)
    assert [r["district"] for r in rows] == ["Good"] and outcome.report.rows_rejected == 1
    (issue,) = [i for i in outcome.report.issues if i.column == "geometry"]
    assert issue.rule == rule and issue.row == 2


def test_a_geometry_keyword_on_a_number_column_is_refused() -> None:
    with pytest.raises(ValueError, match="x-geometry applies to a string column"):
        TableSchema.model_validate(
            {"type": "object", "properties": {"shape": {"type": "number", "maxLength": 100, "x-geometry": {"types": ["Point"]}}}}
        )
    with pytest.raises(ValueError, match="west < east"):
        TableSchema.model_validate(
            {
                "type": "object",
                "properties": {"shape": {"type": "string", "x-geometry": {"types": ["Point"], "bounds": [5, 0, 1, 1]}}},
            }
        )


def test_geometries_given_as_wkb_in_parquet_are_read_as_the_geojson_they_stand_for() -> None:
    """GeoParquet writes geometries as WKB: such a column is read as GeoJSON and checked alike."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely

    shapes = [shapely.from_geojson(json.dumps(SQUARE)), shapely.from_geojson(json.dumps(BOW_TIE))]
    table = pa.table(
        {
            "district": ["Square", "Bow tie", "Garbage", "Nothing"],
            "geometry": pa.array([*shapely.to_wkb(shapes).tolist(), b"\x01\x02\x03", None], pa.binary()),
            "area_km2": [1.0, 1.0, 1.0, 1.0],
        }
    )
    sink = io.BytesIO()
    pq.write_table(table, sink)
    policy = IngestPolicy(on_invalid_rows="accept_valid", max_invalid_share=0.9)
    outcome, rows, _ = ingest(sink.getvalue(), city_schema("district-boundaries"), "parquet", policy)
    assert [r["district"] for r in rows] == ["Square"]
    assert shapely.equals(shapely.from_wkb(rows[0]["geometry"]), shapes[0])
    rules = {i.row: i.rule for i in outcome.report.issues if i.column == "geometry"}
    assert rules == {2: "invalid_geometry", 3: "not_geojson", 4: "required"}
    assert outcome.profile is not None and outcome.profile.columns["geometry"].bbox == [-2.6, 51.4, -2.5, 51.5]


def test_rules_and_sql_read_a_geometry_as_geojson_text_whether_stored_as_wkb_or_as_earlier_text(tmp_path: Path) -> None:
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from functions.analytics.scope import ReadScope

    scope = ReadScope("districts", ["district", "geometry"], geometry=frozenset({"geometry"}))
    source = generate("district-boundaries", 3, tmp_path / "districts.jsonl")
    _, rows, curated = ingest(source.read_bytes(), city_schema("district-boundaries"), "jsonl")
    (tmp_path / "wkb.parquet").write_bytes(curated)
    texts = [json.loads(line)["geometry"] for line in source.read_text().splitlines()]
    pq.write_table(pa.table({"district": [r["district"] for r in rows], "geometry": texts}), tmp_path / "text.parquet")
    for stored in ("wkb", "text"):
        read = duckdb.sql(scope.query(f"read_parquet('{tmp_path / stored}.parquet')", "true")).fetchall()
        assert [json.loads(geometry) for _, geometry in read] == [json.loads(text) for text in texts], stored
    assert scope.typed({"geometry": "BLOB"}).column_types["geometry"] == "VARCHAR"


def test_a_row_filter_may_not_compare_a_geometry() -> None:
    from functions.sharing.models import GrantTerms

    schema = city_schema("district-boundaries")
    compared = {"condition": {"column": "geometry", "op": "eq", "value": json.dumps(SQUARE)}}
    with pytest.raises(ValueError, match="a geometry"):
        GrantTerms.model_validate({"row_filter": compared}).check_against(schema)
    GrantTerms.model_validate({"row_filter": {"condition": {"column": "geometry", "op": "not_null"}}}).check_against(schema)


def test_a_grant_counts_a_geometry_and_may_not_take_its_least_or_greatest() -> None:
    from functions.sharing.models import GrantTerms

    schema = city_schema("district-boundaries")
    for aggregate in ("min", "max"):
        terms = {"aggregate": {"group_by": ["district"], "measures": [{"aggregate": aggregate, "column": "geometry"}]}}
        with pytest.raises(ValueError, match="a geometry is counted"):
            GrantTerms.model_validate(terms).check_against(schema)
    counted = {"aggregate": {"group_by": ["district"], "measures": [{"aggregate": "count", "column": "geometry"}]}}
    GrantTerms.model_validate(counted).check_against(schema)


def test_rows_whose_subject_is_a_geometry_are_told_apart_by_its_bytes() -> None:
    """x-subject may name a geometry (a parcel, a home): its WKB is not text, and keys it as it is."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import shapely

    from functions.catalog.models import SubjectDeclaration
    from functions.sharing.views import subject_keys

    points = shapely.to_wkb([shapely.Point(-2.58, 51.45), shapely.Point(-2.58, 51.45), shapely.Point(-2.5, 51.4), None])
    table = pa.table({"parcel": pa.array(points.tolist(), pa.binary())})
    keys = subject_keys(table, SubjectDeclaration(columns=["parcel"]))
    assert pc.count_distinct(keys).as_py() == 3  # two rows about one parcel; a null subject stands for itself


def test_a_view_that_groups_by_a_geometry_is_geoparquet_and_one_without_it_is_not() -> None:
    import pyarrow as pa

    from functions.columnar.geometry import with_geoparquet_metadata

    declared = city_schema("district-boundaries").wkb_columns()
    grouped = pa.table({"geometry": pa.array([b"\x01"], pa.binary()), "group_size": [5]})
    grouped = grouped.replace_schema_metadata({b"cityshare.suppressed_groups": b"0"})
    kept = with_geoparquet_metadata(grouped, declared).schema.metadata
    assert kept[b"cityshare.suppressed_groups"] == b"0" and json.loads(kept[b"geo"])["primary_column"] == "geometry"
    masked = pa.table({"district": ["A"], "geometry": ["0" * 32]})
    assert b"geo" not in (with_geoparquet_metadata(masked, declared).schema.metadata or {})


def test_ewkb_in_another_reference_system_is_refused_not_read_as_longitude_latitude() -> None:
    import pyarrow as pa
    import shapely

    from functions.columnar.geometry import geojson_of_wkb

    british = shapely.set_srid(shapely.Point(358000, 173000), 27700)
    wgs84 = shapely.set_srid(shapely.Point(-2.58, 51.45), 4326)
    given = pa.array([shapely.to_wkb(british, include_srid=True), shapely.to_wkb(wgs84, include_srid=True)], pa.binary())
    refused, read = geojson_of_wkb(given).to_pylist()
    assert refused == "WKB in SRID 27700, not WGS 84 longitude/latitude"
    assert json.loads(read) == {"type": "Point", "coordinates": [-2.58, 51.45]}
