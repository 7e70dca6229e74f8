"""A restricted view never holds a column or a row outside its grant: checked by writing the view
to Parquet, reading it back, and comparing with an independent evaluation of the grant in Python."""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.catalog.models import Dataset
from functions.sharing.models import Condition, Grant, GrantTerms, RowFilter
from functions.sharing.views import ViewSecrets, read_columns, restrict

COLUMNS = ["district", "speed", "camera", "vehicles"]
DISTRICTS = ["Centre", "Harbour", "North", "Old Town"]
DATASET = Dataset.model_validate(
    {
        "dataset_id": "flow",
        "title": "Flow",
        "classification": "confidential",
        "schema": {
            "type": "object",
            "properties": {
                "district": {"type": "string"},
                "speed": {"type": ["number", "null"]},
                "camera": {"type": ["string", "null"]},
                "vehicles": {"type": "integer"},
            },
        },
        "owner": "transport",
        "created_at": "t",
        "updated_at": "t",
        "created_by": "p",
    }
)

rows = st.lists(
    st.fixed_dictionaries(
        {
            "district": st.sampled_from(DISTRICTS),
            "speed": st.one_of(st.none(), st.floats(0, 130, allow_nan=False)),
            "camera": st.one_of(st.none(), st.sampled_from([f"CAM-{n:03d}" for n in range(12)])),
            "vehicles": st.integers(0, 500),
        }
    ),
    max_size=60,
)
conditions = st.one_of(
    st.builds(Condition, column=st.just("district"), op=st.sampled_from(["eq", "ne"]), value=st.sampled_from(DISTRICTS)),
    st.builds(
        Condition,
        column=st.just("district"),
        op=st.just("in"),
        value=st.lists(st.sampled_from(DISTRICTS), min_size=1, max_size=3),
    ),
    st.builds(Condition, column=st.just("speed"), op=st.sampled_from(["lt", "le", "gt", "ge"]), value=st.floats(0, 130)),
    st.builds(Condition, column=st.just("vehicles"), op=st.sampled_from(["lt", "ge", "eq"]), value=st.integers(0, 500)),
    st.builds(Condition, column=st.sampled_from(["camera", "speed"]), op=st.just("not_null"), value=st.none()),
)
filters = st.recursive(
    st.builds(RowFilter, condition=conditions),
    lambda children: st.one_of(
        st.builds(RowFilter, all=st.lists(children, min_size=1, max_size=3)),
        st.builds(RowFilter, any=st.lists(children, min_size=1, max_size=3)),
    ),
    max_leaves=6,
)
terms = st.builds(
    GrantTerms,
    columns=st.lists(st.sampled_from(COLUMNS), unique=True, max_size=4),
    row_filter=st.one_of(st.none(), filters),
    masked_columns=st.lists(st.sampled_from(["camera", "district"]), unique=True, max_size=2),
)

COMPARE = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
}


def holds(row: dict[str, Any], row_filter: RowFilter) -> bool:
    """The oracle: the filter evaluated in plain Python (a comparison with null is false)."""
    if row_filter.condition is not None:
        condition = row_filter.condition
        value = row[condition.column]
        if condition.op == "not_null":
            return value is not None
        if value is None:
            return False
        if condition.op == "in":
            return value in condition.value  # type: ignore[operator]
        return bool(COMPARE[condition.op](value, condition.value))
    children = [holds(row, child) for child in (row_filter.all or row_filter.any or [])]
    return all(children) if row_filter.all else any(children)


def grant_with(grant_terms: GrantTerms) -> Grant:
    return Grant(
        grant_id="g" + "a" * 24,
        dataset_id="flow",
        owner="transport",
        grantee_department="environment",
        purpose="Property test of restricted views",
        purpose_category="research",
        created_by="steward",
        created_at="t",
        terms=grant_terms,
    )


def no_key() -> bytes:
    raise AssertionError("no column of this dataset is encrypted")


@settings(max_examples=150, deadline=None)
@given(rows, terms)
def test_a_view_read_back_from_parquet_holds_only_what_the_grant_allows(
    data: list[dict[str, Any]], grant_terms: GrantTerms
) -> None:
    grant = grant_with(grant_terms)
    schema = pa.schema([("district", pa.string()), ("speed", pa.float64()), ("camera", pa.string()), ("vehicles", pa.int64())])
    curated = pa.Table.from_pylist(data, schema=schema).select(read_columns(DATASET, grant))
    view = restrict(curated, DATASET, grant, ViewSecrets(data_key=no_key, mask_key=lambda: b"k" * 32))
    sink = io.BytesIO()
    pq.write_table(view, sink)
    back = pq.read_table(io.BytesIO(sink.getvalue()))

    allowed = grant_terms.columns or COLUMNS
    assert back.column_names == [c for c in allowed]
    expected = [r for r in data if grant_terms.row_filter is None or holds(r, grant_terms.row_filter)]
    assert back.num_rows == len(expected)
    for kept, original in zip(back.to_pylist(), expected, strict=True):
        for column in back.column_names:
            if column in grant_terms.masked_columns:
                assert original[column] is None or kept[column] != original[column]
                assert kept[column] is None or not any(kept[column] == r[column] for r in data)
            else:
                assert kept[column] == original[column]
