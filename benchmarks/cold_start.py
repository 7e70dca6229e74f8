"""Cold import time of each Lambda handler module, against the floor of the libraries it needs.

Each figure is the median wall time of the import in fresh interpreters. Two floors:
- "import only": `import boto3, ...` of the handler's libraries;
- "as used": the same plus what using those libraries costs at import whoever writes the handler:
  the first pydantic model (pydantic builds its machinery lazily, ~50 ms here) and, for the API,
  Powertools' resolver with OpenAPI validation (its own pydantic models, ~90 ms).
The ratio handler / "as used" floor is what CityShare's own code adds. One extra run with
`python -X importtime` lists CityShare's own modules by cumulative import time.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import sys

RUNS = 9
FIRST_MODEL = "exec('class _M(pydantic.BaseModel):\\n x: int')"
HANDLERS = {
    "api": (
        "functions.handlers.api",
        "import boto3, pydantic, cedarpy",
        "from aws_lambda_powertools.event_handler import APIGatewayRestResolver; "
        "import aws_lambda_powertools.event_handler.openapi.params, aws_lambda_powertools.event_handler.openapi.models",
    ),
    "analytics": (
        "functions.handlers.analytics",
        "import boto3, pydantic, cedarpy",
        "from aws_lambda_powertools.event_handler import APIGatewayRestResolver; "
        "import aws_lambda_powertools.event_handler.openapi.params, aws_lambda_powertools.event_handler.openapi.models",
    ),
    "authorizer": (
        "functions.handlers.authorizer",
        "import boto3, pydantic, jwt, cryptography, aws_lambda_powertools",
        "from aws_lambda_powertools import Logger; "
        "from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import APIGatewayAuthorizerRequestEvent",
    ),
}
HEAVY = ("pyarrow", "duckdb", "pandas", "moto")
TIMED = "import time, sys; _t = time.perf_counter(); {statement}; print((time.perf_counter() - _t) * 1000)"


def wall_ms(statement: str) -> float:
    runs = [
        float(
            subprocess.run(
                [sys.executable, "-c", TIMED.format(statement=statement)], capture_output=True, text=True, check=True
            ).stdout
        )
        for _ in range(RUNS)
    ]
    return statistics.median(runs)


def own_modules(module: str) -> tuple[list[str], list[str]]:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True, check=True
    )
    own, heavy = [], []
    for line in result.stderr.splitlines():
        found = re.match(r"import time:\s+\d+ \|\s+(\d+) \|\s*(\S+)", line)
        if found and found.group(2).startswith("functions."):
            own.append((int(found.group(1)), found.group(2)))
        if found and found.group(2).split(".")[0] in HEAVY:
            heavy.append(found.group(2))
    top = [f"{name} {micros / 1000:.0f} ms" for micros, name in sorted(own, reverse=True)[1:5]]
    return top, heavy


def main() -> None:
    print(f"cold import, median of {RUNS} fresh interpreters (python {sys.version.split()[0]})")
    for name, (module, libraries, used) in HANDLERS.items():
        handler_ms = wall_ms(f"import {module}")
        strict_ms = wall_ms(libraries)
        used_ms = wall_ms(f"{libraries}; {used}; {FIRST_MODEL}")
        top, heavy = own_modules(module)
        print(
            f"  {name:<11} handler {handler_ms:6.1f} ms | floor: import only {strict_ms:6.1f} ms, as used {used_ms:6.1f} ms"
            f" | ratio to floor as used {handler_ms / used_ms:4.2f}"
        )
        print(
            f"  {'':<11} heaviest own modules (cumulative, -X importtime): {', '.join(top)}; heavy libraries: {heavy or 'none'}"
        )


if __name__ == "__main__":
    main()
