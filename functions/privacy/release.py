"""Differentially private releases of grouped counts and sums, with the OpenDP library.

What comes in is already bounded by the view that asks (functions/sharing/views.py): each subject
(the person or thing rows are about) counts in at most `max_groups` groups, for at most `max_rows`
rows in each, and a number it contributes to a sum is clamped to the column's declared bounds
(|value| <= `bounds[measure]`). So adding or removing one subject changes at most `max_groups`
counts, each by at most `max_rows`, and each sum by at most `max_rows * bound`.

The release spends `epsilon` (with `delta`), split evenly between the groups' counts and each sum:
- the groups and their counts together, with OpenDP's Laplace threshold mechanism: noise on every
  count, and a group is released only if its noisy count reaches a threshold chosen so that its
  privacy loss stays within `delta` (and at least k): which groups exist is itself private, so
  "suppressed" groups leak nothing;
- each sum of the released groups, with OpenDP's vector Laplace mechanism.
Means are derived from the two (post-processing, no extra cost). Exact values never leave.

Imported only where a release is computed: the privacy function in AWS (its layer holds OpenDP
alone), the API function's own process on the embedded stack.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from pydantic import ConfigDict, Field

from functions.core import aws
from functions.core.model import Model

MAX_THRESHOLD = 1 << 40


class ReleaseRequest(Model):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    epsilon: float = Field(gt=0, le=100)
    delta: float = Field(gt=0, lt=1)
    k: int = Field(ge=1)
    max_groups: int = Field(ge=1)
    max_rows: int = Field(ge=1)
    counts: dict[str, int] = Field(description="Group key (its values as JSON) -> bounded row count")
    sums: dict[str, dict[str, float]] = Field(default_factory=dict, description="Measure -> group key -> bounded sum")
    bounds: dict[str, float] = Field(default_factory=dict, description="Measure -> largest |value| a row may contribute")


class ReleaseResult(Model):
    counts: dict[str, int]
    sums: dict[str, dict[str, float]] = Field(default_factory=dict)
    threshold: int
    epsilon: float = Field(description="The privacy loss of the release, as OpenDP accounts it")
    delta: float


@lru_cache(maxsize=256)
def counting_mechanism(epsilon: float, delta: float, k: int, max_groups: int, max_rows: int) -> tuple[Any, int, float, float]:
    """OpenDP's Laplace threshold mechanism over group counts for a subject that touches at most
    `max_groups` groups by at most `max_rows` each, spending `epsilon`: its smallest threshold (at
    least k) whose privacy loss stays within `delta`. (measurement, threshold, epsilon, delta)."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    distance = (max_groups, max_groups * max_rows, max_rows)
    domain = dp.map_domain(dp.atom_domain(T=str), dp.atom_domain(T=int))
    metric = dp.l01inf_distance(dp.absolute_distance(T=int))
    scale = max_groups * max_rows / epsilon

    def mechanism(threshold: int) -> Any:
        return dp.m.make_laplace_threshold(domain, metric, scale=scale, threshold=threshold)

    low, high = max(k, 1), max(k, 1)
    while mechanism(high).map(distance)[1] > delta:
        low, high = high, high * 2
        if high > MAX_THRESHOLD:
            raise ValueError("delta is too small for this epsilon")
    while low < high:
        middle = (low + high) // 2
        if mechanism(middle).map(distance)[1] <= delta:
            high = middle
        else:
            low = middle + 1
    found = mechanism(high)
    spent_epsilon, spent_delta = found.map(distance)
    return found, high, float(spent_epsilon), float(spent_delta)


def release(request: ReleaseRequest) -> ReleaseResult:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    share = request.epsilon / (1 + len(request.sums))
    l0, linf = request.max_groups, request.max_rows
    counting, high, spent_epsilon, spent_delta = counting_mechanism(share, request.delta, request.k, l0, linf)
    counts = {key: int(value) for key, value in counting(dict(request.counts)).items()}
    keys = sorted(counts)
    sums: dict[str, dict[str, float]] = {}
    for measure, values in request.sums.items():
        sensitivity = l0 * linf * request.bounds[measure]
        vector = dp.m.make_laplace(
            dp.vector_domain(dp.atom_domain(T=float, nan=False)), dp.l1_distance(T=float), scale=sensitivity / share
        )
        spent_epsilon += vector.map(sensitivity)
        noisy = vector([float(values.get(key, 0.0)) for key in keys]) if keys else []
        sums[measure] = dict(zip(keys, noisy, strict=True))
    return ReleaseResult(counts=counts, sums=sums, threshold=high, epsilon=spent_epsilon, delta=spent_delta)


class Releases:
    """Computes releases where OpenDP is: in this process (the embedded stack, tests), or the privacy
    function (AWS, `PRIVACY_FUNCTION`), whose layer holds OpenDP beside nothing else."""

    lambdas = aws.LazyClient("lambda")

    def __init__(self, function_name: str = "", lambdas: Any = None) -> None:
        self._function = function_name
        self._lambdas = lambdas

    def __call__(self, request: ReleaseRequest) -> ReleaseResult:
        if not self._function:
            return release(request)
        response = self.lambdas.invoke(FunctionName=self._function, Payload=request.model_dump_json().encode())
        payload = json.loads(response["Payload"].read())
        if response.get("FunctionError"):
            raise RuntimeError(f"the privacy function failed: {str(payload.get('errorMessage', ''))[:200]}")
        return ReleaseResult.model_validate(payload)
