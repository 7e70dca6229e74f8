"""Geometry columns (`x-geometry`): GeoJSON text checked on ingest with shapely (GEOS), stored as
WKB in GeoParquet, and their bounding box for the profile. Imported only where a schema declares
such a column (shapely is in the data functions' layer only)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

from functions.catalog.models import GeometrySpec

_FEATURE = r'"type"\s*:\s*"Feature'

# shapely's type ids, by GeoJSON type name.
_TYPE_IDS = {"Point": 0, "LineString": 1, "Polygon": 3, "MultiPoint": 4, "MultiLineString": 5, "MultiPolygon": 6}


def geometries(values: pa.Array) -> Any:
    """The column's values (GeoJSON text, or WKB as stored) as shapely geometries (None where a
    value is null or not a GeoJSON geometry: a Feature, whose properties would travel unchecked, is
    not one)."""
    import pyarrow.compute as pc
    import shapely

    if pa.types.is_binary(values.type) or pa.types.is_large_binary(values.type):
        return shapely.from_wkb(np.asarray(values.to_numpy(zero_copy_only=False), dtype=object), on_invalid="ignore")

    features = np.asarray(
        pc.fill_null(pc.match_substring_regex(values, _FEATURE), False).to_numpy(zero_copy_only=False), dtype=bool
    )
    texts = np.asarray(values.to_numpy(zero_copy_only=False), dtype=object)
    texts[features] = None
    return shapely.from_geojson(texts, on_invalid="ignore")


def geometry_problems(values: pa.Array, spec: GeometrySpec) -> list[tuple[str, np.ndarray]]:
    """Masks of the rows whose value is not GeoJSON, not of the declared types, not a valid shape
    (a ring crossing itself, a polygon not closed), or not inside the declared bounds."""
    import shapely

    shapes = geometries(values)
    given = np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    parsed = ~shapely.is_missing(shapes) & ~shapely.is_empty(shapes)  # an empty shape has no place
    kinds = shapely.get_type_id(shapes)
    wrong_kind = parsed & ~np.isin(kinds, [_TYPE_IDS[t] for t in spec.types])
    checked = parsed & ~wrong_kind
    invalid = checked & ~shapely.is_valid(shapes)
    west, south, east, north = spec.box()
    with np.errstate(invalid="ignore"):
        box = shapely.bounds(shapes)
        outside = checked & ~invalid & ((box[:, 0] < west) | (box[:, 1] < south) | (box[:, 2] > east) | (box[:, 3] > north))
    return [
        ("not_geojson", given & ~parsed),
        ("geometry_type", wrong_kind),
        ("invalid_geometry", invalid),
        ("out_of_bounds", outside),
    ]


def bounding_box(values: pa.Array) -> list[float] | None:
    """[west, south, east, north] of the column's geometries; None when it holds none."""
    import shapely

    shapes = geometries(values)
    if not (~shapely.is_missing(shapes)).any():
        return None
    box = [float(b) for b in shapely.total_bounds(shapes)]
    return box if all(np.isfinite(box)) else None


def wkb_of(values: pa.Array) -> pa.Array:
    """Checked GeoJSON geometries as ISO WKB, as GeoParquet stores them (nulls stay null)."""
    import shapely

    return pa.array(shapely.to_wkb(geometries(values), flavor="iso"), pa.binary())


def geojson_of_wkb(values: pa.Array) -> pa.Array:
    """WKB geometries as GeoJSON text; a value that is not WKB becomes a text that says so, which the
    geometry check then reports (`not_geojson`) with the row, never a silent null."""
    import shapely

    given = values.to_pylist()
    shapes = shapely.from_wkb(given, on_invalid="ignore")
    # EWKB may name its reference system: only WGS 84 longitude/latitude (4326, or none) is read as such.
    srids = shapely.get_srid(shapes)
    texts = shapely.to_geojson(shapes)
    return pa.array(
        [
            None
            if raw is None
            else f"not WKB ({len(raw)} bytes)"
            if text is None
            else f"WKB in SRID {srid}, not WGS 84 longitude/latitude"
            if srid not in (0, 4326)
            else text
            for raw, text, srid in zip(given, texts.tolist(), srids.tolist(), strict=True)
        ],
        pa.string(),
    )


def geoparquet_metadata(columns: dict[str, GeometrySpec]) -> dict[bytes, bytes]:
    """The file metadata that makes Parquet GeoParquet (1.1.0): which columns are geometries, their
    encoding and types. No `crs`: its default, OGC:CRS84 (longitude, latitude on WGS 84), is what
    x-geometry declares."""
    # Coordinates may carry a height (GeoJSON's third number): GeoParquet names those types "<type> Z".
    described = {
        name: {"encoding": "WKB", "geometry_types": [*spec.types, *(f"{kind} Z" for kind in spec.types)]}
        for name, spec in columns.items()
    }
    geo = {"version": "1.1.0", "primary_column": next(iter(columns)), "columns": described}
    return {b"geo": json.dumps(geo, separators=(",", ":")).encode()}


def with_geoparquet_metadata(table: pa.Table, declared: dict[str, GeometrySpec]) -> pa.Table:
    """The table with `geo` metadata naming the declared geometry columns it holds as WKB: a view may
    leave a geometry out, mask it (tokens are not WKB) or group by it (an aggregate's new table)."""
    metadata = {k: v for k, v in (table.schema.metadata or {}).items() if k != b"geo"}
    held = {
        name: spec
        for name, spec in declared.items()
        if name in table.column_names and pa.types.is_binary(table.schema.field(name).type)
    }
    if held:
        metadata.update(geoparquet_metadata(held))
    return table.replace_schema_metadata(metadata or None)
