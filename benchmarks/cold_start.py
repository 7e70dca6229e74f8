"""Cold import time of each Lambda handler module, against the floor of the libraries it needs.

Each figure is the median wall time of the import in fresh interpreters. Two floors:
- "import only": `import boto3, ...` of the handler's libraries;
- "as used": the same plus what using those libraries costs at import whoever writes the handler:
  the first pydantic model (pydantic builds its machinery lazily, ~50 ms here) and, for the HTTP
  functions, Powertools' resolver made with OpenAPI validation (its middleware and its own pydantic
  models, ~100 ms).
The ratio handler / "as used" floor is what CityShare's own code adds. The HTTP functions build
their services (and import those services' modules, the policy engine's cedarpy among them) on the
first request that needs them, so a second figure, "first request", adds every module the
function's services can import: the worst a cold request pays, before any AWS call. One extra run
with `python -X importtime` lists CityShare's own modules by cumulative import time.

With LAMBDA_PYTHON set (`make bench` sets it to Python 3.13, the Lambda runtime's) and the layers'
x86_64 twins built (`make bench-layers`: the same pinned requirements, the same trimming and the same
.pyc as `make layer` ships for arm64), every figure is measured again under that interpreter with
only the code asset and the layers on its path and nothing written to disk, as Lambda runs them.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

RUNS = 15
FIRST_MODEL = "exec('class _M(pydantic.BaseModel):\\n x: int')"
# Powertools' resolver as the HTTP functions use it: with OpenAPI validation (its middleware and models).
RESOLVER_WITH_VALIDATION = (
    "from aws_lambda_powertools.event_handler import APIGatewayRestResolver; "
    "import aws_lambda_powertools.event_handler.openapi.params, aws_lambda_powertools.event_handler.openapi.models; "
    "APIGatewayRestResolver(enable_validation=True)"
)
HANDLERS = {
    "api": (
        "functions.handlers.api",
        "import boto3, pydantic, cedarpy",
        RESOLVER_WITH_VALIDATION,
    ),
    "analytics": (
        "functions.handlers.analytics",
        "import boto3, pydantic, cedarpy",
        RESOLVER_WITH_VALIDATION,
    ),
    "authorizer": (
        "functions.handlers.authorizer",
        "import boto3, pydantic, jwt, cryptography, aws_lambda_powertools",
        "from aws_lambda_powertools import Logger; "
        "from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import APIGatewayAuthorizerRequestEvent",
    ),
}
# What the services of each HTTP function import when first built (functions/handlers/services.py).
SERVICE_MODULES = {
    "api": (
        "functions.policy.access",
        "functions.policy.engine",
        "functions.catalog.service",
        "functions.catalog.repository",
        "functions.core.events",
        "functions.governance.directory",
        "functions.governance.audit",
        "functions.ingest.repository",
        "functions.ingest.uploads",
        "functions.sharing.repository",
        "functions.sharing.service",
        "functions.sharing.recipients",
        "functions.notifications.repository",
        "functions.notifications.service",
    ),
    "analytics": (
        "functions.policy.access",
        "functions.policy.engine",
        "functions.catalog.service",
        "functions.catalog.repository",
        "functions.sharing.repository",
        "functions.ingest.repository",
        "functions.analytics.repository",
        "functions.analytics.service",
    ),
}
HEAVY = ("pyarrow", "duckdb", "pandas", "moto")
TIMED = "import time, sys; _t = time.perf_counter(); {statement}; print((time.perf_counter() - _t) * 1000)"


ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "build" / "bench-layers"
# Which layers each measured handler's function has (infra/spec.py); "runtime" stands in for the
# boto3 the Lambda runtime provides.
HANDLER_LAYERS = {"api": ("core", "data"), "analytics": ("core", "analytics"), "authorizer": ("core",)}


@dataclass(frozen=True)
class Interpreter:
    python: str = sys.executable
    environment: dict[str, str] = field(default_factory=dict)
    flags: tuple[str, ...] = ()

    cwd: Path | None = None

    def run(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.python, *self.flags, *arguments],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **self.environment},
            cwd=self.cwd,
        )


def as_shipped(python: str, layers: tuple[str, ...]) -> Interpreter:
    """Python 3.13 with only the code asset and the function's layers on its path (isolated: no site).
    `-P` and a neutral working directory keep the checkout's own source (no .pyc for this Python)
    off the path: found first, it would be compiled on every import, which Lambda never does."""
    path = [str(ROOT / "build" / "function-code"), *(str(SHIPPED / name / "python") for name in (*layers, "runtime"))]
    environment = {"PYTHONPATH": os.pathsep.join(path), "PYTHONDONTWRITEBYTECODE": "1"}
    return Interpreter(python, environment, flags=("-S", "-P"), cwd=SHIPPED)


def wall_ms(statements: dict[str, str], interpreter: Interpreter = Interpreter()) -> dict[str, float]:
    """The median import time of each statement, the statements interleaved run by run so that a
    busy moment of the machine weighs on all of them alike (their ratios are what is read)."""
    runs: dict[str, list[float]] = {label: [] for label in statements}
    for _ in range(RUNS):
        for label, statement in statements.items():
            runs[label].append(float(interpreter.run("-c", TIMED.format(statement=statement)).stdout))
    return {label: statistics.median(times) for label, times in runs.items()}


def own_modules(module: str, interpreter: Interpreter = Interpreter()) -> tuple[list[str], list[str]]:
    result = interpreter.run("-X", "importtime", "-c", f"import {module}")
    own, heavy = [], []
    for line in result.stderr.splitlines():
        found = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)", line)
        if found and found.group(2).startswith("functions."):
            own.append((int(found.group(1)), found.group(2)))
        if found and found.group(2).split(".")[0] in HEAVY:
            heavy.append(found.group(2))
    top = [f"{name} {micros / 1000:.0f} ms" for micros, name in sorted(own, reverse=True)[1:5]]
    return top, heavy


def measure(title: str, interpreter_of: dict[str, Interpreter]) -> None:
    print(title)
    for name, (module, libraries, used) in HANDLERS.items():
        interpreter = interpreter_of[name]
        statements = {"handler": f"import {module}", "strict": libraries, "used": f"{libraries}; {used}; {FIRST_MODEL}"}
        if name in SERVICE_MODULES:
            statements["first"] = f"import {module}, {', '.join(SERVICE_MODULES[name])}"
        figures = wall_ms(statements, interpreter)
        handler_ms, strict_ms, used_ms = figures["handler"], figures["strict"], figures["used"]
        top, heavy = own_modules(module, interpreter)
        print(
            f"  {name:<11} handler {handler_ms:6.1f} ms | floor: import only {strict_ms:6.1f} ms, as used {used_ms:6.1f} ms"
            f" | ratio to floor as used {handler_ms / used_ms:4.2f}"
        )
        if "first" in figures:
            first_ms = figures["first"]
            ratio = first_ms / used_ms
            print(f"  {'':<11} first request (+ every module its services import) {first_ms:6.1f} ms | ratio {ratio:4.2f}")
        print(
            f"  {'':<11} heaviest own modules (cumulative, -X importtime): {', '.join(top)}; heavy libraries: {heavy or 'none'}"
        )


def main() -> None:
    local = Interpreter(sys.executable, {"PYTHONPATH": str(ROOT)})
    measure(
        f"cold import, median of {RUNS} fresh interpreters (python {sys.version.split()[0]}, this virtualenv)",
        dict.fromkeys(HANDLERS, local),
    )
    lambda_python = os.environ.get("LAMBDA_PYTHON")
    if lambda_python and (SHIPPED / "core" / "python").is_dir():
        from infra.cloud.functions import stage_function_code

        stage_function_code(ROOT / "build" / "function-code", lambda_python)  # this checkout's code, as synth ships it
        version = Interpreter(lambda_python).run("-c", "import sys; print(sys.version.split()[0])").stdout.strip()
        shipped = as_shipped(lambda_python, HANDLER_LAYERS["api"])
        origin = shipped.run("-c", "import functions; print(functions.__file__)").stdout.strip()
        assert origin.startswith(str(ROOT / "build" / "function-code")), f"the handlers came from {origin}, not the code asset"
        measure(
            f"as shipped: python {version}, code asset and layers with their .pyc, nothing written",
            {name: as_shipped(lambda_python, HANDLER_LAYERS[name]) for name in HANDLERS},
        )
    else:
        print("(as shipped: set LAMBDA_PYTHON and run `make bench-layers` to measure under the Lambda runtime's Python)")


if __name__ == "__main__":
    main()
