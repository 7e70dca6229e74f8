"""The `cityshare` command line. Every command is one SDK call (cityshare.client) plus printing."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from cityshare.client import CityShareClient, CityShareError
from cityshare.keys import generate_key
from cityshare.profile import DEFAULT_PROFILE, Profile

app = typer.Typer(no_args_is_help=True, help="CityShare: governed data sharing between the city's departments.")
admin_app = typer.Typer(no_args_is_help=True, help="Platform admin: departments, principals, keys.")
datasets_app = typer.Typer(no_args_is_help=True, help="The catalog: create, show, edit, list and search datasets.")
audit_app = typer.Typer(no_args_is_help=True, help="The audit trail: show and verify a department's chain.")
keys_app = typer.Typer(no_args_is_help=True, help="Key pairs and profiles for signing requests.")
local_app = typer.Typer(no_args_is_help=True, help="The embedded stack on 127.0.0.1 (no AWS account needed).")
for sub, name in (
    (admin_app, "admin"),
    (datasets_app, "datasets"),
    (audit_app, "audit"),
    (keys_app, "keys"),
    (local_app, "local"),
):
    app.add_typer(sub, name=name)

console = Console(width=None if sys.stdout.isatty() else 120)
ProfileOption = Annotated[Path | None, typer.Option("--profile", envvar="CITYSHARE_PROFILE", help="Profile JSON file")]
_state: dict[str, Path | None] = {"profile": None}


@app.callback()
def _main(profile: ProfileOption = None) -> None:
    _state["profile"] = profile


def client() -> CityShareClient:
    path = _state["profile"] or DEFAULT_PROFILE
    if not path.exists():
        console.print(f"[red]No profile at {path}[/red]: start `cityshare local up` or pass --profile")
        raise typer.Exit(2)
    return CityShareClient.from_profile(Profile.load(path))


def show(value: Any) -> None:
    console.print_json(json.dumps(value, default=str))


# -- identity
@app.command()
def whoami() -> None:
    """Who the directory says you are."""
    show(client().whoami())


@keys_app.command("generate")
def keys_generate(
    out: Annotated[Path, typer.Option(help="Where to write the private key (PEM, mode 0600)")],
    algorithm: Annotated[str, typer.Option(help="ES256 or RS256")] = "ES256",
) -> None:
    """Make a key pair; prints the public JWK to give to the platform admin."""
    show(generate_key(out, algorithm))


@keys_app.command("profile")
def keys_profile(
    out: Annotated[Path, typer.Option(help="Profile file to write")],
    endpoint: Annotated[str, typer.Option()],
    audience: Annotated[str, typer.Option()],
    department: Annotated[str, typer.Option()],
    principal: Annotated[str, typer.Option()],
    key_file: Annotated[Path, typer.Option()],
    kid: Annotated[str, typer.Option(help="Key id the admin registered")],
) -> None:
    """Write a profile for a principal."""
    Profile(endpoint, audience, department, principal, str(key_file.resolve()), kid).save(out)
    console.print(f"Profile written to {out}")


# -- admin
@admin_app.command("register")
def admin_register(department_id: str, name: Annotated[str, typer.Option()]) -> None:
    """Register a department."""
    show(client().register_department(department_id, name))


@admin_app.command("departments")
def admin_departments() -> None:
    """List departments."""
    table = Table("department", "name", "status", "since")
    for department in client().list_departments():
        table.add_row(department["department_id"], department["name"], department["status"], department["created_at"])
    console.print(table)


@admin_app.command("show")
def admin_show(department_id: str) -> None:
    """A department with its principals and keys."""
    show(client().describe_department(department_id))


@admin_app.command("suspend")
def admin_suspend(department_id: str) -> None:
    """Suspend a department: its requests are refused until reinstated."""
    show(client().set_department_status(department_id, "suspended"))


@admin_app.command("reinstate")
def admin_reinstate(department_id: str) -> None:
    """Reinstate a suspended department."""
    show(client().set_department_status(department_id, "active"))


@admin_app.command("principal")
def admin_principal(
    department_id: str,
    principal_id: str,
    role: Annotated[list[str], typer.Option(help="member, steward or admin; repeat for several")],
    display_name: Annotated[str, typer.Option()] = "",
) -> None:
    """Register a principal or change its roles."""
    show(client().put_principal(department_id, principal_id, role, display_name))


@admin_app.command("add-key")
def admin_add_key(department_id: str, principal_id: str, jwk_file: Path) -> None:
    """Register a principal's public key (a JWK file, as `cityshare keys generate` prints)."""
    show(client().add_key(department_id, principal_id, json.loads(jwk_file.read_text())))


@admin_app.command("retire-key")
def admin_retire_key(department_id: str, kid: str) -> None:
    """Retire a key: requests signed with it are refused from now on."""
    client().retire_key(department_id, kid)
    console.print(f"Key {kid} of {department_id} retired")


# -- datasets
@datasets_app.command("create")
def datasets_create(
    dataset_id: str,
    title: Annotated[str, typer.Option()],
    classification: Annotated[str, typer.Option(help="public, internal, confidential or restricted")],
    schema: Annotated[Path, typer.Option(help="JSON Schema of the columns (see schemas/datasets/)")],
    description: Annotated[str, typer.Option()] = "",
    tag: Annotated[list[str] | None, typer.Option(help="Domain tag; repeat for several")] = None,
) -> None:
    """Create a dataset owned by your department."""
    show(client().create_dataset(dataset_id, title, classification, json.loads(schema.read_text()), description, tag or []))


@datasets_app.command("show")
def datasets_show(dataset_id: str) -> None:
    """A dataset's metadata and schema."""
    show(client().get_dataset(dataset_id))


@datasets_app.command("update")
def datasets_update(
    dataset_id: str,
    title: Annotated[str | None, typer.Option()] = None,
    description: Annotated[str | None, typer.Option()] = None,
    classification: Annotated[str | None, typer.Option()] = None,
    tag: Annotated[list[str] | None, typer.Option()] = None,
) -> None:
    """Edit a dataset's metadata (your department's datasets only)."""
    changes = {"title": title, "description": description, "classification": classification, "tags": tag}
    show(client().update_dataset(dataset_id, **{k: v for k, v in changes.items() if v is not None}))


@datasets_app.command("list")
def datasets_list(
    owner: Annotated[str | None, typer.Option()] = None,
    tag: Annotated[str | None, typer.Option()] = None,
    classification: Annotated[str | None, typer.Option()] = None,
    q: Annotated[str | None, typer.Option("--search", "-q", help="Text in title, description or tags")] = None,
) -> None:
    """List and search the datasets you may see (all pages)."""
    table = Table("dataset", "owner", "classification", "tags", "title")
    for dataset in client().iter_datasets(owner=owner, tag=tag, classification=classification, q=q):
        table.add_row(
            dataset["dataset_id"], dataset["owner"], dataset["classification"], ",".join(dataset["tags"]), dataset["title"]
        )
    console.print(table)


# -- audit
@audit_app.command("show")
def audit_show(department: Annotated[str | None, typer.Option()] = None) -> None:
    """A department's audit entries (yours by default)."""
    table = Table("seq", "at", "actor", "action", "resource", "decision", "reason")
    for entry in client().iter_audit(department):
        reason = entry["reason"] or ",".join(entry["policies"])
        actor = f"{entry['actor_department']}/{entry['actor_principal']}"
        table.add_row(str(entry["seq"]), entry["at"][:19], actor, entry["action"], entry["resource"], entry["decision"], reason)
    console.print(table)


@audit_app.command("verify")
def audit_verify(department: Annotated[str | None, typer.Option()] = None) -> None:
    """Recompute a chain's hashes and links; exits 1 if an entry was removed, altered or reordered."""
    report = client().verify_audit(department)
    if report.intact:
        console.print(f"[green]Chain {report.chain}: {report.entries} entries, intact[/green]")
        return
    for problem in report.problems:
        console.print(f"[red]{problem}[/red]")
    raise typer.Exit(1)


# -- local stack and demo
@local_app.command("up")
def local_up(
    state_dir: Annotated[Path, typer.Option(help="Where the profile and keys are written")] = Path(".cityshare/local"),
    port: Annotated[int, typer.Option(help="Port of the gateway (0: any free port)")] = 0,
) -> None:
    """Start the embedded stack on 127.0.0.1; Ctrl-C stops it."""
    from cityshare.local import up

    up(state_dir, port)


@app.command()
def demo(state_dir: Annotated[Path, typer.Option()] = Path(".cityshare/demo")) -> None:
    """Start an embedded stack and run the city scenario against it."""
    from cityshare.demo import run_demo

    run_demo(state_dir, console)


def main() -> None:
    try:
        app()
    except CityShareError as error:
        console.print(f"[red]{error.status} {error.code}[/red]: {error.detail}")
        sys.exit(1)
