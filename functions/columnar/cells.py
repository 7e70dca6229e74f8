"""H3 cells (the `h3` library): a location's hexagon at a resolution, as its hex id. The one
computation of a cell for aggregated views (pyarrow columns) and for rules and derived datasets
(DuckDB's `h3_cell`), so a grant's groups are the same cells wherever they are read. `h3` and
pyarrow are imported only when a cell is asked for: neither is on a request path that does not."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

MAX_RESOLUTION = 15


@cache
def _cell_of() -> Callable[[float, float, int], str]:
    import h3

    return h3.latlng_to_cell  # type: ignore[no-any-return]


def h3_cell(latitude: float | None, longitude: float | None, resolution: int | None) -> str | None:
    """The cell holding the location; None where a coordinate is missing or not on the earth."""
    if latitude is None or longitude is None:
        return None
    try:
        return _cell_of()(latitude, longitude, resolution)  # type: ignore[arg-type]
    except (ValueError, ArithmeticError, TypeError):  # h3's domain errors are ValueErrors: NaN, infinities
        # Checked only here, off the common path (a UDF's every row).
        if resolution is None or not 0 <= resolution <= MAX_RESOLUTION:
            raise ValueError(f"an H3 resolution is 0 to {MAX_RESOLUTION}, not {resolution}") from None
        return None


def h3_cells(latitudes: Any, longitudes: Any, resolution: int) -> Any:
    """The cells of two pyarrow columns of degrees, as a string column (null where h3_cell is)."""
    import pyarrow as pa

    cell_of = _cell_of()
    pairs = zip(latitudes.to_pylist(), longitudes.to_pylist(), strict=True)
    try:
        # The common case in one comprehension: h3's own call per point and nothing else.
        cells = [None if a is None or b is None else cell_of(a, b, resolution) for a, b in pairs]
    except (ValueError, ArithmeticError):
        pairs = zip(latitudes.to_pylist(), longitudes.to_pylist(), strict=True)
        cells = [h3_cell(a, b, resolution) for a, b in pairs]
    return pa.array(cells, pa.string())


def h3_centres(latitudes: Any, longitudes: Any, resolution: int) -> tuple[Any, Any]:
    """Each location as the centre of the cell holding it (a location generalised on ingest): two
    pyarrow columns of degrees (null where the location is incomplete or not on the earth)."""
    import h3
    import pyarrow as pa

    centres = [
        None if cell is None else h3.cell_to_latlng(cell) for cell in h3_cells(latitudes, longitudes, resolution).to_pylist()
    ]
    return (
        pa.array([None if c is None else c[0] for c in centres], pa.float64()),
        pa.array([None if c is None else c[1] for c in centres], pa.float64()),
    )
