"""Arrow's CSV reader reads ahead in a thread of its own; CityShare paces it to a few blocks ahead of
what the pipeline has taken, and a consumer that stops early never leaves that thread waiting."""

from __future__ import annotations

import io
import threading
from collections.abc import Generator
from pathlib import Path
from typing import Any, cast

import pytest

from cityshare.generators import generate
from functions.ingest import formats
from functions.ingest.models import CsvDialect
from tests.unit.ingest_helpers import city_schema

BLOCK = 64 * 1024
AHEAD = 2


class CountingStream(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self._data, self.given = data, 0

    def readable(self) -> bool:
        return True

    def readinto(self, target: memoryview) -> int:  # type: ignore[override]
        chunk = self._data[self.given : self.given + len(target)]
        target[: len(chunk)] = chunk
        self.given += len(chunk)
        return len(chunk)


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(formats, "CSV_BLOCK_BYTES", BLOCK)
    monkeypatch.setattr(formats, "CSV_READ_AHEAD_BLOCKS", AHEAD)


@pytest.fixture(scope="module")
def flow_csv(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path: Path = generate("traffic-flow", 60_000, tmp_path_factory.mktemp("pacing") / "flow.csv")  # ~3.5 MB
    return path.read_bytes()


def test_the_reader_stays_a_few_blocks_ahead_of_a_slow_consumer(small_blocks: None, flow_csv: bytes) -> None:
    source = CountingStream(flow_csv)
    batches = formats.csv_batches(io.BufferedReader(source, BLOCK), city_schema("traffic-flow"), CsvDialect())
    first, _ = next(batches)
    threading.Event().wait(0.3)  # time for Arrow's thread to read as far as it may
    # What it may hold: the window, the block being parsed and one buffered read; not the file.
    assert source.given <= (AHEAD + 3) * BLOCK < len(flow_csv)
    assert first.num_rows + sum(batch.num_rows for batch, _ in batches) == 60_000  # the rest comes, whole


def test_a_consumer_that_stops_early_leaves_no_reader_waiting(small_blocks: None, flow_csv: bytes) -> None:
    read = formats.csv_batches(io.BytesIO(flow_csv), city_schema("traffic-flow"), CsvDialect())
    batches = cast(Generator[Any, None, None], read)
    next(batches)
    closed = threading.Event()

    def close() -> None:
        batches.close()  # drops Arrow's reader, which waits for its reading thread
        closed.set()

    threading.Thread(target=close, daemon=True).start()
    assert closed.wait(10), "closing the reader hung on its reading thread"
