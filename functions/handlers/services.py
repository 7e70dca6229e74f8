"""The API function's services, built once per process (policies parsed once per cold start)."""

from __future__ import annotations

from functools import cache, partial
from typing import TYPE_CHECKING, Any

from functions.core.settings import get_settings
from functions.handlers.wiring import (
    access_control,
    athena,
    audit_log,
    audit_seals,
    department_keys,
    directory,
    key_service,
    scopes,
)

# Each service's module is imported where the service is first built: a function imports only
# what the routes it serves use (the analytics function never loads ingestion or recipients).
if TYPE_CHECKING:
    from functions.analytics.city import CityService
    from functions.analytics.service import AnalyticsService
    from functions.catalog.models import Dataset
    from functions.catalog.service import CatalogService
    from functions.governance.audit import AuditService
    from functions.governance.directory import DirectoryService
    from functions.ingest.uploads import UploadService
    from functions.notifications.service import InboxService
    from functions.sharing.models import Grant
    from functions.sharing.placement import BuiltView
    from functions.sharing.recipients import RecipientService
    from functions.sharing.repository import SharingRepository
    from functions.sharing.service import SharingService
    from functions.sharing.versions import VersionService


@cache
def catalog() -> CatalogService:
    from functions.catalog.repository import CatalogRepository
    from functions.catalog.service import CatalogService

    return CatalogService(CatalogRepository(get_settings().catalog_table), access_control(), grants=sharing_repository())


@cache
def directory_service() -> DirectoryService:
    from functions.core.events import EventPublisher
    from functions.governance.directory import DirectoryService

    return DirectoryService(directory(), access_control(), EventPublisher(get_settings().event_bus))


@cache
def audit() -> AuditService:
    from functions.audit.sealing import SealReader
    from functions.governance.audit import AuditService

    return AuditService(audit_log(), access_control(), SealReader(*audit_seals()))


@cache
def uploads() -> UploadService:
    from functions.ingest.repository import IngestRepository
    from functions.ingest.uploads import UploadService

    settings = get_settings()
    return UploadService(
        catalog(),
        IngestRepository(settings.catalog_table),
        settings.data_bucket,
        scopes(),
        department_keys(),
        stalled_after_seconds=settings.ingest_stalled_after_seconds,
    )


@cache
def versions() -> VersionService:
    from functions.ingest.repository import IngestRepository
    from functions.sharing.versions import VersionService

    return VersionService(catalog(), IngestRepository(get_settings().catalog_table), sharing_repository())


@cache
def sharing_repository() -> SharingRepository:
    from functions.sharing.repository import SharingRepository

    return SharingRepository(get_settings().sharing_table)


@cache
def _view_builder() -> Any:
    from functions.core.events import EventPublisher
    from functions.sharing.budget import PrivacyBudget
    from functions.sharing.views import ViewBuilder  # pyarrow is imported only when a restricted view is built

    budget = PrivacyBudget(sharing_repository(), audit_log(), EventPublisher(get_settings().event_bus))
    return ViewBuilder(get_settings(), key_service(), scopes(), department_keys(), budget.spend)


def build_view(dataset: Dataset, version: int, files: list[str], grant: Grant, now: str, linked: bool) -> BuiltView:
    result: BuiltView = _view_builder()(dataset, version, files, grant, now, linked)
    return result


@cache
def sharing() -> SharingService:
    from functions.core.events import EventPublisher
    from functions.ingest.repository import IngestRepository
    from functions.sharing.service import SharingService

    settings = get_settings()
    return SharingService(
        catalog(),
        sharing_repository(),
        IngestRepository(settings.catalog_table),
        settings.data_bucket,
        build_view,
        access_control(),
        EventPublisher(settings.event_bus),
        scopes(),
        k_floor=settings.min_group_size_floor,
        directory=directory(),
    )


@cache
def recipients() -> RecipientService:
    from functions.sharing.recipients import RecipientRepository, RecipientService

    settings = get_settings()
    return RecipientService(
        RecipientRepository(settings.sharing_table),
        access_control(),
        lambda department: directory().get_department(department) is not None,
    )


@cache
def inbox() -> InboxService:
    from functions.notifications.repository import NotificationRepository
    from functions.notifications.service import InboxService

    return InboxService(NotificationRepository(get_settings().notifications_table), access_control())


@cache
def analytics() -> AnalyticsService:
    from functions.analytics.files import local_copies
    from functions.analytics.repository import AnalyticsRepository
    from functions.analytics.service import AnalyticsService
    from functions.ingest.repository import IngestRepository

    settings = get_settings()
    return AnalyticsService(
        catalog(),
        AnalyticsRepository(settings.analytics_table),
        IngestRepository(settings.catalog_table),
        access_control(),
        sharing_repository(),
        settings.allow_http_webhooks,
        athena=athena(),
        history=partial(local_copies, scopes(), settings.data_bucket),
        query_catalog=settings.query_catalog,
    )


@cache
def city() -> CityService:
    from functions.analytics.city import CityService, CuratedFiles
    from functions.analytics.repository import AnalyticsRepository
    from functions.ingest.repository import IngestRepository

    settings = get_settings()
    return CityService(
        catalog(),
        AnalyticsRepository(settings.analytics_table),
        IngestRepository(settings.catalog_table),
        sharing_repository(),
        CuratedFiles(scopes(), settings.data_bucket),
    )
