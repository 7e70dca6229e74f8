"""The API function's services, built once per process (policies parsed once per cold start)."""

from __future__ import annotations

from functools import cache

from functions.audit.service import AuditService
from functions.catalog.repository import CatalogRepository
from functions.catalog.service import CatalogService
from functions.core.settings import get_settings
from functions.handlers.wiring import audit_log, directory
from functions.identity.service import DirectoryService
from functions.ingest.repository import IngestRepository
from functions.ingest.uploads import UploadService
from functions.policy.access import AccessControl
from functions.policy.engine import PolicyEngine


@cache
def access_control() -> AccessControl:
    return AccessControl(PolicyEngine(get_settings().policies_dir), audit_log())


@cache
def catalog() -> CatalogService:
    return CatalogService(CatalogRepository(get_settings().catalog_table), access_control())


@cache
def directory_service() -> DirectoryService:
    return DirectoryService(directory(), access_control())


@cache
def audit() -> AuditService:
    return AuditService(audit_log(), access_control())


@cache
def uploads() -> UploadService:
    settings = get_settings()
    return UploadService(catalog(), IngestRepository(settings.catalog_table), settings.data_bucket)
