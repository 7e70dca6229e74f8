"""Personal data never reaches curated storage in clear; pseudonyms join across datasets."""

from __future__ import annotations

import csv
import io
import string
from datetime import UTC, datetime, timedelta

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.privacy.protect import decrypt_value, generalise
from tests.unit.ingest_helpers import DATA_KEY, city_schema, ingest

PLATES = city_schema("plate-reads")
REQUESTS = city_schema("service-requests")
GPS = city_schema("delivery-gps")

# Plates start with letters outside hex, so a plate can never be mistaken for part of a token.
plate_text = st.builds(
    lambda head, tail: head + tail,
    st.text("GHJKLMNPRSTVWXYZ", min_size=2, max_size=3),
    st.text(string.ascii_uppercase + string.digits, min_size=3, max_size=7),
)
plate_rows = st.lists(
    st.fixed_dictionaries(
        {
            "camera_id": st.integers(0, 9999).map(lambda n: f"CAM-{n:04d}"),
            "read_at": st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)).map(
                lambda d: d.replace(microsecond=0).isoformat() + "Z"
            ),
            "plate": plate_text,
            "confidence": st.floats(0, 1, allow_nan=False).map(lambda f: round(f, 4)),
            "lane": st.integers(1, 8),
        }
    ),
    min_size=1,
    max_size=40,
)


def as_csv(rows: list[dict[str, object]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plate_rows)
def test_valid_rows_are_accepted_and_plates_never_stored_in_clear(rows: list[dict[str, object]]) -> None:
    outcome, curated, parquet_bytes = ingest(as_csv(rows), PLATES)
    assert outcome.accepted and outcome.report.rows_accepted == len(rows)
    for row, stored in zip(rows, curated, strict=True):
        assert stored["plate"] != row["plate"] and len(stored["plate"]) == 32
        assert str(row["plate"]).encode() not in parquet_bytes
    tokens = {r["plate"]: s["plate"] for r, s in zip(rows, curated, strict=True)}
    assert len(set(tokens.values())) == len(tokens)  # distinct plates stay distinct (joins work)


def test_the_same_plate_gets_the_same_token_in_every_dataset() -> None:
    rows = [{"camera_id": "CAM-0001", "read_at": "2026-01-01T00:00:00Z", "plate": "AB123CD", "confidence": 0.9, "lane": 1}]
    _, first, _ = ingest(as_csv(rows), PLATES, dataset_id="plates-north")
    _, second, _ = ingest(as_csv(rows), PLATES, dataset_id="plates-south")
    assert first[0]["plate"] == second[0]["plate"]


def test_service_requests_encrypt_drop_and_generalise() -> None:
    rows = [
        {
            "request_id": "SR-00000001",
            "opened_at": "2026-11-04T08:00:00Z",
            "category": "pothole",
            "district": "Harbour",
            "address": "12 Market Street",
            "phone": "+44 7700 900123",
            "latitude": 51.456789,
            "longitude": -2.587654,
            "status": "open",
        }
    ]
    outcome, curated, parquet_bytes = ingest(as_csv(rows), REQUESTS, dataset_id="service-requests")
    assert outcome.accepted
    stored = curated[0]
    assert "phone" not in stored and b"7700 900123" not in parquet_bytes
    assert b"Market Street" not in parquet_bytes
    assert decrypt_value(DATA_KEY, "service-requests", "address", stored["address"]) == "12 Market Street"
    assert (stored["latitude"], stored["longitude"]) == (51.45, -2.59)


def test_a_ciphertext_cannot_be_moved_to_another_column_or_dataset() -> None:
    rows = [
        {
            "request_id": "SR-00000001",
            "opened_at": "2026-11-04T08:00:00Z",
            "category": "waste",
            "district": "Centre",
            "address": "1 Elm Avenue",
            "status": "open",
        }
    ]
    _, curated, _ = ingest(as_csv(rows), REQUESTS, dataset_id="service-requests")
    sealed = curated[0]["address"]
    for dataset, column in (("other-dataset", "address"), ("service-requests", "district")):
        try:
            decrypt_value(DATA_KEY, dataset, column, sealed)
        except Exception:
            continue
        raise AssertionError("decrypted outside its dataset and column")


def test_gps_traces_are_generalised_in_time_and_space() -> None:
    rows = [
        {
            "vehicle_id": "VAN-0001",
            "operator": "ParcelCo",
            "recorded_at": "2026-11-04T08:07:31Z",
            "latitude": 51.4567,
            "longitude": -2.5876,
            "speed_kmh": 20,
        }
    ]
    _, curated, _ = ingest(as_csv(rows), GPS)
    stored = curated[0]
    assert stored["recorded_at"] == datetime(2026, 11, 4, 8, 5, tzinfo=UTC).astimezone(stored["recorded_at"].tzinfo)
    assert (stored["latitude"], stored["longitude"]) == (51.456, -2.588)
    assert stored["vehicle_id"] != "VAN-0001"


def test_generalise_buckets_integers_and_truncates_timestamps() -> None:
    assert generalise(pa.array([0, 9, 10, 47, None]), "10").to_pylist() == [0, 0, 10, 40, None]
    moments = pa.array([datetime(2026, 1, 1, 10, 59, tzinfo=UTC)], pa.timestamp("us", tz="UTC"))
    assert generalise(moments, "1h").to_pylist()[0] - datetime(2026, 1, 1, 10, tzinfo=UTC) == timedelta(0)
