"""Geometry columns (`x-geometry`): GeoJSON text checked on ingest with shapely (GEOS), and their
bounding box for the profile. Imported only where a schema declares such a column."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from functions.catalog.models import GeometrySpec

_FEATURE = r'"type"\s*:\s*"Feature'

# shapely's type ids, by GeoJSON type name.
_TYPE_IDS = {"Point": 0, "LineString": 1, "Polygon": 3, "MultiPoint": 4, "MultiLineString": 5, "MultiPolygon": 6}


def geometries(values: pa.Array) -> Any:
    """The column's values as shapely geometries (None where a value is null or not a GeoJSON
    geometry: a Feature, whose properties would travel unchecked, is not one)."""
    import pyarrow.compute as pc
    import shapely

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
