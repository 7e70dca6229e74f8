"""Figures of analytics in space (issue: Analytics that look ahead and in space). Median of 7 runs,
the compared actions alternating within each round, same run, this machine:

1. a derived dataset's place join (`places`: plain SQL in the DuckDB sandbox) of 1,000,000 points to
   100 districts of 24 vertices each, some MultiPolygons, against a bare shapely (GEOS) STRtree query
   of the same points and shapes, `predicate="within"` (target: at most 1.5x); both from arrays in
   memory to pairs (point, district), and whether they place every point alike.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import shapely

from benchmarks.views import paired_medians
from functions.analytics.engine import Input, sandbox
from functions.analytics.models import PlaceJoin
from functions.analytics.places import place_sql
from functions.analytics.scope import ReadScope

POINTS = 1_000_000
SIDE = 10  # districts per side: 100 in all
RUNS = 7


def districts() -> list[tuple[str, str]]:
    """A 10 x 10 patchwork of wavy cells, 24 vertices each (6 per side, shared with the neighbours),
    every tenth a MultiPolygon."""
    rng = np.random.default_rng(3)
    # The inner vertices of the lattice move a little, so borders are not straight (nor level).
    lattice_x = np.linspace(0, 0.1, SIDE * 6 + 1)
    lattice_y = np.linspace(0, 0.1, SIDE * 6 + 1)
    wobble = rng.uniform(-0.0004, 0.0004, (lattice_x.size, lattice_y.size, 2))
    wobble[[0, -1], :, :] = 0
    wobble[:, [0, -1], :] = 0

    def vertex(i: int, j: int) -> list[float]:
        return [round(float(lattice_x[i] + wobble[i, j, 0]), 6), round(float(lattice_y[j] + wobble[i, j, 1]), 6)]

    shapes = []
    for cx in range(SIDE):
        for cy in range(SIDE):
            i0, j0 = cx * 6, cy * 6
            ring = [vertex(i0 + k, j0) for k in range(6)] + [vertex(i0 + 6, j0 + k) for k in range(6)]
            ring += [vertex(i0 + 6 - k, j0 + 6) for k in range(6)] + [vertex(i0, j0 + 6 - k) for k in range(6)]
            ring.append(ring[0])
            kind = "MultiPolygon" if (cx + cy) % 10 == 0 else "Polygon"
            coordinates = [[ring]] if kind == "MultiPolygon" else [ring]
            shapes.append((f"D{cx}{cy}", json.dumps({"type": kind, "coordinates": coordinates})))
    return shapes


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="cityshare-spatial-"))
    rng = np.random.default_rng(1)
    lon, lat = rng.uniform(-0.002, 0.102, POINTS), rng.uniform(-0.002, 0.102, POINTS)
    points = pa.table({"id": np.arange(POINTS), "longitude": lon, "latitude": lat, "speed_kmh": rng.uniform(0, 60, POINTS)})
    areas = districts()
    pq.write_table(points, folder / "points.parquet")
    pq.write_table(pa.table({"district": [d for d, _ in areas], "geometry": [g for _, g in areas]}), folder / "areas.parquet")
    inputs = [
        Input("positions", ReadScope("positions", points.column_names), [folder / "points.parquet"]),
        Input("districts", ReadScope("districts", ["district", "geometry"]), [folder / "areas.parquet"]),
    ]
    place = PlaceJoin(
        table="placed",
        points="positions",
        longitude="longitude",
        latitude="latitude",
        areas="districts",
        area_columns=["district"],
    )
    shapes = shapely.from_geojson([g for _, g in areas])
    results: dict[str, Any] = {}
    with sandbox(inputs) as connection:
        join = place_sql(place)

        def by_sql() -> bytes:
            results["sql"] = connection.sql(f"SELECT id, district FROM ({join})").to_arrow_table()
            return b""

        def by_geos() -> bytes:
            tree = shapely.STRtree(shapes)
            results["geos"] = tree.query(shapely.points(lon, lat), predicate="within")
            return b""

        sql_s, geos_s = paired_medians(by_sql, by_geos, runs=RUNS)
    rows = results["sql"]
    assert isinstance(rows, pa.Table)
    placed_by_sql = dict(zip(rows["id"].to_pylist(), rows["district"].to_pylist(), strict=True))
    point_index, area_index = results["geos"]
    placed_by_geos = dict(zip(point_index.tolist(), [areas[a][0] for a in area_index.tolist()], strict=True))
    alike = placed_by_sql == placed_by_geos
    print(f"place join, {POINTS:,} points to {len(areas)} districts (24 vertices each)")
    print(f"  DuckDB SQL (places)      {sql_s:7.3f} s   {len(placed_by_sql):,} points placed")
    print(f"  bare shapely STRtree     {geos_s:7.3f} s   {len(placed_by_geos):,} points placed")
    print(f"  ratio {sql_s / geos_s:.2f} (target <= 1.5); the same district for every point: {alike}")


if __name__ == "__main__":
    main()
