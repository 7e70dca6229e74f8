"""The demo's personal-data chapter: pseudonyms no other department can reverse, linkage only under
a grant with a legal basis, and a k-anonymous view of citizens' service requests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from cityshare.client import CityShareClient
from cityshare.generators import generate, plate_pool

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas" / "datasets"
Departments = dict[str, dict[str, CityShareClient]]


def personal_data(people: Departments, folder: Path, console: Console) -> dict[str, Any]:
    console.rule("4c. Personal data: own token spaces, linkage under a grant, k-anonymous views")
    results: dict[str, Any] = {}
    transport_steward, safety = people["transport"]["steward"], people["public-safety"]["member"]

    # Public safety may read transport's plate reads (pseudonymised) for its enforcement work.
    plain = transport_steward.grant(
        "plate-reads",
        "public-safety",
        "Count camera reads per lane for enforcement planning",
        "public-safety",
        legal_basis="legal-obligation",
        terms={"expires_at": "2027-06-30"},
    )
    reads = safety.read_table("plate-reads", grant_id=plain["grant_id"])
    # The attack the audit made: upload every candidate plate to a dataset of one's own, read back
    # one's own pseudonyms, and look them up in the other department's data.
    _create(safety, "candidate-plates", "plate-reads.json", "restricted", "Candidate plates (an attack)")
    candidates = folder / "candidate-plates.csv"
    with candidates.open("w") as out:
        out.write("camera_id,read_at,plate,confidence,lane\n")
        for plate in plate_pool(10_000):
            out.write(f"CAM-0001,2026-11-04T08:00:00Z,{plate},1.0,1\n")
    safety.wait_for_upload("candidate-plates", safety.upload_file("candidate-plates", candidates)["upload_id"])
    lookup = set(safety.read_table("candidate-plates").column("plate").to_pylist())
    recovered = len(set(reads.column("plate").to_pylist()) & lookup)
    console.print(
        f"  public safety uploads 10,000 candidate plates (every plate transport saw among them) and compares "
        f"its own pseudonyms with the {reads.num_rows} reads it may see -> [green]{recovered} recovered[/green]: "
        "each department's tokens are its own"
    )
    results["candidates_recovered"] = recovered

    # Linking is a decision of its own: a legal basis, an expiry, audited.
    _create(safety, "parking-fines", "parking-fines.json", "confidential", "Parking and traffic fines")
    linkage = transport_steward.grant(
        "plate-reads",
        "public-safety",
        "Match unpaid fines with camera reads to find the vehicles (Road Traffic Act, art. 5)",
        "public-safety",
        legal_basis="legal-obligation",
        terms={
            "columns": ["camera_id", "read_at", "plate"],
            "linked_columns": ["plate"],
            "linked_datasets": ["parking-fines"],
            "expires_at": "2027-03-31",
        },
    )
    # Only versions published while the linkage lives are re-keyed (the fines of the period it was granted for).
    fines_file = generate("parking-fines", 500, folder / "parking-fines.csv")
    safety.wait_for_upload("parking-fines", safety.upload_file("parking-fines", fines_file)["upload_id"])
    seen = safety.read_dataframe("plate-reads", grant_id=linkage["grant_id"])
    fines = safety.read_dataframe("parking-fines", linkage=linkage["grant_id"])
    joined = fines.merge(seen, on="plate")
    console.print(
        f"  transport's steward grants public safety a [bold]linkage[/bold] of plates (legal obligation, until "
        f"{linkage['terms']['expires_at'][:10]}, for its parking-fines only): both sides re-keyed into that grant's own space"
    )
    console.print(
        f"  public safety joins its {len(fines)} fines with the {len(seen)} reads in pandas -> "
        f"{joined['fine_id'].nunique()} fines matched to {len(joined)} camera reads"
    )
    results["fines_matched"] = int(joined["fine_id"].nunique())
    outside = safety.read_dataframe("plate-reads", grant_id=plain["grant_id"]).merge(fines, on="plate")
    console.print(f"  the same join through the plain grant -> {len(outside)} matches: linkage exists only under its grant")
    results["matched_without_linkage"] = len(outside)
    transport_steward.revoke_grant("plate-reads", linkage["grant_id"])
    console.print("  transport revokes the linkage; its re-keyed views are deleted with it")

    # Citizens' service requests, shared as differentially private groups with a privacy budget.
    city = people["city-management"]
    _create(city["member"], "service-requests", "service-requests.json", "confidential", "Citizen service requests")
    requests_file = generate("service-requests", 20_000, folder / "service-requests.csv")
    city["member"].wait_for_upload("service-requests", city["member"].upload_file("service-requests", requests_file)["upload_id"])
    granted = city["steward"].grant(
        "service-requests",
        "transport",
        "Where potholes and broken street lights cluster, district by district",
        "planning",
        legal_basis="public-task",
        terms={
            "aggregate": {
                "group_by": ["district", "category"],
                "measures": [{"aggregate": "count", "column": "request_id"}],
                "min_group_size": 5,
                "privacy": {"epsilon": 1.0, "budget": 3.0},
            },
        },
    )
    view = people["transport"]["member"].read_dataframe("service-requests")
    table = Table("district", "category", "requests (with noise)", title="Transport's view: differentially private groups")
    for row in view.sort_values("group_size", ascending=False).head(6).itertuples():
        table.add_row(row.district, row.category, str(row.group_size))
    console.print(table)
    spent = next(g for g in city["steward"].grants("service-requests") if g["grant_id"] == granted["grant_id"])["privacy_spent"]
    console.print(
        f"  {len(view)} groups released (each of at least 5 people, counted by their pseudonymised phone, never by rows); "
        f"counts carry calibrated noise (OpenDP); the release spent epsilon {spent:g} of transport's budget 3 on this "
        "dataset; reading it again costs nothing, a new version costs 1 more; "
        "no address, phone or exact position ever leaves city management"
    )
    results["aggregated_groups"] = len(view)
    results["smallest_group"] = int(view["group_size"].min()) if len(view) else 0
    results["privacy_spent"] = spent
    return results


def _create(member: CityShareClient, dataset_id: str, schema_file: str, classification: str, title: str) -> None:
    schema = json.loads((SCHEMAS / schema_file).read_text())
    member.create_dataset(dataset_id, title, classification, schema, description=schema["description"])
