"""Point-in-polygon joins as plain SQL: no spatial extension (DuckDB's would be downloaded at run
time), no GEOS in the analytics function, and a join faster than a bare shapely STRtree query
(benchmarks/spatial.py).

How it works. The areas' GeoJSON rings become a table of edges. Each point finds its candidate areas
through a coarse grid of the areas' bounding boxes (a hash join), then the edges of those areas in
its horizontal band (a second hash join), and counts the edges that a ray from the point to the east
crosses: an odd count puts the point inside (the even-odd rule, so holes and multipolygons hold). A
point on a southern or western border counts as inside, on a northern or eastern one as outside, so
a point on a border between two districts lands in exactly one of them.
"""

from __future__ import annotations

from functions.analytics.models import PlaceJoin
from functions.analytics.scope import quoted, table_name

# Cells of the bounding boxes' grid per side, and at most this many horizontal bands of edges:
# fine enough that a point meets one or two areas and a few edges, coarse enough that the tables of
# cells and bands stay small (an area's box over every cell is 4,096 rows).
GRID_CELLS = 64
MAX_BANDS = 65_536
BAND_ROWS_PER_EDGE = 8


def place_sql(place: PlaceJoin) -> str:
    """One SELECT whose rows are the points' rows, each with the columns of the area holding it."""
    points, areas = quoted(table_name(place.points)), quoted(table_name(place.areas))
    if place.point is not None:
        # Ingest checked each value; what is not a GeoJSON point is left out, never an error.
        point = f"CASE WHEN json_valid({quoted(place.point)}) THEN {quoted(place.point)} END"
        x = f"TRY_CAST(json_extract_string({point}, '$.coordinates[0]') AS DOUBLE)"
        y = f"TRY_CAST(json_extract_string({point}, '$.coordinates[1]') AS DOUBLE)"
        present = f"json_extract_string({point}, '$.type') = 'Point'"
    else:
        x, y = f"CAST({quoted(place.longitude or '')} AS DOUBLE)", f"CAST({quoted(place.latitude or '')} AS DOUBLE)"
        present = "true"
    shape = f"CASE WHEN json_valid({quoted(place.geometry)}) THEN {quoted(place.geometry)} END"
    gained = ", ".join(f"a.{quoted(c)}" for c in place.area_columns)
    # Names of the query's own hold a colon, which no column or table can: none can be shadowed.
    return f"""
WITH "cs:rings" AS (
  SELECT rowid AS "cs:area", unnest(CASE json_extract_string({shape}, '$.type')
      WHEN 'Polygon' THEN TRY_CAST(json_extract({shape}, '$.coordinates') AS DOUBLE[][][])
      WHEN 'MultiPolygon' THEN flatten(TRY_CAST(json_extract({shape}, '$.coordinates') AS DOUBLE[][][][])) END) AS "cs:ring"
  FROM {areas}
), "cs:edges" AS (
  SELECT *, least(y1, y2) AS lo, greatest(y1, y2) AS hi FROM (
    SELECT "cs:area", "cs:ring"[i][1] AS x1, "cs:ring"[i][2] AS y1, "cs:ring"[i + 1][1] AS x2, "cs:ring"[i + 1][2] AS y2
    FROM "cs:rings", generate_series(1, len("cs:ring") - 1) AS steps(i)
  ) WHERE x1 IS NOT NULL AND y1 IS NOT NULL AND x2 IS NOT NULL AND y2 IS NOT NULL
), "cs:extent" AS (
  SELECT min(least(x1, x2)) AS x0, greatest(max(greatest(x1, x2)) - min(least(x1, x2)), 1e-9) AS width,
         min(lo) AS y0, greatest(max(hi) - min(lo), 1e-9) AS height, count(*) AS edges, sum(hi - lo) AS spanned
  FROM "cs:edges"
), "cs:frame" AS (
  -- As many bands as keep an edge in a few of them: about {BAND_ROWS_PER_EDGE} rows per edge in all, so
  -- a ring that zigzags across the whole city makes few bands, not edges x bands rows.
  SELECT *, CAST(greatest(1, least({MAX_BANDS}, 4 * edges,
                                   floor({BAND_ROWS_PER_EDGE} * edges * height / greatest(spanned, 1e-12)))) AS BIGINT) AS bands
  FROM "cs:extent"
), "cs:bands" AS (
  -- edges that a ray to the east can cross (a level edge never is), once per band they span, each
  -- from its lower end, so a border two areas share is the same edge, to the bit, in both
  SELECT e."cs:area", e.lo, e.hi, CASE WHEN e.y1 < e.y2 THEN e.x1 ELSE e.x2 END AS bx,
         CASE WHEN e.y1 < e.y2 THEN e.x2 ELSE e.x1 END AS tx, band
  FROM "cs:edges" AS e, "cs:frame" AS f,
    generate_series(CAST(floor((e.lo - f.y0) / f.height * f.bands) AS BIGINT),
                    CAST(floor((e.hi - f.y0) / f.height * f.bands) AS BIGINT)) AS spans(band)
  WHERE e.y1 <> e.y2
), "cs:boxes" AS (
  SELECT "cs:area", min(least(x1, x2)) AS xmin, max(greatest(x1, x2)) AS xmax, min(lo) AS ymin, max(hi) AS ymax
  FROM "cs:edges" GROUP BY ALL
), "cs:cells" AS (
  SELECT b.*, cx, cy FROM "cs:boxes" AS b, "cs:frame" AS f,
    generate_series(CAST(floor((b.xmin - f.x0) / f.width * {GRID_CELLS}) AS BIGINT),
                    CAST(floor((b.xmax - f.x0) / f.width * {GRID_CELLS}) AS BIGINT)) AS across(cx),
    generate_series(CAST(floor((b.ymin - f.y0) / f.height * {GRID_CELLS}) AS BIGINT),
                    CAST(floor((b.ymax - f.y0) / f.height * {GRID_CELLS}) AS BIGINT)) AS up(cy)
), "cs:points" AS (
  SELECT "cs:row", px, py, CAST(floor((py - f.y0) / f.height * f.bands) AS BIGINT) AS band,
         CAST(floor((px - f.x0) / f.width * {GRID_CELLS}) AS BIGINT) AS cx,
         CAST(floor((py - f.y0) / f.height * {GRID_CELLS}) AS BIGINT) AS cy
  FROM (SELECT rowid AS "cs:row", {x} AS px, {y} AS py FROM {points} WHERE {present}) AS p, "cs:frame" AS f
  WHERE isfinite(px) AND isfinite(py)
), "cs:candidates" AS (
  SELECT p."cs:row", p.px, p.py, p.band, c."cs:area"
  FROM "cs:points" AS p JOIN "cs:cells" AS c ON p.cx = c.cx AND p.cy = c.cy
  WHERE p.px >= c.xmin AND p.px <= c.xmax AND p.py >= c.ymin AND p.py < c.ymax
), "cs:inside" AS (
  SELECT p."cs:row", p."cs:area" FROM "cs:candidates" AS p JOIN "cs:bands" AS e
    ON p."cs:area" = e."cs:area" AND p.band = e.band
   AND p.py >= e.lo AND p.py < e.hi AND p.px < e.bx + (p.py - e.lo) * (e.tx - e.bx) / (e.hi - e.lo)
  GROUP BY ALL HAVING count(*) % 2 = 1
)
SELECT p.*, {gained} FROM {points} AS p
JOIN "cs:inside" AS i ON p.rowid = i."cs:row" JOIN {areas} AS a ON a.rowid = i."cs:area"
"""
