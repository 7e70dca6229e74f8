"""Where each department's objects live in the data bucket: under a prefix that names the owning
department right after the kind of object, so IAM can bind a department's credentials to its own
objects (`<root>/${aws:PrincipalTag/cityshare:department}/*`, infra/spec.py DEPARTMENT_ROOTS).

    landing/<owner>/<dataset>/<upload>/<file>                      uploads as sent
    curated/<owner>/<dataset>/<upload>/<attempt>/part-00000.parquet protected Parquet of a version
    vault/<owner>/<dataset>/<upload>/<attempt>/<column>.vault       sealed (token, value) pairs
    quarantine/<owner>/<dataset>/<upload>/<attempt>/...             rejected rows (protected) and reports
    views/shared/<owner>/<dataset>/v<n>/<terms>/...       views any grant with those terms shares
    views/grant/<owner>/<grantee>/<grant>/...             views holding one grant's tokens
    views/clear/<owner>/<grantee>/<grant>/...             views holding decrypted values
    views/linked/<grantee>/<owner>/<grant>/...            a grantee's own data re-keyed for a linkage

Each processing attempt of an upload writes under its own `<attempt>` folder (the claim it holds on
the upload), so a duplicate delivery never overwrites or deletes the files another attempt
published; attempts that published nothing are removed by their own failure path or, if they
died, by the orphan sweep (functions/ingest/settle.py). Versions published before attempts had
folders keep their files at `<upload>/part-00000.parquet`.
"""

from __future__ import annotations

DEPARTMENT_ROOTS = ("landing", "curated", "vault", "quarantine", "views/shared", "views/grant", "views/clear", "views/linked")


def upload_prefix(owner: str, dataset_id: str, upload_id: str) -> str:
    return f"{owner}/{dataset_id}/{upload_id}"


def landing_key(owner: str, dataset_id: str, upload_id: str, filename: str) -> str:
    return f"landing/{upload_prefix(owner, dataset_id, upload_id)}/{filename}"


ATTEMPT_ROOTS = ("curated", "vault", "quarantine")  # what an ingest attempt writes


def attempt_prefix(root: str, owner: str, dataset_id: str, upload_id: str, attempt: str) -> str:
    return f"{root}/{upload_prefix(owner, dataset_id, upload_id)}/{attempt}/"


def curated_key(owner: str, dataset_id: str, upload_id: str, attempt: str) -> str:
    return attempt_prefix("curated", owner, dataset_id, upload_id, attempt) + "part-00000.parquet"


def vault_key(curated: str, column: str) -> str:
    """The sealed vault of one pseudonymised column beside a curated file (token -> value of its long
    values, sealed with the dataset's data key; opened only to re-key the column under a linkage grant)."""
    folder = curated.removeprefix("curated/").rsplit("/", 1)[0]
    return f"vault/{folder}/{column}.vault"


def quarantine_key(owner: str, dataset_id: str, upload_id: str, attempt: str, name: str) -> str:
    return attempt_prefix("quarantine", owner, dataset_id, upload_id, attempt) + name


def attempt_of(key: str) -> tuple[str, str, str, str] | None:
    """(owner, dataset, upload, attempt) of an object an ingest attempt wrote; None for anything else
    (versions from before attempt folders included)."""
    parts = key.split("/")
    if len(parts) == 6 and parts[0] in ATTEMPT_ROOTS and parts[4].startswith("a"):
        return parts[1], parts[2], parts[3], parts[4]
    return None


def dataset_of(key: str) -> str | None:
    """The dataset a data object is of, where its key says (versions' files and shared views)."""
    for root in ("landing", "curated", "vault", "quarantine", "views/shared"):
        if key.startswith(root + "/"):
            rest = key[len(root) + 1 :].split("/", 2)
            return rest[1] if len(rest) == 3 and rest[1] else None
    return None


def owner_of(key: str) -> str | None:
    """The department a data object belongs to, from its key (None for anything else)."""
    for root in DEPARTMENT_ROOTS:
        if key.startswith(root + "/"):
            rest = key[len(root) + 1 :].split("/", 1)
            return rest[0] if len(rest) == 2 and rest[0] else None
    return None
