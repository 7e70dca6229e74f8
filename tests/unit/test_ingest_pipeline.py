"""The ingest pipeline on good and hostile input: every bad file gets a clear, stable rule."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from unittest.mock import patch

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityshare.generators import generate
from functions.catalog.models import IngestPolicy, TableSchema
from tests.unit.ingest_helpers import city_schema, ingest

AIR = city_schema("air-quality")
BEDS = city_schema("hospital-beds")
HEADER = "station_id,district,measured_at,pm25,pm10,no2,o3\n"
ROW = "AQ-001,Centre,2026-11-04T08:00:00Z,12.5,20.1,30.2,40.3\n"


def test_a_clean_csv_becomes_typed_parquet_with_a_profile() -> None:
    outcome, rows, _ = ingest((HEADER + ROW + ROW.replace("AQ-001", "AQ-002").replace("12.5", "")).encode(), AIR)
    assert outcome.accepted and outcome.report.rows_accepted == 2
    assert rows[0]["pm25"] == 12.5 and rows[1]["pm25"] is None
    assert rows[0]["measured_at"].isoformat() == "2026-11-04T08:00:00+00:00"
    profile = outcome.profile
    assert profile is not None and profile.columns["pm25"].nulls == 1 and profile.columns["station_id"].distinct_estimate == 2


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (b"", "empty_file"),
        ((HEADER + ROW).encode("utf-16"), "invalid_encoding"),
        (("station_id,district,measured_at,pm25\n" + "AQ-001,Sö,2026-11-04T08:00:00Z,1\n").encode("latin-1"), "invalid_encoding"),
        (b"station_id,measured_at,pm25,wind\nAQ-001,2026-11-04T08:00:00Z,1,3\n", "unexpected_columns"),
        (b"district,pm25\nCentre,1\n", "missing_columns"),
        (b"station_id,station_id,measured_at\nAQ-001,AQ-001,2026-11-04T08:00:00Z\n", "duplicate_columns"),
        ((HEADER + "AQ-001," + "x" * (9 * 1024 * 1024) + ",2026-11-04T08:00:00Z,1,1,1,1\n").encode(), "row_too_large"),
    ],
    ids=["empty", "utf16-as-utf8", "latin1-as-utf8", "extra-column", "missing-required", "duplicate-column", "huge-row"],
)
def test_file_level_problems_reject_the_file_with_a_rule(data: bytes, rule: str) -> None:
    outcome, rows, _ = ingest(data, AIR)
    assert not outcome.accepted and rows == []
    assert outcome.report.file_error == rule
    assert outcome.report.issues[0].rule == rule


def test_a_bom_and_a_declared_encoding_are_accepted() -> None:
    assert ingest(b"\xef\xbb\xbf" + (HEADER + ROW).encode(), AIR)[0].accepted
    latin = ("station_id,district,measured_at,pm25\n" + "AQ-001,Sö,2026-11-04T08:00:00Z,1\n").encode("latin-1")
    outcome, rows, _ = ingest(latin, AIR, csv={"encoding": "latin-1"})
    assert outcome.accepted and rows[0]["district"] == "Sö"


@pytest.mark.parametrize(
    ("row", "rule", "column"),
    [
        ("AQ-001,Cen\x00tre,2026-11-04T08:00:00Z,1,1,1,1\n", "control_characters", "district"),
        ("AQ-001,Centre,2026-11-04T08:00:00Z," + "9" * 3000 + ",1,1,1\n", "wrong_type", "pm25"),
        ("AQ-001,Centre,2026-11-04T08:00:00Z,1e400,1,1,1\n", "not_finite", "pm25"),
        ("AQ-001,Centre,2026-11-04T08:00:00Z,lots,1,1,1\n", "wrong_type", "pm25"),
        ("AQ-001,Centre,2026-11-04,1,1,1,1\n", "wrong_type", "measured_at"),
        ("AQ-001,Centre,2026-11-04T08:00:00Z,-3,1,1,1\n", "minimum", "pm25"),
        ("STATION-1,Centre,2026-11-04T08:00:00Z,1,1,1,1\n", "pattern", "station_id"),
        (",Centre,2026-11-04T08:00:00Z,1,1,1,1\n", "required", "station_id"),
    ],
)
def test_row_level_problems_name_row_column_and_rule(row: str, rule: str, column: str) -> None:
    outcome, _, _ = ingest((HEADER + ROW + row).encode(), AIR)
    assert not outcome.accepted and outcome.report.file_error == "invalid_rows"
    found = [i for i in outcome.report.issues if i.rule == rule]
    assert found and found[0].row == 2 and found[0].column == column
    assert outcome.report.issue_counts[rule] == 1
    assert found[0].value is None or len(found[0].value) <= 80


def test_ragged_rows_are_reported() -> None:
    outcome, _, _ = ingest(
        (HEADER + ROW + "AQ-001,Centre\n").encode(),
        AIR,
        policy=IngestPolicy(on_invalid_rows="accept_valid", max_invalid_share=0.5),
    )
    assert outcome.accepted and outcome.report.issue_counts == {"ragged_row": 1}


def test_accept_valid_publishes_good_rows_up_to_the_share() -> None:
    data = (HEADER + ROW * 9 + "AQ-001,Centre,2026-11-04T08:00:00Z,-1,1,1,1\n").encode()
    lenient = IngestPolicy(on_invalid_rows="accept_valid", max_invalid_share=0.1)
    outcome, rows, _ = ingest(data, AIR, policy=lenient)
    assert outcome.accepted and len(rows) == 9 and outcome.report.rows_rejected == 1 and outcome.quarantine is not None
    strict = IngestPolicy(on_invalid_rows="accept_valid", max_invalid_share=0.05)
    assert not ingest(data, AIR, policy=strict)[0].accepted


def test_gzip_is_accepted_and_a_gzip_bomb_is_refused() -> None:
    assert ingest(gzip.compress((HEADER + ROW).encode()), AIR, compression="gzip")[0].accepted
    bomb = gzip.compress((HEADER + ROW * 6_000_000).encode(), compresslevel=9)  # ~330 MB that compress ~1000x
    outcome, _, _ = ingest(bomb, AIR, compression="gzip")
    assert outcome.report.file_error == "decompression_bomb"
    truncated = gzip.compress((HEADER + ROW * 100).encode())[:-20]
    assert ingest(truncated, AIR, compression="gzip")[0].report.file_error in {"truncated_gzip", "invalid_gzip"}


def _jsonl(*records: object) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records).encode()


def test_json_lines_are_validated_like_csv() -> None:
    good = {"station_id": "AQ-001", "measured_at": "2026-11-04T08:00:00Z", "pm25": 12, "o3": None}
    outcome, rows, _ = ingest(_jsonl(good, dict(good, station_id="AQ-002")), AIR, "jsonl")
    assert outcome.accepted and rows[0]["pm25"] == 12.0


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        ("{" * 40 + "}" * 40, "too_deeply_nested"),
        ('{"station_id": "AQ-001", "measured_at": "2026-11-04T08:00:00Z", "pm25": ' + "1" * 5000 + "}", "number_too_long"),
        ('{"station_id": "AQ-001", "measured_at": "2026-11-04T08:00:00Z", "pm25": NaN}', "malformed_json"),
        ("not json", "malformed_json"),
        ('{"station_id": "AQ-001", "station_id": "AQ-002", "measured_at": "2026-11-04T08:00:00Z"}', "duplicate_key"),
        ('["AQ-001"]', "not_an_object"),
        ('{"station_id": "AQ-001", "measured_at": "2026-11-04T08:00:00Z", "wind": 3}', "unexpected_column"),
        ('{"station_id": {"id": 1}, "measured_at": "2026-11-04T08:00:00Z"}', "nested_value"),
        ('{"station_id": "AQ-001", "measured_at": "2026-11-04T08:00:00Z", "pm25": "high"}', "wrong_type"),
    ],
)
def test_hostile_json_lines_are_reported(line: str, rule: str) -> None:
    good = {"station_id": "AQ-001", "measured_at": "2026-11-04T08:00:00Z"}
    outcome, _, _ = ingest(_jsonl(good, line), AIR, "jsonl")
    assert not outcome.accepted
    assert outcome.report.issue_counts.get(rule) == 1, outcome.report.issue_counts


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def test_parquet_is_accepted_and_retyped_columns_are_checked() -> None:
    table = pa.table(
        {
            "hospital_id": ["HOSP-01", "HOSP-02"],
            "ward_type": ["icu", "general"],
            "reported_at": ["2026-11-04T08:00:00Z", "2026-11-04T09:00:00Z"],
            "beds_total": [24, 300],
            "beds_occupied": [20, 280],
        }
    )
    outcome, rows, _ = ingest(_parquet(table), BEDS, "parquet")
    assert outcome.accepted and rows[1]["beds_total"] == 300
    retyped = table.set_column(3, "beds_total", pa.array(["24", "many"]))
    outcome, _, _ = ingest(_parquet(retyped), BEDS, "parquet")
    assert outcome.report.issue_counts == {"wrong_type": 1}


def test_a_truncated_parquet_file_is_refused() -> None:
    data = _parquet(pa.table({"hospital_id": ["HOSP-01"]}))
    assert ingest(data[: len(data) // 2], BEDS, "parquet")[0].report.file_error == "unreadable_parquet"


def test_an_all_invalid_file_is_refused_even_when_lenient() -> None:
    outcome, _, _ = ingest(
        (HEADER + "bad,Centre,x,1,1,1,1\n").encode(),
        AIR,
        policy=IngestPolicy(on_invalid_rows="accept_valid", max_invalid_share=1),
    )
    assert outcome.report.file_error == "no_valid_rows"


def test_optional_columns_may_be_absent() -> None:
    schema = TableSchema.model_validate(json.loads(json.dumps(AIR.model_dump())))
    outcome, rows, _ = ingest(b"station_id,measured_at\nAQ-001,2026-11-04T08:00:00Z\n", schema)
    assert outcome.accepted and rows[0]["pm25"] is None


json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(["2026-11-04T08:00:00Z", "AQ-001", "Centre", "", "NaN", "{", "[1]"]),
)
json_lines = st.lists(
    st.one_of(
        st.dictionaries(st.sampled_from(["station_id", "district", "measured_at", "pm25", "pm10", "no2", "o3"]), json_values),
        st.sampled_from(['{"station_id": "AQ-001", "pm25": NaN}', "not json", "[1, 2]", "", '{"pm25": 1' + "0" * 80 + "}"]),
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(json_lines)
def test_json_lines_read_fast_or_line_by_line_end_the_same(lines: list[object]) -> None:
    data = "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines).encode()
    fast, fast_rows, _ = ingest(data, AIR, "jsonl", policy=IngestPolicy(on_invalid_rows="accept_valid", max_invalid_share=1.0))
    with patch("functions.ingest.formats._fast_block", return_value=None):
        slow, slow_rows, _ = ingest(
            data, AIR, "jsonl", policy=IngestPolicy(on_invalid_rows="accept_valid", max_invalid_share=1.0)
        )
    assert fast_rows == slow_rows
    assert fast.report.issue_counts == slow.report.issue_counts and fast.accepted == slow.accepted


def test_a_lone_surrogate_is_an_encoding_problem_of_its_line() -> None:
    data = b'{"station_id": "AQ-\\ud800", "measured_at": "2026-11-04T08:00:00Z"}\n'
    outcome, _, _ = ingest(data, AIR, "jsonl")
    assert outcome.report.issue_counts == {"invalid_encoding": 1}


def test_a_file_of_many_batches_is_whole_and_its_digest_is_the_files(tmp_path: Path) -> None:
    """Several row groups written while the next batches are read, validated and profiled, and the
    digest taken as the file grew (the helper compares it with the finished file's own)."""
    source = generate("plate-reads", 200_000, tmp_path / "plates.csv")  # ~9 MB: three 4 MB blocks
    outcome, rows, curated = ingest(source.read_bytes(), city_schema("plate-reads"))
    assert outcome.accepted and outcome.report.rows_accepted == len(rows) == 200_000
    assert pq.ParquetFile(io.BytesIO(curated)).metadata.num_row_groups >= 3
    assert outcome.profile is not None and outcome.profile.rows == 200_000


@pytest.mark.parametrize(
    "measured_at",
    ["0000-01-01T00:00:00Z", "9999-12-31T23:59:59-14:00", "10000-01-01T00:00:00Z", "-0001-06-01T00:00:00Z"],
)
def test_instants_no_reader_can_hold_are_rejected_not_failed(measured_at: str) -> None:
    """Arrow parses years 0 and 10000; Python, pandas and DuckDB cannot read them back: a row rule, not a failure."""
    good = {"station_id": "AQ-001", "measured_at": "2026-11-04T08:00:00Z"}
    outcome, _, _ = ingest(_jsonl(good, dict(good, measured_at=measured_at)), AIR, "jsonl")
    assert not outcome.accepted and outcome.report.file_error == "invalid_rows"
    assert sum(outcome.report.issue_counts.values()) == 1, outcome.report.issue_counts
    edge = dict(good, measured_at="9999-12-31T23:59:59+14:00")  # 9999-12-31T09:59:59 in UTC: readable
    assert ingest(_jsonl(good, edge), AIR, "jsonl")[0].accepted


def test_a_header_written_another_way_is_named_for_what_it_is() -> None:
    """A semicolon file declared as commas, or names in another case: the report says which, not
    "is the header row missing?"."""
    semicolons = (HEADER + ROW).replace(",", ";").encode()
    outcome = ingest(semicolons, AIR)[0]
    assert outcome.report.file_error == "unexpected_columns"
    assert "semicolons" in outcome.report.issues[0].message and "';'" in outcome.report.issues[0].message
    assert ingest(semicolons, AIR, csv={"delimiter": ";"})[0].accepted
    shouting = (HEADER.upper() + ROW).encode()
    message = ingest(shouting, AIR)[0].report.issues[0].message
    assert "case" in message and "station_id" in message and "STATION_ID" not in message


def test_the_sdk_detects_a_csv_dialect_and_refuses_what_is_not_data(tmp_path: Path) -> None:
    from cityshare.client import UnsuitableFile, check_file, sniff_csv

    assert sniff_csv((HEADER + ROW).replace(",", ";").encode("windows-1252")) == {"delimiter": ";", "encoding": "utf-8"}
    assert sniff_csv(("district;pm25\nMünster;1\n").encode("windows-1252")) == {"delimiter": ";", "encoding": "windows-1252"}
    assert sniff_csv(b"\xef\xbb\xbf" + (HEADER + ROW).replace(",", "\t").encode()) == {"delimiter": "\t", "encoding": "utf-8-sig"}
    assert sniff_csv((HEADER + ROW).encode("utf-16"))["encoding"] == "utf-16"
    for head, said in ((b"PK\x03\x04rest", "export the sheet as CSV"), (b"%PDF-1.7", "PDF"), (b"", "empty")):
        with pytest.raises(UnsuitableFile, match=said):
            check_file("report.xlsx", head, "csv")
    with pytest.raises(UnsuitableFile, match="not a Parquet file"):
        check_file("data.parquet", b"station_id,pm25\n", "parquet")
    check_file("data.csv", (HEADER + ROW).encode(), "csv")
