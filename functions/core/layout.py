"""Where each department's objects live in the data bucket: under a prefix that names the owning
department right after the kind of object, so IAM can bind a department's credentials to its own
objects (`<root>/${aws:PrincipalTag/cityshare:department}/*`, infra/spec.py DEPARTMENT_ROOTS).

    landing/<owner>/<dataset>/<upload>/<file>            uploads as sent
    curated/<owner>/<dataset>/<upload>/part-00000.parquet protected Parquet of a version
    vault/<owner>/<dataset>/<upload>/<column>.vault       sealed (token, value) pairs
    quarantine/<owner>/<dataset>/<upload>/...             rejected rows (protected) and reports
    views/shared/<owner>/<dataset>/v<n>/<terms>/...       views any grant with those terms shares
    views/grant/<owner>/<grantee>/<grant>/...             views holding one grant's tokens
    views/clear/<owner>/<grantee>/<grant>/...             views holding decrypted values
    views/linked/<grantee>/<owner>/<grant>/...            a grantee's own data re-keyed for a linkage
"""

from __future__ import annotations

DEPARTMENT_ROOTS = ("landing", "curated", "vault", "quarantine", "views/shared", "views/grant", "views/clear", "views/linked")


def upload_prefix(owner: str, dataset_id: str, upload_id: str) -> str:
    return f"{owner}/{dataset_id}/{upload_id}"


def landing_key(owner: str, dataset_id: str, upload_id: str, filename: str) -> str:
    return f"landing/{upload_prefix(owner, dataset_id, upload_id)}/{filename}"


def curated_key(owner: str, dataset_id: str, upload_id: str) -> str:
    return f"curated/{upload_prefix(owner, dataset_id, upload_id)}/part-00000.parquet"


def vault_key(owner: str, dataset_id: str, upload_id: str, column: str) -> str:
    """A version's sealed vault of one pseudonymised column (token -> value of its long values,
    sealed with the dataset's data key; opened only to re-key the column under a linkage grant)."""
    return f"vault/{upload_prefix(owner, dataset_id, upload_id)}/{column}.vault"


def quarantine_key(owner: str, dataset_id: str, upload_id: str, name: str) -> str:
    return f"quarantine/{upload_prefix(owner, dataset_id, upload_id)}/{name}"


def upload_of(curated: str) -> str:
    """The upload id in a curated file's key."""
    return curated.split("/")[3]


def owner_of(key: str) -> str | None:
    """The department a data object belongs to, from its key (None for anything else)."""
    for root in DEPARTMENT_ROOTS:
        if key.startswith(root + "/"):
            rest = key[len(root) + 1 :].split("/", 1)
            return rest[0] if len(rest) == 2 and rest[0] else None
    return None
