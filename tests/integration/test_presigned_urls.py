"""What a read hands out: presigned GETs bound to one object of the dataset read, short-lived.

moto serves presigned URLs without checking them, so the URL itself is checked here: its SigV4
signature is recomputed (independently of botocore) over the path it names, and the same URL
pointed at another dataset's object no longer matches its signature, which S3 then refuses.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from urllib.parse import parse_qsl, quote, urlsplit

import pytest

from functions.catalog.models import Dataset
from functions.catalog.repository import CatalogRepository
from functions.core.settings import Settings
from functions.handlers import services, wiring
from functions.identity.models import Caller
from functions.sharing.service import SharingService
from tests.datasets import SMALL_SCHEMA


def signature_matches(url: str, secret: str) -> bool:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    given = query.pop("X-Amz-Signature")
    canonical_query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items()))
    canonical = "\n".join(["GET", parts.path, canonical_query, f"host:{parts.netloc}", "", "host", "UNSIGNED-PAYLOAD"])
    _, date, region, service, _ = query["X-Amz-Credential"].split("/")
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", query["X-Amz-Date"], scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = f"AWS4{secret}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.compare_digest(hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest(), given)


@pytest.fixture
def sharing(settings: Settings) -> Iterator[SharingService]:
    builders = [
        services.access_control,
        services.catalog,
        services.sharing_repository,
        services.sharing,
        wiring.audit_log,
        wiring.scopes,
    ]
    for builder in builders:
        builder.cache_clear()
    for dataset_id in ("air-quality", "hospital-beds"):
        CatalogRepository(settings.catalog_table).create(
            Dataset.model_validate(
                {
                    "dataset_id": dataset_id,
                    "title": dataset_id,
                    "classification": "public",
                    "schema": SMALL_SCHEMA,
                    "owner": "environment",
                    "created_at": "t",
                    "updated_at": "t",
                    "created_by": "p",
                    "latest_version": 1,
                    "latest_files": [f"curated/environment/{dataset_id}/u{'0' * 32}/part-00000.parquet"],
                    "latest_bytes": 100,
                }
            )
        )
    yield services.sharing()
    for builder in builders:
        builder.cache_clear()


def test_a_read_url_names_one_object_of_that_dataset_and_expires_in_minutes(sharing: SharingService) -> None:
    reader = Caller(department_id="health", principal_id="analyst", roles=("member",), jti="j" * 16, body_sha256="x" * 43)
    access = sharing.read(reader, "air-quality", None, None)
    (file,) = access.files
    parts = urlsplit(file.url)
    query = dict(parse_qsl(parts.query))
    assert parts.path.endswith("/curated/environment/air-quality/u" + "0" * 32 + "/part-00000.parquet")
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256" and query["X-Amz-SignedHeaders"] == "host"
    assert int(query["X-Amz-Expires"]) <= 300
    # Signed by a session of the data role acting for the owner (environment), not by the function.
    session = wiring.scopes().s3("environment")._request_signer._credentials
    assert query["X-Amz-Credential"].startswith(session.access_key) and "X-Amz-Security-Token" in query
    assert signature_matches(file.url, session.secret_key)
    other = file.url.replace("/curated/environment/air-quality/", "/curated/environment/hospital-beds/")
    assert not signature_matches(other, session.secret_key)  # the same signature does not open another dataset's object
    widened = file.url.replace("/part-00000.parquet", "/")
    assert not signature_matches(widened, session.secret_key)
