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
- each sum of the released groups, with OpenDP's vector Laplace mechanism;
- each quantile (median, p25, ...) of a released group, with OpenDP's private quantile (an
  exponential mechanism over candidates evenly spaced across the column's declared bounds, so no
  released value is one person's: min and max are never released). Values arrive as each group's
  histogram over "slots": slot 2i is candidate i, slot 2i+1 lies between candidates i and i+1. Which
  candidates a value is below, at or above is all the mechanism scores, so the histogram loses
  nothing it uses, and a group's payload is bounded by the number of candidates, not of rows. A
  subject in `max_groups` groups changes each group's values by `max_rows` rows: each group's
  quantile spends the measure's share divided by `max_groups`.
Means are derived from counts and sums (post-processing, no extra cost). Exact values never leave.

Imported only where a release is computed: the privacy function in AWS (its layer holds OpenDP
alone), the API function's own process on the embedded stack.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from pydantic import ConfigDict, Field

from functions.core import aws
from functions.core.errors import ViewTooLarge
from functions.core.model import Model

MAX_THRESHOLD = 1 << 40


class QuantileInput(Model):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    alpha: float = Field(ge=0, le=1, description="0.5 for the median")
    candidates: int = Field(ge=2, le=10_000, description="How many candidates, evenly spaced over the column's bounds")
    histograms: dict[str, dict[int, int]] = Field(description="Group key -> slot -> bounded rows")


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
    quantiles: dict[str, QuantileInput] = Field(default_factory=dict, description="Output column -> its quantile's input")


class ReleaseResult(Model):
    counts: dict[str, int]
    sums: dict[str, dict[str, float]] = Field(default_factory=dict)
    quantiles: dict[str, dict[str, int]] = Field(default_factory=dict, description="Output column -> group key -> candidate")
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


@lru_cache(maxsize=256)
def quantile_mechanism(alpha: float, candidates: int, max_rows: int, epsilon: float) -> tuple[Any, float]:
    """OpenDP's private quantile over slots (the module's docstring), for a group whose values one
    subject changes by `max_rows` rows, spending at most `epsilon`: (measurement, epsilon spent)."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    domain = dp.vector_domain(dp.atom_domain(T=int))
    slots = list(range(0, 2 * candidates, 2))

    def mechanism(scale: float) -> Any:
        return dp.m.make_private_quantile(domain, dp.symmetric_distance(), dp.max_divergence(), slots, alpha, scale)

    found = mechanism(dp.binary_search_param(mechanism, d_in=max_rows, d_out=epsilon))
    return found, float(found.map(max_rows))


def _quantiles(request: ReleaseRequest, keys: list[str], share: float) -> tuple[dict[str, dict[str, int]], float]:
    """Each quantile of each released group, as the index of the candidate chosen; and the epsilon spent."""
    released: dict[str, dict[str, int]] = {}
    spent = 0.0
    for output, wanted in request.quantiles.items():
        mechanism, per_group = quantile_mechanism(wanted.alpha, wanted.candidates, request.max_rows, share / request.max_groups)
        spent += per_group * request.max_groups  # a subject is in at most max_groups groups
        chosen = {}
        for key in keys:
            histogram = wanted.histograms.get(key, {})
            values = [slot for slot, rows in sorted(histogram.items()) for _ in range(rows)]
            chosen[key] = int(mechanism(values)) // 2
        released[output] = chosen
    return released, spent


def release(request: ReleaseRequest) -> ReleaseResult:
    import opendp.prelude as dp

    dp.enable_features("contrib")
    share = request.epsilon / (1 + len(request.sums) + len(request.quantiles))
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
    quantiles, quantile_epsilon = _quantiles(request, keys, share)
    return ReleaseResult(
        counts=counts,
        sums=sums,
        quantiles=quantiles,
        threshold=high,
        epsilon=spent_epsilon + quantile_epsilon,
        delta=spent_delta,
    )


def packed(payload: str) -> dict[str, str]:
    """A request or result as a Lambda payload: gzipped JSON (a synchronous call carries at most
    6 MB each way; groups, counts and histograms compress two- to fourfold, base64 included)."""
    return {"gzip": base64.b64encode(gzip.compress(payload.encode(), 6)).decode()}


def unpacked(payload: dict[str, Any]) -> Any:
    """What `packed` made (or a plain payload) as JSON values."""
    if set(payload) == {"gzip"}:
        return json.loads(gzip.decompress(base64.b64decode(payload["gzip"])))
    return payload


# A synchronous Lambda call carries at most 6 MB each way.
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024


class Releases:
    """Computes releases where OpenDP is: in this process (the embedded stack, tests), or the privacy
    function (AWS, `PRIVACY_FUNCTION`), whose layer holds OpenDP beside nothing else."""

    lambdas = aws.LazyClient("lambda")

    def __init__(self, function_name: str = "", lambdas: Any = None, max_payload_bytes: int = MAX_PAYLOAD_BYTES) -> None:
        self._function = function_name
        self._lambdas = lambdas
        self._max_payload_bytes = max_payload_bytes

    def __call__(self, request: ReleaseRequest, spend: Callable[[], None] = lambda: None) -> ReleaseResult:
        """The release of `request`; `spend` (the grantee's budget) is called once the request is
        known to fit, just before the release: a view refused as too large spends nothing."""
        # Packed and measured in both stacks: a view too large for the function is refused alike
        # in AWS and in the embedded stack, which releases in this process.
        body = json.dumps(packed(request.model_dump_json())).encode()
        if len(body) > self._max_payload_bytes:
            raise _too_large(len(request.counts), len(body), self._max_payload_bytes)
        spend()
        if not self._function:
            return release(request)
        response = self.lambdas.invoke(FunctionName=self._function, Payload=body)
        payload = json.loads(response["Payload"].read())
        if response.get("FunctionError"):
            if "ResponseSizeTooLarge" in str(payload.get("errorType", "")):
                raise ViewTooLarge(
                    f"The release of the view's {len(request.counts):,} candidate groups is larger than the "
                    f"{MAX_PAYLOAD_BYTES / 1024 / 1024:.0f} MB a Lambda call returns; the owner's steward can coarsen the grant."
                )
            raise RuntimeError(f"the privacy function failed: {str(payload.get('errorMessage', ''))[:200]}")
        return ReleaseResult.model_validate(unpacked(payload))


def _too_large(groups: int, packed_bytes: int, limit: int) -> ViewTooLarge:
    return ViewTooLarge(
        f"The view's {groups:,} candidate groups make a release request of {packed_bytes / 1024 / 1024:.1f} MB "
        f"compressed; the privacy function takes at most {limit / 1024 / 1024:.1f} MB in one call. "
        "The owner's steward can coarsen the grant (fewer group-by columns, a coarser time or place) "
        "so that fewer groups are released."
    )
