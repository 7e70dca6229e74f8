"""Schemathesis hooks (SCHEMATHESIS_HOOKS=tests.security.schemathesis_hooks): with CITYSHARE_FUZZ_PROFILE,
every generated request is signed like the SDK's, after serialisation, with that profile (the signed
API; the open interfaces' bearer token is a plain header instead); path parameters sometimes name
resources that exist, so operations get past 404."""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis.internal import lambda_sources

from cityshare import CityShareClient, Profile
from cityshare.signing import SignedRequestAuth

# Hypothesis describes filter lambdas by parsing their module's source; on this interpreter
# (CPython 3.11.7) `ast.parse` of Schemathesis's coverage module can raise "AST constructor recursion
# depth mismatch" depending on the stack depth it is called at (an interpreter bug, not a finding).
# The description only feeds a repr, so a failure to make it must not stop the run.
_describe_lambda = lambda_sources.lambda_description


def _lambda_description(function: Any) -> str:
    try:
        return str(_describe_lambda(function))
    except SystemError:
        return "lambda: <source not parsed>"


lambda_sources.lambda_description = _lambda_description  # type: ignore[assignment]

if os.environ.get("CITYSHARE_FUZZ_PROFILE"):
    _profile = Profile.load(Path(os.environ["CITYSHARE_FUZZ_PROFILE"]))
    schemathesis.auth.set_from_requests(SignedRequestAuth(CityShareClient.from_profile(_profile).signer, _profile.endpoint))
# {"dataset_id": {"pattern": ..., "values": [...]}, ...}: ids that exist, for path parameters.
_KNOWN: dict[str, dict[str, Any]] = json.loads(os.environ.get("CITYSHARE_FUZZ_IDS", "{}"))
_chance = random.Random(0)


@schemathesis.hook
def map_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> dict[str, Any] | None:
    """Half the time, a valid generated id becomes one that exists; an invalid one is left as it is
    (the negative cases must stay negative)."""
    if not path_parameters:
        return path_parameters
    for name, known in _KNOWN.items():
        value = path_parameters.get(name)
        valid = value is not None and re.fullmatch(known["pattern"], str(value)) and not isinstance(value, bool | float)
        if valid and _chance.random() < 0.5:
            path_parameters[name] = type(value)(_chance.choice(known["values"]))
    return path_parameters
