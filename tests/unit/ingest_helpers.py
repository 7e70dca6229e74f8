"""Running the ingest pipeline on bytes, for unit tests."""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from functions.catalog.models import IngestPolicy, TableSchema
from functions.ingest.models import UploadRequest
from functions.ingest.pipeline import IngestOutcome, run_pipeline
from functions.privacy.protect import Protector

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "datasets"
PSEUDONYM_KEY = b"p" * 32
DATA_KEY = b"d" * 32
# The quarantined rows of the last `ingest` call (its working folder is gone when it returns).
QUARANTINED: list[dict[str, Any]] = []


def city_schema(name: str) -> TableSchema:
    return TableSchema.model_validate(json.loads((SCHEMAS / f"{name}.json").read_text()))


def ingest(
    data: bytes,
    schema: TableSchema,
    file_format: str = "csv",
    policy: IngestPolicy | None = None,
    dataset_id: str = "test-data",
    **request: Any,
) -> tuple[IngestOutcome, list[dict[str, Any]], bytes]:
    """(outcome, the curated rows, the curated file's bytes)."""
    upload = UploadRequest(filename=f"data.{file_format}", format=file_format, size_bytes=max(len(data), 1), **request)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as folder:
        protector = Protector(schema, dataset_id, PSEUDONYM_KEY, lambda: DATA_KEY, Path(folder))
        outcome = run_pipeline(io.BytesIO(data), upload, schema, policy or IngestPolicy(), protector, Path(folder))
        QUARANTINED.clear()
        if outcome.quarantine is not None:
            QUARANTINED.extend(json.loads(line) for line in outcome.quarantine.read_text().splitlines())
        if outcome.parquet is None:
            return outcome, [], b""
        curated = outcome.parquet.read_bytes()
        assert outcome.parquet_sha256 == hashlib.sha256(curated).hexdigest()  # hashed as it was written
        return outcome, pq.read_table(outcome.parquet).to_pylist(), curated
