"""Figures of analytics in space (issue: Analytics that look ahead and in space). Median of 7 runs,
the compared actions alternating within each round, same run, this machine:

1. a derived dataset's place join (`places`: plain SQL in the DuckDB sandbox) of 1,000,000 points to
   100 districts of 24 vertices each, some MultiPolygons, against a bare shapely (GEOS) STRtree query
   of the same points and shapes, `predicate="within"` (target: at most 1.5x); both from arrays in
   memory to pairs (point, district), and whether they place every point alike;
2. H3 cells of 1,000,000 points at resolution 8, as an aggregated grant's view makes them (two
   pyarrow columns to a column of cells) and as rules and derived datasets do (DuckDB's `h3_cell`),
   against bare `h3.latlng_to_cell` calls over the same coordinates (target: at most 1.5x). h3-py
   4 has no vectorised call: one call per point is the bare floor.
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
    cells(lon, lat)


def cells(lon: np.ndarray, lat: np.ndarray) -> None:
    import h3

    from functions.analytics.engine import connect
    from functions.columnar.cells import h3_cells

    latitudes, longitudes = pa.array(lat), pa.array(lon)
    found: dict[str, Any] = {}

    def bare() -> bytes:
        found["bare"] = [h3.latlng_to_cell(a, b, 8) for a, b in zip(lat.tolist(), lon.tolist(), strict=True)]
        return b""

    def view() -> bytes:
        found["view"] = h3_cells(latitudes, longitudes, 8)
        return b""

    connection = connect()
    connection.execute("CREATE TABLE points AS SELECT * FROM (SELECT unnest(?) AS lat, unnest(?) AS lon)", [lat, lon])

    def in_sql() -> bytes:
        connection.sql("SELECT h3_cell(lat, lon, 8) AS cell FROM points").to_arrow_table()
        return b""

    bare_s, view_s, sql_s = paired_medians(bare, view, in_sql, runs=RUNS)
    sql_cells = connection.sql("SELECT h3_cell(lat, lon, 8) FROM points").fetchall()
    alike = found["view"].to_pylist() == found["bare"] == [row[0] for row in sql_cells]
    connection.close()
    print(f"H3 cells of {lat.size:,} points, resolution 8")
    print(f"  bare h3.latlng_to_cell   {bare_s:7.3f} s")
    print(f"  a grant's view (pyarrow) {view_s:7.3f} s   ratio {view_s / bare_s:.2f} (target <= 1.5)")
    print(f"  rules, derived (DuckDB)  {sql_s:7.3f} s   ratio {sql_s / bare_s:.2f} (target <= 1.5)")
    print(f"  the same cell for every point: {alike}")


if __name__ == "__main__":
    main()
