"""Personal values never leave protection: not in reports, not in quarantine, not in ciphertext
lengths; pseudonyms are in their department's own token space; filters on protected columns are
refused rather than silently matching nothing."""

from __future__ import annotations

import base64
import gzip
import io
import itertools
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import example, given, settings
from hypothesis import strategies as st

from functions.catalog.models import IngestPolicy
from functions.ingest.models import UploadRequest
from functions.ingest.pipeline import run_pipeline
from functions.privacy.protect import Protector, keyed_tokens, rekeyed_tokens, short_values
from functions.privacy.sealing import ValueSealer, open_stream, padded_length, seal_stream, token_function
from functions.sharing.models import GrantTerms
from tests.unit.ingest_helpers import DATA_KEY, PSEUDONYM_KEY, QUARANTINED, city_schema, ingest

PLATES = city_schema("plate-reads")
REQUESTS = city_schema("service-requests")
LENIENT = IngestPolicy(on_invalid_rows="accept_valid", max_invalid_share=0.9)
PLATE_HEADER = "camera_id,read_at,plate,confidence,lane\n"
GOOD_PLATE = "CAM-0001,2026-11-04T08:00:00Z,TAXI001,0.9,1\n"
REQUEST_HEADER = "request_id,opened_at,category,district,address,phone,latitude,longitude,status\n"
GOOD_REQUEST = "SR-00000001,2026-11-04T08:00:00Z,pothole,Harbour,12 Market Street,+44 7700 900123,51.456789,-2.587654,open\n"


def test_a_report_names_row_column_and_rule_but_never_a_personal_value() -> None:
    long_plate = "SECRETPLATE" * 3  # over maxLength 16
    data = PLATE_HEADER + GOOD_PLATE + f"CAM-0001,2026-11-04T08:00:00Z,{long_plate},0.9,1\n"
    outcome, _, _ = ingest(data.encode(), PLATES, policy=LENIENT)
    found = [i for i in outcome.report.issues if i.rule == "max_length"]
    assert found and found[0].row == 2 and found[0].column == "plate" and found[0].value is None
    assert "SECRETPLATE" not in outcome.report.model_dump_json()
    # A non-personal column's value is still shown, to help the fix.
    outcome, _, _ = ingest(
        (PLATE_HEADER + GOOD_PLATE + "CAM-12345,2026-11-04T08:00:00Z,X1,0.9,1\n").encode(), PLATES, policy=LENIENT
    )
    assert [i.value for i in outcome.report.issues if i.rule == "pattern"] == ["CAM-12345"]


def test_ragged_rows_malformed_lines_and_headerless_files_are_not_echoed_when_the_schema_is_personal() -> None:
    outcome, _, _ = ingest((PLATE_HEADER + GOOD_PLATE + "CAM-0001,SECRETPLATE\n").encode(), PLATES, policy=LENIENT)
    assert outcome.report.issue_counts == {"ragged_row": 1}
    assert "SECRETPLATE" not in outcome.report.model_dump_json() and "SECRETPLATE" not in json.dumps(QUARANTINED)
    jsonl = b'{"camera_id": "CAM-0001", "plate": "SECRETPLATE"\n'
    outcome, _, _ = ingest(jsonl, PLATES, "jsonl")
    assert "SECRETPLATE" not in outcome.report.model_dump_json()
    headerless = GOOD_PLATE.replace("TAXI001", "secretplate") * 2
    outcome, _, _ = ingest(headerless.encode(), PLATES)
    assert outcome.report.file_error == "unexpected_columns"
    assert "secretplate" not in outcome.report.model_dump_json() and "header row" in outcome.report.model_dump_json()


def test_quarantined_rows_are_protected_exactly_as_curated_rows() -> None:
    bad = "SR-00000002,2026-11-04T09:00:00Z,alien-visit,Harbour,7 Secret Lane,+44 7700 900999,51.456789,-2.587654,open\n"
    outcome, curated, _ = ingest((REQUEST_HEADER + GOOD_REQUEST + bad).encode(), REQUESTS, policy=LENIENT)
    assert outcome.accepted and outcome.report.rows_rejected == 1
    (row,) = QUARANTINED
    values = row["values"]
    assert isinstance(values, dict)
    assert "phone" not in values  # dropped at ingest: absent from quarantine too
    assert values["category"] == "alien-visit" and values["district"] == "Harbour"  # not personal: as sent
    assert values["latitude"] == 51.45 and values["longitude"] == -2.59  # generalised like curated
    assert values["address"] != "7 Secret Lane" and "Secret" not in json.dumps(row)
    assert curated[0]["latitude"] == 51.45
    plates = (PLATE_HEADER + GOOD_PLATE + "CAM-0001,not-a-time,SECRETPLATE,0.9,1\n").encode()
    outcome, curated, _ = ingest(plates, PLATES, policy=LENIENT)
    (row,) = QUARANTINED
    assert row["values"]["plate"] == token_function(PSEUDONYM_KEY)("SECRETPLATE")  # type: ignore[index]


def test_a_value_that_cannot_be_generalised_is_withheld_in_quarantine() -> None:
    bad = "SR-00000002,2026-11-04T09:00:00Z,pothole,Harbour,x,,51.45678x,-2.587654,open\n"
    ingest((REQUEST_HEADER + GOOD_REQUEST + bad).encode(), REQUESTS, policy=LENIENT)
    (row,) = QUARANTINED
    assert row["values"]["latitude"] is None and "51.45678" not in json.dumps(row)  # type: ignore[index]


def test_pseudonyms_live_in_the_department_token_space() -> None:
    rows = (PLATE_HEADER + GOOD_PLATE).encode()
    _, transport, _ = ingest(rows, PLATES)
    other = Protector(PLATES, "candidate-plates", b"another department's key".ljust(32, b"!"), lambda: DATA_KEY)
    attacker = other.protect(
        pa.RecordBatch.from_pylist(
            [{"camera_id": "CAM-0001", "read_at": None, "plate": "TAXI001", "confidence": 0.9, "lane": 1}],
            schema=pa.schema(
                [
                    ("camera_id", pa.string()),
                    ("read_at", pa.timestamp("us", tz="UTC")),
                    ("plate", pa.string()),
                    ("confidence", pa.float64()),
                    ("lane", pa.int64()),
                ]
            ),
        )
    )
    assert attacker.column("plate")[0].as_py() != transport[0]["plate"]


def test_short_pseudonyms_open_with_the_key_and_long_ones_leave_a_sealed_vault(tmp_path: Path) -> None:
    long_plate = "DIPLOMATIC-00042"  # 16 bytes: one more than a block holds
    protector = Protector(PLATES, "plates", PSEUDONYM_KEY, lambda: DATA_KEY, tmp_path)
    data = (PLATE_HEADER + GOOD_PLATE * 3 + GOOD_PLATE.replace("TAXI001", long_plate) * 2).encode()
    request = UploadRequest(filename="p.csv", format="csv", size_bytes=len(data))
    assert run_pipeline(io.BytesIO(data), request, PLATES, IngestPolicy(), protector, tmp_path).accepted
    vault = protector.vault_files()["plate"]
    token = token_function(PSEUDONYM_KEY)
    assert pq.read_table(vault).to_pylist() == [{"token": token(long_plate), "value": long_plate}]  # once
    tokens = pa.array([token("TAXI001"), token(long_plate), "not a token", None])
    assert short_values(tokens, PSEUDONYM_KEY).to_pylist() == ["TAXI001", None, None, None]
    assert short_values(pa.array([token("TAXI001")]), b"another key".ljust(32, b".")).to_pylist() != ["TAXI001"]
    with vault.open("rb") as source:
        sealed = b"".join(seal_stream(source, DATA_KEY, b"vault/plates/u1/plate.vault"))
    assert long_plate.encode() not in sealed
    assert open_stream([sealed], DATA_KEY, b"vault/plates/u1/plate.vault") == vault.read_bytes()
    with pytest.raises(ValueError):
        open_stream([sealed], DATA_KEY, b"vault/other/u1/plate.vault")
    with pytest.raises(ValueError):
        open_stream([sealed[:-5]], DATA_KEY, b"vault/plates/u1/plate.vault")


def test_ciphertexts_are_padded_to_length_buckets() -> None:
    sealer = ValueSealer(DATA_KEY)
    lengths = {len(base64.b64decode(sealer.seal("x" * n, b"ds/address"))) for n in range(0, 15)}
    assert len(lengths) == 1  # 0 to 14 bytes: one bucket (16)
    assert len(base64.b64decode(sealer.seal("x" * 17, b"a"))) == len(base64.b64decode(sealer.seal("x" * 30, b"a")))
    assert [padded_length(n) for n in (0, 15, 16, 31, 32, 200, 255, 256, 600)] == [16, 16, 32, 32, 64, 256, 256, 512, 768]
    sealed = sealer.seal("12 Market Street", b"ds/address")
    assert sealer.open(sealed, b"ds/address") == "12 Market Street"
    with pytest.raises(InvalidTag):
        sealer.open(sealed, b"ds/phone")


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ({"column": "plate", "op": "eq", "value": "TAXI-001"}, "protected at ingest"),
        ({"column": "plate", "op": "in", "value": ["TAXI-001"]}, "protected at ingest"),
    ],
)
def test_a_filter_on_a_pseudonymised_column_is_refused(condition: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GrantTerms.model_validate({"row_filter": {"condition": condition}}).check_against(PLATES)
    GrantTerms.model_validate({"row_filter": {"condition": {"column": "plate", "op": "not_null"}}}).check_against(PLATES)


def test_filters_on_encrypted_and_dropped_columns_are_refused() -> None:
    for column, message in (("address", "protected at ingest"), ("phone", "dropped at ingest")):
        with pytest.raises(ValueError, match=message):
            GrantTerms.model_validate({"row_filter": {"condition": {"column": column, "op": "eq", "value": "x"}}}).check_against(
                REQUESTS
            )


def test_linked_columns_must_be_pseudonymised_with_a_kind() -> None:
    GrantTerms(linked_columns=["plate"]).check_against(PLATES)
    with pytest.raises(ValueError, match="pseudonymised column"):
        GrantTerms(linked_columns=["camera_id"]).check_against(PLATES)
    with pytest.raises(ValueError, match="among the granted columns"):
        GrantTerms(columns=["camera_id"], linked_columns=["plate"]).check_against(PLATES)


def test_gzip_reports_withhold_parser_text_for_personal_schemas() -> None:
    outcome, _, _ = ingest(gzip.compress(b"\xff\xfe" + b"SECRETPLATE" * 5), PLATES, compression="gzip")
    assert outcome.report.file_error and "SECRETPLATE" not in outcome.report.model_dump_json()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=40)), max_size=60))
# Equal-length short values end to end (the reshape path), and separated by a long one (not end to end).
@example(["ABC1234", "XYZ9876", "QRS5555"])
@example(["ABC1234", "a value far longer than fifteen bytes", "XYZ9876"])
def test_tokens_of_many_values_at_once_are_the_tokens_of_each(values: list[str | None]) -> None:
    token = token_function(PSEUDONYM_KEY)
    many = keyed_tokens(pa.array(values, pa.string()), PSEUDONYM_KEY).to_pylist()
    assert many == [None if v is None else token(v) for v in values]
    assert all(t is None or len(t) == 32 for t in many)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.text(min_size=1, max_size=20)), min_size=1, max_size=40),
    st.lists(st.integers(min_value=0, max_value=40), max_size=4),
)
def test_re_keying_a_column_of_tokens_gives_one_token_per_token_however_it_is_chunked(
    plates: list[str | None], cuts: list[int]
) -> None:
    # A grant's view re-keys the owner's tokens chunk by chunk, as read: the grant's token of a
    # token must not depend on the chunk it arrives in, nor on a slice's offset.
    owner_tokens = keyed_tokens(pa.array(plates, pa.string()), PSEUDONYM_KEY)
    whole = rekeyed_tokens(owner_tokens, DATA_KEY).to_pylist()
    bounds = sorted({0, len(plates), *(c for c in cuts if c <= len(plates))})
    chunked = pa.chunked_array([owner_tokens.slice(a, b - a) for a, b in itertools.pairwise(bounds)], type=pa.string())
    assert rekeyed_tokens(chunked, DATA_KEY).to_pylist() == whole
    assert rekeyed_tokens(owner_tokens.slice(1), DATA_KEY).to_pylist() == whole[1:]
    # A short value's token opens to it. A long one's (a MAC) opens to nothing, but for about one
    # in 256 whose last byte happens to look like padding: the vault answers for those (below).
    opened = short_values(owner_tokens.slice(1), PSEUDONYM_KEY).view(pa.binary()).to_pylist()
    for plate, value in zip(plates[1:], opened, strict=True):
        if plate is None or len(plate.encode()) <= 15:
            assert value == (None if plate is None else plate.encode())
    grant_tokens = {t for t in whole if t is not None}
    assert not grant_tokens & {t for t in owner_tokens.to_pylist() if t is not None}


def test_only_tokens_are_re_keyed_as_tokens_and_values_are_always_tokenised_as_values() -> None:
    # A value's token never depends on its neighbours: a hex-looking clear value (a hash, a device
    # id) is tokenised as a value whether or not the rest of its column looks like tokens.
    hexlike = "ab" * 16
    assert (
        keyed_tokens(pa.array([hexlike]), DATA_KEY).to_pylist()
        == keyed_tokens(pa.array([hexlike, "x"]), DATA_KEY).to_pylist()[:1]
    )
    # Tokens are lower case, as ingest writes them: an upper-case twin is not the same token.
    with pytest.raises(ValueError, match="not tokens"):
        rekeyed_tokens(pa.array([hexlike.upper()]), DATA_KEY)
    with pytest.raises(ValueError, match="not tokens"):
        rekeyed_tokens(pa.array([hexlike, "not a token"]), DATA_KEY)
    assert rekeyed_tokens(pa.array([hexlike, None]), DATA_KEY).to_pylist()[1] is None
    assert short_values(pa.array([hexlike.upper()]), PSEUDONYM_KEY).to_pylist() == [None]


def test_a_long_values_token_that_opens_by_chance_is_re_keyed_from_the_vault() -> None:
    """A long value's token is a MAC; opened as a block, about one in 256 looks padded and reads as
    some short "value". The vault, which holds every long value, answers for it first."""
    from functions.sharing.views import rekeyed

    for n in range(5000):
        value = f"a long value of more than fifteen bytes, number {n}"
        token = keyed_tokens(pa.array([value]), PSEUDONYM_KEY)
        if short_values(token, PSEUDONYM_KEY).null_count == 0:
            break
    else:
        pytest.fail("no long value's token opened in 5,000")
    vault = pa.table({"token": token, "value": [value]})
    assert rekeyed(token, PSEUDONYM_KEY, vault, DATA_KEY).to_pylist() == keyed_tokens(pa.array([value]), DATA_KEY).to_pylist()
