"""Reads the synthesised template's IAM: each role's statements in plain words, for the assertions
of test_isolation.py and the role table of docs/reference.md (which must match the template)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

Resources = dict[str, dict[str, Any]]

_NAMES = (
    (r"^TablesTable(\w+?)[0-9A-F]{8}$", "table:{}"),
    (r"^StorageBucketauditarchive[0-9A-F]{8}$", "bucket:audit-archive"),
    (r"^StorageBucket(\w+?)[0-9A-F]{8}$", "bucket:{}"),
    (r"^KeysPlatform[0-9A-F]{8}$", "key:platform"),
    (r"^KeysAuditSeal[0-9A-F]{8}$", "key:audit-seal"),
    (r"^MessagingQueue([\w-]+?)[0-9A-F]{8}$", "queue:{}"),
    (r"^MessagingDeadLetters([\w-]+?)[0-9A-F]{8}$", "dead-letters:{}"),
    (r"^MessagingUndelivered[0-9A-F]{8}$", "dead-letters:undelivered"),
    (r"^MessagingTopic(\w+?)[0-9A-F]{8}$", "topic:{}"),
    (r"^MessagingBus[0-9A-F]{8}$", "event-bus"),
    (r"^FunctionsLogs(\w+?)[0-9A-F]{8}$", "log-group:{}"),
    (r"^ApiDepartments[0-9A-F]{8}$", "usage-plan"),
    (r"^FunctionsRole(\w+?)[0-9A-F]{8}$", "role:{}"),
)


def readable(logical_id: str) -> str:
    for pattern, name in _NAMES:
        matched = re.match(pattern, logical_id)
        if matched:
            return name.format(*matched.groups())
    return logical_id


def render(value: Any) -> str:
    """A resource or condition value as text: ARNs of the stack's resources by name, the rest as is."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        if "Fn::GetAtt" in value:
            return f"<{readable(value['Fn::GetAtt'][0])}>"
        if "Ref" in value:
            return {"AWS::AccountId": "<account>", "AWS::Partition": "aws", "AWS::Region": "<region>"}.get(
                value["Ref"], f"<{readable(value['Ref'])}>"
            )
        if "Fn::Join" in value:
            separator, parts = value["Fn::Join"]
            return str(separator).join(render(p) for p in parts)
    return json.dumps(value)


@dataclass(frozen=True)
class Statement:
    role: str
    sid: str
    effect: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    conditions: str

    def allows(self, action: str) -> bool:
        return self.effect == "Allow" and any(re.fullmatch(a.replace("*", ".*"), action) for a in self.actions)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def role_statements(resources: Resources) -> list[Statement]:
    """Every statement of every IAM policy attached to a role of the stack (functions' and the data role)."""
    statements = []
    for policy in resources.values():
        if policy["Type"] != "AWS::IAM::Policy":
            continue
        for role in policy["Properties"]["Roles"]:
            named = resources[role["Ref"]]["Properties"].get("RoleName")
            # cityshare-<stage>-<function> (or -data): named after what it serves.
            role_name = f"role:{named.split('-', 2)[2]}" if isinstance(named, str) else readable(role["Ref"])
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                statements.append(
                    Statement(
                        role=role_name,
                        sid=statement.get("Sid", ""),
                        effect=statement["Effect"],
                        actions=tuple(sorted(_listed(statement["Action"]))),
                        resources=tuple(render(r) for r in _listed(statement.get("Resource", []))),
                        conditions=render(statement["Condition"]) if "Condition" in statement else "",
                    )
                )
    return statements


def role_table(resources: Resources) -> str:
    """The role table (docs/reference.md): each function role and the data role, statement by statement."""
    rows = ["| Role | Actions | On | Only when |", "|---|---|---|---|"]
    for statement in sorted(role_statements(resources), key=lambda s: (s.role, s.sid or "~", s.actions)):
        if not statement.role.startswith("role:"):
            continue  # CDK's own deploy-time handler
        actions = ", ".join(a.split(":", 1)[1] if a.count(":") == 1 else a for a in statement.actions)
        service = statement.actions[0].split(":", 1)[0]
        on = "<br>".join(f"`{resource}`" for resource in statement.resources)
        conditions = f"`{statement.conditions}`" if statement.conditions else ""
        rows.append(f"| {statement.role.removeprefix('role:')} | {service}: {actions} | {on} | {conditions} |")
    return "\n".join(rows)


def main() -> None:
    """Rewrite the role table of docs/reference.md from a fresh synth of the prod stage (`make role-table`)."""
    import os
    import tempfile
    from pathlib import Path

    from aws_cdk import App
    from aws_cdk.assertions import Template

    from app import build_app
    from infra.spec import SPEC

    root = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory() as work:
        layers = Path(work) / "layers"
        for name in sorted({layer for function in SPEC.functions for layer in function.layers}):
            (layers / name / "python").mkdir(parents=True)
        context = {**json.loads((root / "cdk.json").read_text())["context"], "stage": "prod"}
        console = Path(work) / "console"
        console.mkdir()
        (console / "index.html").write_text("stand-in")
        os.environ.pop("LAMBDA_PYTHON", None)  # no .pyc needed to read the IAM
        stack = build_app(
            App(context=context, outdir=str(Path(work) / "out")),
            layer_dir=layers,
            code_dir=Path(work) / "code",
            console_dir=console,
        )
        table = role_table(Template.from_stack(stack).to_json()["Resources"])
    readme = root / "docs" / "reference.md"
    start, end = "<!-- role-table:start -->\n", "\n<!-- role-table:end -->"
    text = readme.read_text()
    before, rest = text.split(start, 1)
    readme.write_text(before + start + table + end + rest.split(end, 1)[1])
    print(f"docs/reference.md role table: {table.count(chr(10)) - 1} statements")


if __name__ == "__main__":
    main()
