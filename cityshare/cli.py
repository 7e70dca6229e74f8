"""The `cityshare` command line. Every command is one SDK call (cityshare.client) plus printing."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, RenderableType
from rich.markup import escape
from rich.table import Column, Table
from rich.text import Text

from cityshare.client import CityShareClient, CityShareError, UnsuitableFile
from cityshare.delta import write_profile
from cityshare.keys import generate_key
from cityshare.profile import DEFAULT_PROFILE, Profile

app = typer.Typer(no_args_is_help=True, help="CityShare: governed data sharing between the city's departments.")
admin_app = typer.Typer(no_args_is_help=True, help="Platform admin: departments, principals, keys.")
datasets_app = typer.Typer(no_args_is_help=True, help="The catalog: create, show, update, list and search datasets.")
audit_app = typer.Typer(no_args_is_help=True, help="The audit trail: show and verify a department's chain.")
keys_app = typer.Typer(no_args_is_help=True, help="Key pairs and profiles for signing requests.")
local_app = typer.Typer(no_args_is_help=True, help="The embedded stack on 127.0.0.1 (no AWS account needed).")
access_app = typer.Typer(no_args_is_help=True, help="Sharing: access requests, stewards' decisions, grants.")
analytics_app = typer.Typer(no_args_is_help=True, help="Analytics triggers: alert rules, subscriptions, derived datasets.")
share_app = typer.Typer(no_args_is_help=True, help="Delta Sharing: profiles for another department's own tools.")
for sub, name in (
    (admin_app, "admin"),
    (datasets_app, "datasets"),
    (audit_app, "audit"),
    (keys_app, "keys"),
    (local_app, "local"),
    (access_app, "access"),
    (analytics_app, "analytics"),
    (share_app, "share"),
):
    app.add_typer(sub, name=name)

console = Console(width=None if sys.stdout.isatty() else 120)
# What the platform answers is written by departments: never terminal codes or rich markup here
# (an ESC sequence can retitle or rewrite the terminal; "[link=...]" would become a hyperlink).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(value: object) -> str:
    """`value` as text for an f-string printed with markup: control characters dropped, markup escaped."""
    return escape(_CONTROL.sub("", str(value)))


class DataTable(Table):
    """A table of the platform's values: each text cell shown as text, never read as markup or codes."""

    def add_row(self, *renderables: RenderableType | None, **options: Any) -> None:
        cells = [Text(_CONTROL.sub("", cell)) if isinstance(cell, str) else cell for cell in renderables]
        super().add_row(*cells, **options)


ProfileOption = Annotated[Path | None, typer.Option("--profile", envvar="CITYSHARE_PROFILE", help="Profile JSON file")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the platform's whole answer as JSON")]
_state: dict[str, Path | None] = {"profile": None}
_output = {"json": False}


@app.callback()
def _main(profile: ProfileOption = None, as_json: JsonOption = False) -> None:
    _state["profile"] = profile
    _output["json"] = as_json


notes = Console(stderr=True)


def client() -> CityShareClient:
    path = _state["profile"] or DEFAULT_PROFILE
    if not path.exists():
        if _state["profile"] is None:
            advice = "start `cityshare local up` (it writes the admin's profile there), or pass --profile"
        else:
            advice = "check the path given by --profile or CITYSHARE_PROFILE (`admin onboard` writes one per principal)"
        console.print(f"[red]No profile at {printable(path)}[/red]: {advice}")
        raise typer.Exit(2)
    profile = Profile.load(path)
    if _state["profile"] is None:  # nobody chose: say whose name the call is made in
        notes.print(
            f"[dim]as {printable(profile.department)}/{printable(profile.principal)} ({printable(path)}); "
            "--profile or CITYSHARE_PROFILE for another[/dim]"
        )
    return CityShareClient.from_profile(profile)


def show(value: Any, summary: str | None = None) -> None:
    """The answer as JSON with --json, else the one line that matters (`summary`, a template over the
    answer's fields: `{grant_id}`), or without one its fields, one per line."""
    if _output["json"] or not isinstance(value, dict):
        console.print_json(json.dumps(value, default=str))
        return
    if summary is not None:
        try:
            console.print(summary.format_map({k: printable(v) for k, v in value.items()}))
            return
        except (KeyError, ValueError):  # an answer without a field the line names: its fields
            pass
    console.print(_fields(value))


class JsonFileError(ValueError):
    """A JSON file the user gave that is not JSON: said with its name, line and column."""


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise JsonFileError(f"{path} is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}") from None


def as_json(value: Any) -> bool:
    """With --json: print `value` (a list command's items) as JSON and say so, for the caller to stop."""
    if _output["json"]:
        console.print_json(json.dumps(value, default=str))
    return _output["json"]


def _fields(record: dict[str, Any]) -> DataTable:
    """A record as `name  value` lines: a nested record's fields indented under its name, each record
    of a list likewise, a list of values on one line."""
    table = DataTable(Column(style="bold", no_wrap=True), Column(overflow="fold"), box=None, show_header=False, padding=(0, 2))
    for label, text in _lines(record, ""):
        table.add_row(label, text)
    return table


def _lines(record: dict[str, Any], indent: str) -> Iterator[tuple[str, str]]:
    for name, value in record.items():
        if isinstance(value, dict) and value and len(indent) < 4:
            yield indent + str(name), ""
            yield from _lines(value, indent + "  ")
        elif isinstance(value, list) and value and all(isinstance(entry, dict) for entry in value) and len(indent) < 4:
            yield indent + str(name), str(len(value))
            for number, entry in enumerate(value, 1):
                yield f"{indent}  [{number}]", ""
                yield from _lines(entry, indent + "    ")
        elif isinstance(value, list) and not any(isinstance(entry, dict | list) for entry in value):
            yield indent + str(name), ", ".join(_scalar(entry) for entry in value) or "-"
        else:
            yield indent + str(name), _scalar(value)


def _scalar(value: Any) -> str:
    if value is None or value == {} or value == []:
        return "-"
    if isinstance(value, dict | list):  # deeper than the listing goes: compact JSON
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


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
    """Make a key pair; prints the public JWK (JSON, to save to a file) to give to the platform admin."""
    print(json.dumps(generate_key(out, algorithm), indent=2))


@keys_app.command("profile")
def keys_profile(
    out: Annotated[Path, typer.Option(help="Profile file to write")],
    department: Annotated[str, typer.Option()],
    principal: Annotated[str, typer.Option()],
    key_file: Annotated[Path, typer.Option(help="The principal's private key (PEM)")],
    endpoint: Annotated[str | None, typer.Option(help="The API's URL (default: the current profile's)")] = None,
    audience: Annotated[str | None, typer.Option(help="The API's audience (default: the current profile's)")] = None,
    kid: Annotated[str | None, typer.Option(help="Key id (default: the one the platform gives this key)")] = None,
    check: Annotated[bool, typer.Option(help="Check that the endpoint answers")] = True,
) -> None:
    """Write a profile for a principal; what is not given comes from the current profile and the key."""
    from cityshare.keys import key_id

    current = _current_profile() if endpoint is None or audience is None else None
    endpoint = endpoint or (current.endpoint if current else "")
    audience = audience or (current.audience if current else "")
    if not _URL.fullmatch(endpoint):
        console.print(
            f"[red]{printable(endpoint)!r} is not a URL[/red] (like http://127.0.0.1:8787): the API's address, not a placeholder"
        )
        raise typer.Exit(2)
    if check:
        _reachable(endpoint)
    profile = Profile(endpoint, audience, department, principal, str(key_file.resolve()), kid or key_id(key_file))
    profile.save(out)
    console.print(
        f"Profile for {printable(department)}/{printable(principal)} (key {printable(profile.kid)}) written to {printable(out)}"
    )


_URL = re.compile(r"https?://([A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:]+\])(:[0-9]{1,5})?(/\S*)?")


def _current_profile() -> Profile | None:
    path = _state["profile"] or DEFAULT_PROFILE
    return Profile.load(path) if path.exists() else None


def _reachable(endpoint: str) -> None:
    import requests

    try:
        requests.get(endpoint, timeout=5)
    except requests.RequestException:
        console.print(
            f"[red]Nothing answers at {printable(endpoint)}[/red]: is the stack running? (`--no-check` to write it anyway)"
        )
        raise typer.Exit(2) from None


# -- admin
@admin_app.command("register")
def admin_register(department_id: str, name: Annotated[str, typer.Option()]) -> None:
    """Register a department."""
    show(client().register_department(department_id, name), "Department {department_id} registered ({status})")


@admin_app.command("departments")
def admin_departments() -> None:
    """List departments."""
    table = DataTable("department", "name", "status", "since")
    departments = client().list_departments()
    if as_json(departments):
        return
    for department in departments:
        table.add_row(department["department_id"], department["name"], department["status"], department["created_at"])
    console.print(table)


@admin_app.command("show")
def admin_show(department_id: str) -> None:
    """A department with its principals and keys."""
    show(client().describe_department(department_id))


@admin_app.command("suspend")
def admin_suspend(department_id: str) -> None:
    """Suspend a department: its requests are refused until reinstated."""
    show(client().set_department_status(department_id, "suspended"), "{department_id} is {status}")


@admin_app.command("reinstate")
def admin_reinstate(department_id: str) -> None:
    """Reinstate a suspended department."""
    show(client().set_department_status(department_id, "active"), "{department_id} is {status}")


@admin_app.command("suspend-principal")
def admin_suspend_principal(department_id: str, principal_id: str) -> None:
    """Suspend one principal: its requests are refused, and the rules, derived datasets and
    subscriptions it defined stop, until reinstated."""
    show(client().set_principal_status(department_id, principal_id, "suspended"), "{department_id}/{principal_id} is {status}")


@admin_app.command("reinstate-principal")
def admin_reinstate_principal(department_id: str, principal_id: str) -> None:
    """Reinstate a suspended principal."""
    show(client().set_principal_status(department_id, principal_id, "active"), "{department_id}/{principal_id} is {status}")


@admin_app.command("principal")
def admin_principal(
    department_id: str,
    principal_id: str,
    role: Annotated[list[str], typer.Option(help="member, steward or admin; repeat for several")],
    display_name: Annotated[str, typer.Option()] = "",
) -> None:
    """Register a principal or change its roles."""
    show(client().put_principal(department_id, principal_id, role, display_name), "{department_id}/{principal_id}: {roles}")


@admin_app.command("add-key")
def admin_add_key(department_id: str, principal_id: str, jwk_file: Path) -> None:
    """Register a principal's public key (a JWK file, as `cityshare keys generate` prints); prints its key id."""
    key = client().add_key(department_id, principal_id, read_json(jwk_file))
    if _output["json"]:
        show(key)
    else:
        console.print(printable(key["kid"]))


@admin_app.command("onboard")
def admin_onboard(
    department_id: str,
    name: Annotated[str, typer.Option(help="The department's name")],
    out_dir: Annotated[Path, typer.Option(help="Where the principals' keys and profiles are written")],
    steward: Annotated[list[str] | None, typer.Option(help="A data steward (decides on the department's data); repeat")] = None,
    member: Annotated[list[str] | None, typer.Option(help="A member (publishes and reads); repeat")] = None,
    public_key: Annotated[
        list[str] | None, typer.Option(help="principal=jwk-file: register the principal's own public key, make none")
    ] = None,
) -> None:
    """Register a department with its stewards and members, their keys and ready profiles, in one step."""
    from cityshare.admin import onboard

    principals = {p: "member" for p in member or []} | {p: "steward" for p in steward or []}
    if not principals:
        console.print("[red]Name at least one --steward or --member[/red]")
        raise typer.Exit(2)
    given = {}
    for pair in public_key or []:
        principal, _, path = pair.partition("=")
        if principal not in principals or not path:
            console.print(
                f"[red]--public-key {printable(pair)}[/red]: principal=file, the principal named by --steward or --member"
            )
            raise typer.Exit(2)
        given[principal] = read_json(Path(path))
    admin = client()
    admin_profile = _current_profile()
    assert admin_profile is not None
    done = onboard(admin, admin_profile, department_id, name, principals, out_dir, given)
    table = DataTable("principal", "roles", "key id", "profile")
    for entry in done:
        table.add_row(entry.principal, ", ".join(entry.roles), entry.kid, str(entry.profile_path))
    console.print(table)
    if given:
        console.print(
            "[dim]Each principal who gave its public key puts its private key where its profile says "
            f"({printable(out_dir)}/<principal>.pem).[/dim]"
        )
    chosen = next((entry for entry in done if "steward" in entry.roles), done[0])
    console.print(f"[dim]Use one: export CITYSHARE_PROFILE={printable(chosen.profile_path)}[/dim]")


@admin_app.command("retire-key")
def admin_retire_key(department_id: str, kid: str) -> None:
    """Retire a key: requests signed with it are refused from now on."""
    client().retire_key(department_id, kid)
    console.print(f"Key {kid} of {department_id} retired")


# -- datasets
# A dataset's optional fields, the same options on `create` and `update`.
LicenceOption = Annotated[
    str | None, typer.Option(help="The licence's URL (open data), e.g. https://creativecommons.org/licenses/by/4.0/")
]
ContactOption = Annotated[str | None, typer.Option(help="Contact point: 'Name <email>'")]
ThemeOption = Annotated[list[str] | None, typer.Option(help="EU data theme (TRAN, ENVI, HEAL, ...); repeat")]
InvalidRowsOption = Annotated[
    str | None,
    typer.Option(help="reject_file (default) or accept_valid: publish the valid rows of a file with a few invalid ones"),
]
InvalidShareOption = Annotated[float | None, typer.Option(help="With accept_valid: the largest share of invalid rows (0.05)")]


def _dataset_fields(
    licence: str | None,
    contact: str | None,
    theme: list[str] | None,
    on_invalid_rows: str | None,
    max_invalid_share: float | None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {"licence": licence, "themes": theme}
    if contact:
        matched = re.fullmatch(r"\s*(.+?)\s*<([^<>\s]+@[^<>\s]+)>\s*", contact)
        if not matched:
            console.print(f"[red]--contact {printable(contact)!r}[/red]: write it as 'Name <email>'")
            raise typer.Exit(2)
        fields["contact_point"] = {"name": matched.group(1), "email": matched.group(2)}
    policy = {"on_invalid_rows": on_invalid_rows, "max_invalid_share": max_invalid_share}
    if any(v is not None for v in policy.values()):
        fields["ingest"] = {k: v for k, v in policy.items() if v is not None}
    return {k: v for k, v in fields.items() if v is not None}


@datasets_app.command("create")
def datasets_create(
    dataset_id: str,
    title: Annotated[str, typer.Option()],
    classification: Annotated[str, typer.Option(help="public, internal, confidential or restricted")],
    schema: Annotated[Path, typer.Option(help="JSON Schema of the columns (see schemas/datasets/)")],
    description: Annotated[str, typer.Option()] = "",
    tag: Annotated[list[str] | None, typer.Option(help="Domain tag; repeat for several")] = None,
    licence: LicenceOption = None,
    contact: ContactOption = None,
    theme: ThemeOption = None,
    on_invalid_rows: InvalidRowsOption = None,
    max_invalid_share: InvalidShareOption = None,
) -> None:
    """Create a dataset owned by your department."""
    fields = _dataset_fields(licence, contact, theme, on_invalid_rows, max_invalid_share)
    show(
        client().create_dataset(dataset_id, title, classification, read_json(schema), description, tag or [], **fields),
        "Dataset {dataset_id} created ({classification})",
    )


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
    licence: LicenceOption = None,
    contact: ContactOption = None,
    theme: ThemeOption = None,
    on_invalid_rows: InvalidRowsOption = None,
    max_invalid_share: InvalidShareOption = None,
) -> None:
    """Edit a dataset's metadata (your department's datasets only); what is not given stays."""
    changes = {"title": title, "description": description, "classification": classification, "tags": tag}
    changes |= _dataset_fields(licence, contact, theme, on_invalid_rows, max_invalid_share)
    show(
        client().update_dataset(dataset_id, **{k: v for k, v in changes.items() if v is not None}),
        "Dataset {dataset_id} updated (revision {revision})",
    )


@datasets_app.command("list")
def datasets_list(
    owner: Annotated[str | None, typer.Option()] = None,
    tag: Annotated[str | None, typer.Option()] = None,
    classification: Annotated[str | None, typer.Option()] = None,
    q: Annotated[str | None, typer.Option("--search", "-q", help="Text in title, description or tags")] = None,
) -> None:
    """List and search the datasets you may see (all pages)."""
    table = DataTable("dataset", "owner", "classification", "tags", "title")
    datasets = list(client().iter_datasets(owner=owner, tag=tag, classification=classification, q=q))
    if as_json(datasets):
        return
    for dataset in datasets:
        table.add_row(
            dataset["dataset_id"], dataset["owner"], dataset["classification"], ",".join(dataset["tags"]), dataset["title"]
        )
    console.print(table)


# -- ingestion
def transfer_progress() -> Any:
    """A progress bar with bytes and speed, for uploads and downloads."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    return Progress(
        "[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=console
    )


@app.command()
def upload(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV, JSON lines or Parquet; .gz accepted")],
    dataset: Annotated[str, typer.Option("--dataset", "-d")],
    file_format: Annotated[str | None, typer.Option("--format", help="csv, jsonl or parquet (default: from the name)")] = None,
    delimiter: Annotated[str | None, typer.Option(help="CSV delimiter: , ; tab |")] = None,
    encoding: Annotated[str | None, typer.Option(help="CSV encoding, e.g. latin-1")] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the outcome")] = True,
) -> None:
    """Upload a file to a dataset of yours, with a progress bar, and show what became of it."""
    csv = {k: v for k, v in {"delimiter": "\t" if delimiter == "tab" else delimiter, "encoding": encoding}.items() if v}
    sdk = client()
    with transfer_progress() as progress:
        task = progress.add_task(f"uploading {file.name}", total=file.stat().st_size)
        ticket = sdk.upload_file(dataset, file, file_format, csv=csv or None, progress=lambda n: progress.advance(task, n))
    console.print(f"upload {ticket['upload_id']} sent")
    if wait:
        show_outcome(sdk.wait_for_upload(dataset, ticket["upload_id"]))


@app.command()
def push(
    dataset: str,
    records_file: Annotated[Path, typer.Argument(exists=True, help="A JSON array of records, or JSON lines")],
    wait: Annotated[bool, typer.Option(help="Wait for the outcome")] = True,
) -> None:
    """Push a small batch of JSON records (at most 1,000) to a dataset of yours."""
    text = records_file.read_text()
    records = (
        json.loads(text) if text.lstrip().startswith("[") else [json.loads(line) for line in text.splitlines() if line.strip()]
    )
    sdk = client()
    pushed = sdk.push_records(dataset, records)
    if wait:
        show_outcome(sdk.wait_for_upload(dataset, pushed["upload_id"]))


def show_outcome(upload: dict[str, Any]) -> None:
    report = upload.get("report") or {}
    if upload["status"] == "published":
        console.print(
            f"[green]published as version {upload['version']}[/green]: {report.get('rows_accepted')} rows"
            + (f", {report['rows_rejected']} rejected" if report.get("rows_rejected") else "")
        )
    elif upload["status"] == "rejected":
        if report.get("file_error"):  # the file as a whole: no row was read as one
            console.print(f"[red]rejected[/red] ({printable(report['file_error'])}): the file as a whole, see below")
        else:
            console.print(f"[red]rejected[/red]: {report.get('rows_rejected', 0)} invalid rows")
    elif upload["status"] == "failed":
        console.print("[red]failed[/red]: processing failed on the platform's side (see below); nothing was published")
    else:
        console.print(f"still {printable(upload['status'])}")
    if report.get("issues"):
        table = DataTable("row", "column", "rule", "message", "value", title="Problems found (first ones)")
        for issue in report["issues"][:20]:
            table.add_row(
                str(issue.get("row") or ""), issue.get("column") or "", issue["rule"], issue["message"], issue.get("value") or ""
            )
        console.print(table)
    if upload["status"] in ("rejected", "failed"):
        raise typer.Exit(1)


@app.command()
def versions(dataset: str) -> None:
    """A dataset's versions with rows and rejected rows."""
    table = DataTable("version", "created", "rows", "rejected", "bytes", "upload", "figures")
    listed = client().list_versions(dataset)
    if as_json(listed):
        return
    for version in listed:
        report = version.get("report") or {}

        def shown(value: Any) -> str:
            return "-" if value is None else str(value)  # a figure beyond what you may read

        table.add_row(
            str(version["version"]),
            version["created_at"],
            shown(version.get("rows")),
            shown(report.get("rows_rejected")),
            shown(version.get("bytes")),
            shown(version.get("upload_id")),
            version.get("access", ""),
        )
    console.print(table)


@app.command("version")
def version_show(dataset: str, number: int) -> None:
    """One version: files, profile and the report of rejected rows."""
    show(client().get_version(dataset, number))


@app.command("demo-data")
def demo_data(
    name: Annotated[
        str,
        typer.Argument(
            help="traffic-flow, plate-reads, air-quality, air-quality-history (weeks of hourly air-quality readings), "
            "hospital-beds, service-requests, delivery-gps, parking-fines, district-boundaries, building-energy, waste-collection"
        ),
    ],
    out: Annotated[Path, typer.Option(help="File to write (.csv or .jsonl)")],
    rows: Annotated[int, typer.Option()] = 1000,
    seed: Annotated[int, typer.Option()] = 7,
    spike: Annotated[bool, typer.Option(help="Include an incident (pollution spike, congestion)")] = False,
) -> None:
    """Generate realistic, seeded city data matching schemas/datasets/NAME.json."""
    from cityshare.generators import GENERATORS, written

    if name not in GENERATORS:
        console.print(f"[red]unknown dataset {name}[/red]; one of {', '.join(GENERATORS)}")
        raise typer.Exit(2)
    count = written(name, rows, out, seed, spike)
    console.print(f"{count} rows of {name} written to {out}")


# -- sharing
@access_app.command("request")
def access_request(
    dataset_id: str,
    purpose: Annotated[str, typer.Option()],
    category: Annotated[str, typer.Option(help="planning, research, operations, public-health, public-safety, ...")],
    legal_basis: Annotated[str, typer.Option(help="public-task, legal-obligation, vital-interests, consent, ...")],
    until: Annotated[str, typer.Option(help="ISO date")],
    column: Annotated[list[str] | None, typer.Option(help="A column wanted; repeat (none: all)")] = None,
) -> None:
    """Ask the owner's stewards for access to a dataset."""
    show(
        client().request_access(dataset_id, purpose, category, legal_basis, until, column or []),
        "Access request {request_id}: {status}",
    )


@access_app.command("pending")
def access_pending() -> None:
    """Access requests waiting for your department's stewards."""
    table = DataTable(Column("request", no_wrap=True, min_width=25), "dataset", "from", "purpose", "columns", "until")
    pending = client().pending_requests()
    if as_json(pending):
        return
    for item in pending:
        table.add_row(
            item["request_id"],
            item["dataset_id"],
            f"{item['requester_department']}/{item['requester_principal']}",
            item["purpose"][:60],
            ",".join(item["columns"]) or "all",
            item["until"][:10],
        )
    console.print(table)


@access_app.command("approve")
def access_approve(
    dataset_id: str,
    request_id: str,
    terms: Annotated[Path | None, typer.Option(help="JSON grant terms narrowing the request")] = None,
    note: Annotated[str, typer.Option()] = "",
) -> None:
    """Approve a request as asked, or narrowed by a terms file."""
    show(
        client().approve_request(dataset_id, request_id, read_json(terms) if terms else None, note),
        "Approved: grant {grant_id} to {grantee_department} ({status})",
    )


@access_app.command("deny")
def access_deny(dataset_id: str, request_id: str, reason: Annotated[str, typer.Option()]) -> None:
    """Deny a request with a reason."""
    show(client().deny_request(dataset_id, request_id, reason), "Access request {request_id}: {status}")


@access_app.command("grant")
def access_grant(
    dataset_id: str,
    department: Annotated[str, typer.Option()],
    purpose: Annotated[str, typer.Option()],
    category: Annotated[str, typer.Option()],
    terms: Annotated[Path | None, typer.Option(help="JSON grant terms")] = None,
    principal: Annotated[str | None, typer.Option(help="Grant to one principal of the department")] = None,
    legal_basis: Annotated[
        str | None, typer.Option(help="public-task, legal-obligation, consent, ... (required for data about people)")
    ] = None,
) -> None:
    """Grant a department (or one principal) access directly."""
    given = read_json(terms) if terms else None
    show(
        client().grant(dataset_id, department, purpose, category, given, principal, legal_basis),
        "Grant {grant_id} to {grantee_department} ({status})",
    )


@access_app.command("grant-tags")
def access_grant_tags(
    department: Annotated[str, typer.Option()],
    tag: Annotated[list[str], typer.Option(help="A tag the datasets must carry; repeat for several (all must match)")],
    purpose: Annotated[str, typer.Option()],
    category: Annotated[str, typer.Option()],
    max_classification: Annotated[str, typer.Option(help="public, internal, confidential or restricted")] = "internal",
    expires: Annotated[str | None, typer.Option(help="ISO date the grant stops working")] = None,
) -> None:
    """Grant every dataset of yours carrying the tags, including datasets created later."""
    show(
        client().grant_by_tags(department, tag, purpose, category, max_classification, expires),
        "Grant {grant_id} to {grantee_department} ({status})",
    )


def privacy_spent(grant: dict[str, Any]) -> str:
    """A differentially private grant's budget: what its grantee spent on the dataset, of how much."""
    terms = (grant["terms"].get("aggregate") or {}).get("privacy")
    if not terms:
        return ""
    return f"ε {grant.get('privacy_spent') or 0:.2f}/{terms['budget']:g}"


def show_grants(grants: list[dict[str, Any]]) -> None:
    table = DataTable(
        Column("grant", no_wrap=True, min_width=25), "of", "on", "to", "status", "columns", "expires", "privacy", "purpose"
    )
    if as_json(grants):
        return
    for item in grants:
        grantee = item["grantee_department"] + (f"/{item['grantee_principal']}" if item.get("grantee_principal") else "")
        scope = item.get("dataset_id") or f"tags {','.join(item['tags'])} ≤ {item['max_classification']}"
        table.add_row(
            item["grant_id"],
            item["owner"],
            scope,
            grantee,
            item["status"],
            ",".join(item["terms"]["columns"]) or "all",
            (item["terms"].get("expires_at") or "")[:10],
            privacy_spent(item),
            item["purpose"][:50],
        )
    console.print(table)


@access_app.command("grants")
def access_grants(
    dataset_id: Annotated[str | None, typer.Argument(help="A dataset of yours (default: your department's grants)")] = None,
    given: Annotated[bool, typer.Option("--given", help="Grants your department gave (stewards)")] = False,
) -> None:
    """A dataset's grants, or the grants your department received (or, with --given, gave)."""
    if dataset_id:
        show_grants(client().grants(dataset_id))
    else:
        show_grants(client().department_grants("given" if given else "received"))


@access_app.command("revoke")
def access_revoke(
    first: Annotated[str, typer.Argument(metavar="[DATASET] GRANT")], grant_id: Annotated[str | None, typer.Argument()] = None
) -> None:
    """Revoke a grant (of a dataset, or any grant your department gave); the next request under it is refused."""
    show(
        client().revoke_grant(first, grant_id) if grant_id else client().revoke_department_grant(first),
        "Grant {grant_id} is {status}",
    )


@analytics_app.command("rule")
def analytics_rule(dataset_id: str, rule: Annotated[Path, typer.Argument(help="JSON alert rule", exists=True)]) -> None:
    """Define an alert rule on a dataset you may read (see README: Analytics triggers). A forecast
    rule is backtested on the dataset's history first: its hits, misses, false alarms and lead."""
    defined = client().define_alert_rule(dataset_id, read_json(rule))
    show(defined, "Rule {rule_id} on {dataset_id}: {name}")
    if defined.get("backtest") and not _output["json"]:
        print_backtest(defined["backtest"])


def forecast_text(forecast: dict[str, Any] | None) -> str:
    """A forecast alert's interval and lead, e.g. "72-100, 4 h ahead of 03:00"; "-" for other alerts."""
    if not forecast:
        return "-"
    observed = str(forecast["last_observed"])[11:16]
    # One decimal, as the inbox says it.
    return f"{forecast['lower']:.1f}-{forecast['upper']:.1f}, {forecast['lead_minutes'] / 60:g} h ahead of {observed}"


def print_backtest(backtest: dict[str, Any]) -> None:
    """A forecast rule's backtest in a line or two (the CLI's and the demo's)."""

    def share(value: float | None) -> str:
        return "-" if value is None else f"{value:.0%}"

    lead = backtest.get("mean_lead_minutes")
    console.print(
        f"  backtest on v{backtest.get('history_version')}: {backtest['events']} crossings, {backtest['hits']} forecast ahead "
        f"({share(backtest.get('hit_rate'))}, mean lead {'-' if lead is None else f'{lead / 60:.1f} h'}), "
        f"{backtest['misses']} missed; {backtest['alarms']} alarms, {backtest['false_alarms']} false "
        f"({share(backtest.get('false_alarm_ratio'))}); MASE {mase_text(backtest.get('mase'))}"
    )


def mase_text(mase: float | None) -> str:
    if mase is None:
        return "- (too little history to score)"
    if mase < 1:
        return f"{mase} (below 1: better than the seasonal-naive forecast)"
    return f"{mase} (not below 1: no better than the value a season earlier, on this history)"


@analytics_app.command("rules")
def analytics_rules(dataset_id: str) -> None:
    """Your department's rules on a dataset."""
    rules = client().alert_rules(dataset_id)
    if as_json(rules):
        return
    for rule in rules:
        console.print(f"{printable(rule['rule_id'])}  {printable(rule['name'])}  ({printable(rule['owner'])})")
        if rule.get("backtest"):
            print_backtest(rule["backtest"])


@analytics_app.command("alerts")
def analytics_alerts(
    dataset_id: str,
    wait: Annotated[int, typer.Option(help="Seconds to wait for a first alert (rules run just after a version lands)")] = 0,
) -> None:
    """Alerts your rules raised on a dataset."""
    table = DataTable("version", "window", "group", "value", "threshold", "forecast", "rule")
    sdk = client()
    alerts = sdk.alerts(dataset_id)
    deadline = time.monotonic() + wait
    while not alerts and time.monotonic() < deadline:
        time.sleep(1)
        alerts = sdk.alerts(dataset_id)
    alerts.sort(key=lambda alert: (alert["version"], alert.get("window_start") or "", json.dumps(alert["group"], sort_keys=True)))
    if as_json(alerts):
        return
    for alert in alerts:
        group = ", ".join(f"{k}={v}" for k, v in alert["group"].items())
        table.add_row(
            str(alert["version"]),
            alert.get("window_start") or "-",
            group,
            f"{alert['value']:.1f}" if alert.get("forecast") else f"{alert['value']:g}",
            f"{alert['threshold']:g}",
            forecast_text(alert.get("forecast")),
            alert["rule_id"],
        )
    console.print(table)


@analytics_app.command("subscribe")
def analytics_subscribe(
    dataset: Annotated[str | None, typer.Option(help="A dataset you may read")] = None,
    tag: Annotated[str | None, typer.Option(help="Every dataset with this tag (those you may read)")] = None,
    alerts: Annotated[bool, typer.Option(help="Alerts instead of new versions")] = False,
    webhook: Annotated[str | None, typer.Option(help="Also POST each notification here (signed)")] = None,
) -> None:
    """Be told of new versions (or alerts)."""
    show(client().subscribe(dataset, tag, ["alerts"] if alerts else ["versions"], webhook), "Subscription {subscription_id}")


@analytics_app.command("delete-rule")
def analytics_delete_rule(dataset_id: str, rule_id: str) -> None:
    """Delete one of your department's rules."""
    show(client().delete_alert_rule(dataset_id, rule_id))


@analytics_app.command("subscriptions")
def analytics_subscriptions() -> None:
    """Your department's subscriptions."""
    table = DataTable(Column("subscription", no_wrap=True, min_width=25), "to", "kinds", "webhook", "since")
    subscriptions = client().subscriptions()
    if as_json(subscriptions):
        return
    for item in subscriptions:
        subject = item.get("dataset_id") or f"tag {item.get('tag')}"
        table.add_row(
            item["subscription_id"], subject, ",".join(item["kinds"]), item.get("webhook_url") or "-", item["created_at"][:10]
        )
    console.print(table)


@analytics_app.command("unsubscribe")
def analytics_unsubscribe(subscription_id: str) -> None:
    """Stop a subscription."""
    show(client().unsubscribe(subscription_id))


@analytics_app.command("derive")
def analytics_derive(
    dataset_id: Annotated[str | None, typer.Argument(help="The new dataset's id (or give --definition)")] = None,
    title: Annotated[str | None, typer.Option()] = None,
    inputs: Annotated[list[str] | None, typer.Option("--input", help="An input dataset; repeat")] = None,
    sql: Annotated[
        Path | None, typer.Option(help="File with one SELECT over the inputs (named with _ for -)", exists=True)
    ] = None,
    engine: Annotated[str, typer.Option(help="duckdb, or athena for inputs too large for Lambda (AWS only)")] = "duckdb",
    result_column: Annotated[
        list[str] | None, typer.Option(help="athena: NAME:TYPE of a result column (string, integer, number, ...); repeat")
    ] = None,
    indicator: Annotated[
        Path | None, typer.Option(help="JSON file: show the result in the city picture (title, unit, value, ...)", exists=True)
    ] = None,
    definition: Annotated[
        Path | None,
        typer.Option(
            help="JSON file with the whole definition (dataset_id, title, inputs, sql, indicator, places, ...)", exists=True
        ),
    ] = None,
) -> None:
    """Define a derived dataset, rebuilt whenever an input gets a new version."""
    sdk = client()
    if definition is not None:
        if dataset_id or title or inputs or sql or indicator:
            raise typer.BadParameter("give either --definition or the definition's parts, not both", param_hint="--definition")
        derived = sdk.define_derived_dataset(**read_json(definition))
    else:
        if not (dataset_id and title and inputs and sql):
            raise typer.BadParameter("name the dataset and give --title, --input and --sql (or --definition FILE)")
        columns = dict(item.split(":", 1) for item in result_column or [])
        derived = sdk.define_derived_dataset(
            dataset_id,
            title,
            inputs,
            sql.read_text(),
            engine=engine,
            result_columns=columns or None,
            indicator=read_json(indicator) if indicator else None,
        )
    show(
        derived,
        "Derived dataset {dataset_id} defined: built within a minute from its inputs' latest versions, "
        "and again whenever an input gets a new version",
    )


@analytics_app.command("lineage")
def analytics_lineage(
    dataset_id: str,
    wait: Annotated[int, typer.Option(help="Seconds to wait for a first version (a derived dataset just defined)")] = 0,
) -> None:
    """Where a dataset came from and what is derived from it."""
    sdk = client()
    lineage = sdk.lineage(dataset_id)
    deadline = time.monotonic() + wait
    while not lineage.get("version") and time.monotonic() < deadline:
        time.sleep(1)
        lineage = sdk.lineage(dataset_id)
    if not as_json(lineage):
        print_lineage(lineage)


def print_lineage(lineage: dict[str, Any]) -> None:
    def edge(item: dict[str, Any]) -> str:
        return str(item["dataset_id"]) + (f"@{item['version']}" if item.get("version") else "")

    console.print(
        f"[bold]{printable(lineage['dataset_id'])}[/bold]" + (f" v{lineage['version']}" if lineage.get("version") else "")
    )
    console.print("  from: " + (", ".join(edge(i) for i in lineage["upstream"]) or "-"))
    console.print("  into: " + (", ".join(edge(i) for i in lineage["downstream"]) or "-"))


@app.command()
def city(
    wait: Annotated[int, typer.Option(help="Seconds to wait until every indicator is built (one just defined)")] = 0,
) -> None:
    """Your department's city picture: each indicator's city figure and districts, and its alerts."""
    sdk = client()
    picture = sdk.city_picture()
    deadline = time.monotonic() + wait
    while not all(i.get("version") for i in picture["indicators"]) and time.monotonic() < deadline:
        time.sleep(1)
        picture = sdk.city_picture()
    if as_json(picture):
        return
    print_city(picture, console)


def print_city(picture: dict[str, Any], out: Console) -> None:
    """The city picture as a table and a few lines (the CLI's `city`, the demo's last step)."""
    table = DataTable(
        "indicator", "at", "city", "limit", "worst districts", "from", title=f"{picture['department']}'s city picture"
    )

    def number(value: float) -> str:
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.1f}".removesuffix(".0")

    for indicator in picture["indicators"]:
        unit = f" {indicator['unit']}" if indicator["unit"] else ""
        ranked = sorted(indicator["districts"].items(), key=lambda item: item[1], reverse=indicator["better"] == "lower")
        worst = ", ".join(f"{name} {number(value)}" for name, value in ranked[:3]) or "-"
        sources = ", ".join(s["dataset_id"] + (f"@{s['version']}" if s.get("version") else "") for s in indicator["sources"])
        table.add_row(
            indicator["title"],
            (indicator.get("at") or "not built yet")[:16],
            "-" if indicator.get("city") is None else f"{number(indicator['city'])}{unit}",
            "-" if indicator.get("limit") is None else f"{number(indicator['limit'])}{unit}",
            worst,
            sources,
        )
    out.print(table)
    for rule in picture["alerts"]:
        districts = ", ".join(f"{printable(d)} {n}" for d, n in sorted(rule["districts"].items()))
        out.print(
            f"  alerts of '{printable(rule['name'])}' on {printable(rule['dataset_id'])}: {rule['open']} open, "
            f"{rule['raised']} raised" + (f" ({districts})" if districts else "")
        )
    boundaries = picture.get("boundaries")
    out.print(
        f"  map: {len(boundaries['districts'])} districts from {printable(boundaries['dataset_id'])}@{boundaries['version']}"
        if boundaries
        else "  map: no dataset tagged 'boundaries' you may read"
    )


@app.command()
def notifications(
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep waiting for new ones (Ctrl-C to stop)")] = False,
    limit: Annotated[int, typer.Option(min=1, max=100)] = 20,
) -> None:
    """Your department's notifications: access requests, decisions, grants, new versions, alerts."""
    sdk = client()

    def line(item: dict[str, Any]) -> None:
        console.print(
            f"[dim]{printable(item['at'][:19])}[/dim] [bold]{printable(item['kind'])}[/bold] {printable(item['message'])}"
        )

    page = sdk.notifications(limit=limit)
    for item in page["notifications"]:
        line(item)
    if follow:
        try:
            for item in sdk.follow_notifications(after=page.get("next_cursor")):
                line(item)
        except KeyboardInterrupt:
            return


@app.command()
def download(
    dataset_id: str,
    out: Annotated[Path, typer.Option(help="Folder to save the Parquet files in")] = Path("."),
    version: Annotated[int | None, typer.Option()] = None,
    grant: Annotated[str | None, typer.Option(help="Read under this grant")] = None,
    linkage: Annotated[str | None, typer.Option(help=LINKAGE_HELP)] = None,
) -> None:
    """Save a version you may read (whole, or your grant's view) as Parquet files, with a progress bar."""
    with transfer_progress() as progress:
        tasks: list[Any] = []  # the bar appears with the first bytes, not before an answer that refuses

        def advanced(done: int, total: int) -> None:
            if not tasks:
                tasks.append(progress.add_task(f"downloading {dataset_id}", total=total))
            progress.update(tasks[0], completed=done, total=total)

        files = client().download(dataset_id, out, version, grant, progress=advanced, linkage=linkage)
    for path in files:
        console.print(f"saved {path} ({path.stat().st_size} bytes)")


LINKAGE_HELP = "A linkage grant you hold: read your own dataset with the identifiers it links re-keyed for joining"


@app.command()
def read(
    dataset_id: str,
    version: Annotated[int | None, typer.Option()] = None,
    grant: Annotated[str | None, typer.Option(help="Read under this grant")] = None,
    out: Annotated[Path | None, typer.Option(help="Save as Parquet here instead of printing the first rows")] = None,
    linkage: Annotated[str | None, typer.Option(help=LINKAGE_HELP)] = None,
    decrypt: Annotated[list[str] | None, typer.Option(help="Your own dataset's encrypted column, in clear (audited)")] = None,
) -> None:
    """Read a version you may read (whole, or your grant's view)."""
    table = client().read_table(dataset_id, version, grant, linkage, decrypt)
    read = table.schema.metadata or {}
    under = read.get(b"cityshare.grant_id", b"").decode()
    what = f"v{read.get(b'cityshare.version', b'?').decode()}, " + (f"under grant {under}" if under else "whole")
    if out:
        import pyarrow.parquet as pq

        pq.write_table(table, out)
        console.print(f"{table.num_rows} rows ({what}), columns {table.column_names}, saved to {out}")
        return
    preview = DataTable(*table.column_names, title=f"{dataset_id} {what}: {table.num_rows} rows (first 10)")
    for row in table.slice(0, 10).to_pylist():
        preview.add_row(*(_shown(v) for v in row.values()))
    console.print(preview)


def _shown(value: Any) -> str:
    """A value as the preview prints it: a geometry (WKB, as GeoParquet stores it) as WKT, shortened."""
    if not isinstance(value, bytes):
        return str(value)
    try:
        import shapely

        text = str(shapely.from_wkb(value).wkt)
    except Exception:  # no shapely here, or bytes that are not WKB
        return f"<{len(value)} bytes>"
    return text if len(text) <= 80 else text[:77] + "..."


# -- audit
@audit_app.command("show")
def audit_show(department: Annotated[str | None, typer.Option()] = None) -> None:
    """A department's audit entries (yours by default)."""
    table = DataTable("seq", "at", "actor", "action", "resource", "decision", "reason")
    entries = list(client().iter_audit(department))
    if as_json(entries):
        return
    for entry in entries:
        reason = entry["reason"] or ",".join(entry["policies"])
        actor = f"{entry['actor_department']}/{entry['actor_principal']}"
        table.add_row(str(entry["seq"]), entry["at"][:19], actor, entry["action"], entry["resource"], entry["decision"], reason)
    console.print(table)


@audit_app.command("verify")
def audit_verify(
    department: Annotated[str | None, typer.Option()] = None,
    witness: Annotated[
        Path | None,
        typer.Option(help="File keeping the head verified last time (kept outside CityShare); checked, then moved on"),
    ] = None,
) -> None:
    """Recompute a chain's hashes and links and check the platform's seal; exits 1 if an entry was
    removed, altered or reordered, if sealed entries were cut off or rewritten, or (with --witness)
    if entries seen at the last verification were, or the seal key changed."""
    from cityshare.audit import load_witness, save_witness

    report = client().verify_audit(department, load_witness(witness) if witness else None)
    if report.intact:
        if witness:
            save_witness(witness, report)
        sealed = (
            f"; sealed up to {report.sealed_seq} at {printable(report.sealed_at)}" if report.sealed_seq else "; not sealed yet"
        )
        if witness:
            sealed += f"; head kept in {printable(witness)}"
        console.print(f"[green]Chain {report.chain}: {report.entries} entries, intact[/green] (head {report.head_seq}{sealed})")
        return
    for problem in report.problems:
        console.print(f"[red]{printable(problem)}[/red]")
    raise typer.Exit(1)


# -- local stack and demo
StateDirOption = Annotated[Path, typer.Option(help="Where the stack keeps its state, the admin's profile and key")]


@local_app.command("up")
def local_up(
    state_dir: StateDirOption = Path(".cityshare/local"),
    port: Annotated[
        int | None,
        typer.Option(help="Port of the API (default: the one this folder's stack used, 8787 at first; 0: any free port)"),
    ] = None,
    browser_origin: Annotated[
        str | None,
        typer.Option(help="A console served from another origin (as CloudFront serves it in AWS): the API answers CORS for it"),
    ] = None,
    in_memory: Annotated[bool, typer.Option(help="Keep nothing: the state is forgotten when the stack stops")] = False,
) -> None:
    """Start the embedded stack on 127.0.0.1; Ctrl-C stops it. Its state (datasets, grants, keys,
    audit chains, share tokens) is kept in the state folder and comes back on the next start."""
    from cityshare.local import LocalStackError, up

    try:
        up(state_dir, port, browser_origin, persistent=not in_memory)
    except LocalStackError as error:
        console.print(f"[red]{printable(error)}[/red]")
        raise typer.Exit(1) from None


@local_app.command("reset")
def local_reset(
    state_dir: StateDirOption = Path(".cityshare/local"),
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask")] = False,
) -> None:
    """Forget everything the embedded stack kept (the stack must be stopped)."""
    from cityshare.local import LocalStackError, reset

    def confirmed() -> bool:
        return yes or typer.confirm(f"Forget every dataset, grant, key and audit entry kept in {state_dir}?")

    try:
        if not reset(state_dir, confirmed):
            raise typer.Exit(1)
    except LocalStackError as error:
        console.print(f"[red]{printable(error)}[/red]")
        raise typer.Exit(1) from None
    console.print(f"{printable(state_dir)} reset: the next `cityshare local up` starts afresh")


@app.command()
def demo(state_dir: Annotated[Path, typer.Option()] = Path(".cityshare/demo")) -> None:
    """Start an embedded stack and run the city scenario against it."""
    from cityshare.demo import run_demo

    run_demo(state_dir, console)


# What usually causes an answer, for the person who got it (answers with a precise code explain themselves).
_HINTS = {
    "unauthenticated": "The signature was refused: a key the directory does not hold (a stack started afresh, a retired key), "
    "a clock more than a minute off, or a profile for another endpoint. The reason is in the platform's audit "
    "chain (`cityshare audit show --department platform`, as an admin).",
    "forbidden": "Your principal may not do this: `cityshare whoami` shows its roles (stewards decide grants, admins "
    "manage departments); or the dataset does not allow it (access is requested to public and internal datasets only: "
    "a confidential one's steward grants access directly).",
    "dataset_not_found": "It does not exist, or your department may not see it.",
    "not_found": "It does not exist, or your department may not see it.",
    "too_many_requests": "Too many calls: wait a moment and try again.",
}


def main() -> None:
    """The CLI, with what went wrong said in a sentence or two; `--debug` shows the traceback."""
    debug = "--debug" in sys.argv[1:]
    if debug:
        sys.argv.remove("--debug")
    try:
        app()
    except CityShareError as error:
        console.print(f"[red]{error.status} {printable(error.code)}[/red]: {printable(error.detail)}")
        for problem in error.problems():
            console.print(f"  - {printable(problem)}")
        if error.code in _HINTS:
            console.print(f"[dim]{printable(_HINTS[error.code])}[/dim]")
        sys.exit(1)
    except Exception as error:  # a user's mistake or a stopped stack: a message, not a traceback
        if debug:
            raise
        explained = _explained(error)
        console.print(f"[red]{printable(explained or f'{type(error).__name__}: {error}')}[/red]")
        if explained is None:  # not one of the usual mistakes: the details may matter
            console.print("[dim](run with --debug for the details)[/dim]")
        sys.exit(1)


def _explained(error: Exception) -> str | None:
    import requests

    if isinstance(error, requests.ConnectionError):
        target = str(getattr(error.request, "url", "") or "the endpoint").split("?", 1)[0]
        return f"Cannot reach {target}: is the stack running (`cityshare local up`), and is the profile's endpoint right?"
    if isinstance(error, requests.Timeout):
        return "The endpoint did not answer in time; try again (a retried call is done once)."
    if isinstance(error, UnsuitableFile):
        return str(error)
    if isinstance(error, JsonFileError):
        return str(error)
    if isinstance(error, json.JSONDecodeError):
        return f"Not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
    if isinstance(error, FileNotFoundError):
        return f"No such file: {error.filename}"
    if isinstance(error, PermissionError):
        return f"Not allowed to read or write {error.filename}"
    return None


# -- Delta Sharing


@share_app.command("profile")
def share_profile(
    department: Annotated[str, typer.Option(help="The department whose analysts will read")],
    out: Annotated[Path, typer.Option(help="Where to write the profile file (.share)")],
    days: Annotated[int, typer.Option(help="Days until the token expires (at most 365)")] = 90,
    label: Annotated[str, typer.Option(help="What it is for")] = "",
) -> None:
    """Issue a Delta Sharing profile: what your department's live grants give DEPARTMENT, readable
    with delta-sharing (pandas, Spark), Power BI or Tableau. Keep the file secret; revoke it any time."""
    issued = client().issue_share_profile(department, days, label)
    write_profile(issued, out)
    recipient = issued["recipient"]
    console.print(f"recipient {recipient['recipient_id']} for {department}, expires {recipient['expires_at']}: {out}")


@share_app.command("recipients")
def share_recipients() -> None:
    """The Delta Sharing recipients your department issued."""
    table = DataTable("recipient", "department", "status", "expires", "label")
    recipients = client().share_recipients()
    if as_json(recipients):
        return
    for recipient in recipients:
        table.add_row(
            recipient["recipient_id"], recipient["department"], recipient["status"], recipient["expires_at"], recipient["label"]
        )
    console.print(table)


@share_app.command("revoke")
def share_revoke(recipient_id: str) -> None:
    """Revoke a recipient: its profile stops working at once."""
    show(client().revoke_share_recipient(recipient_id))
