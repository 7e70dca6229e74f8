"""The spec, the settings, the routes and the OpenAPI document agree; the layering rules hold."""

from __future__ import annotations

import ast
import json
from pathlib import Path

from functions.core.errors import delta_sharing_error_code
from functions.core.settings import environment_names, required_environment_names
from functions.handlers.openapi import event_schemas, open_interfaces_document, openapi_document
from infra.local.provision import physical_names
from infra.spec import RESOURCE_ENVIRONMENT, SPEC, function_environment, gateway_delta_sharing_code

ROOT = Path(__file__).resolve().parents[2]


def test_every_function_gets_every_setting_it_requires() -> None:
    environment = function_environment(physical_names("x"), stage="s", audience="a")
    assert required_environment_names() <= set(environment)
    assert set(environment) - {"POWERTOOLS_SERVICE_NAME"} <= environment_names()


def test_every_resource_variable_names_a_resource_of_the_spec() -> None:
    names = physical_names("x")
    assert all(resource in names for resource in RESOURCE_ENVIRONMENT.values())


def _operations(document: dict[str, object]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item}  # type: ignore[attr-defined]


def test_spec_routes_are_exactly_the_documented_routes() -> None:
    """The signed API is openapi.json; the Delta Sharing routes (that protocol's shapes) and the
    open-data catalog (DCAT-AP) are open-interfaces.json."""
    assert {(r.method, r.path) for r in SPEC.routes if r.authorizer is None} == _operations(openapi_document())
    assert {(r.method, r.path) for r in SPEC.routes if r.authorizer is not None} == _operations(open_interfaces_document())


def test_the_gateway_and_the_function_give_a_status_the_same_delta_sharing_code() -> None:
    assert all(delta_sharing_error_code(status) == gateway_delta_sharing_code(status) for status in range(400, 600))


def test_committed_openapi_documents_are_current() -> None:
    for name, document in (("openapi.json", openapi_document()), ("open-interfaces.json", open_interfaces_document())):
        committed = json.loads((ROOT / "schemas" / name).read_text())
        assert committed == document, f"run `make openapi` and commit schemas/{name}"


def test_committed_event_schemas_are_current() -> None:
    committed = {p.stem: json.loads(p.read_text()) for p in (ROOT / "schemas" / "events").glob("*.json")}
    assert committed == event_schemas(), "run `make openapi` and commit schemas/events/"


def _imports(folder: str) -> set[tuple[str, str]]:
    found = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add((str(path.relative_to(ROOT)), node.module.split(".")[0]))
            elif isinstance(node, ast.Import):
                found.update((str(path.relative_to(ROOT)), alias.name.split(".")[0]) for alias in node.names)
    return found


def test_imports_run_one_way() -> None:
    assert not {(f, m) for f, m in _imports("functions") if m in {"infra", "cityshare", "aws_cdk", "moto"}}
    assert not {(f, m) for f, m in _imports("cityshare") if m in {"functions"}}
    infra = _imports("infra")
    assert not {(f, m) for f, m in infra if f.startswith("infra/cloud") and m in {"functions", "moto"}}
    assert not {(f, m) for f, m in infra if f == "infra/spec.py" and m not in {"__future__", "dataclasses", "typing"}}
    assert not {f for f, m in _imports("cityshare") if m == "infra" and f != "cityshare/local.py"}


def test_the_api_path_imports_nothing_heavy() -> None:
    heavy = {"pyarrow", "duckdb", "pandas", "moto", "jwt", "cryptography"}
    api_modules = [
        "functions/handlers/api.py",
        "functions/handlers/http.py",
        "functions/handlers/routes",
        "functions/catalog",
        "functions/policy",
        "functions/sharing/service.py",
        "functions/analytics/service.py",
    ]
    found = {(f, m) for f, m in _imports("functions") if any(f.startswith(p) for p in api_modules) and m in heavy}
    assert not found


def test_writing_the_openapi_document_leaves_the_routes_bound_to_their_functions() -> None:
    """Each route reads the verified caller from its router's context, which must stay its own
    function's: a process that generated the document once answered every later request with 500."""
    from functions.handlers import analytics, api

    openapi_document()
    for module in (api, analytics):
        assert all(router.context is module.app.context for router in module.ROUTERS)
