"""Composition root: builds each domain service once per process from the settings.

Each builder is cached so a warm Lambda reuses its clients and its parsed policies; nothing here
runs at import time, so importing a handler stays cheap.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from functions.audit.chain import AuditLog
from functions.core.idempotency import IdempotencyStore

if TYPE_CHECKING:
    from functions.analytics.athena import AthenaRunner
    from functions.audit.sealing import AuditArchive, SealKey
    from functions.policy.access import AccessControl
    from functions.sharing.sessions import SessionBroker
from functions.core.scoped import Broker, Credentials, DepartmentScopes, Serving
from functions.core.settings import get_settings
from functions.identity.directory import DepartmentKeys, DirectoryRepository
from functions.privacy.keys import KeyService


@cache
def directory() -> DirectoryRepository:
    return DirectoryRepository(get_settings().directory_table)


@cache
def audit_log() -> AuditLog:
    return AuditLog(get_settings().audit_table)


@cache
def audit_seals() -> tuple[AuditArchive, SealKey]:
    from functions.audit.sealing import AuditArchive, SealKey

    settings = get_settings()
    return AuditArchive(settings.audit_archive_bucket), SealKey(settings.audit_seal_key)


@cache
def athena() -> AthenaRunner | None:
    """Athena as the query role (None where there is none: the embedded stack)."""
    settings = get_settings()
    if not (settings.query_workgroup and settings.query_catalog):
        return None
    from functions.analytics.athena import AthenaRunner

    return AthenaRunner(
        settings.query_workgroup, settings.query_catalog, settings.data_bucket, settings.query_role, settings.platform_key
    )


@cache
def data_sessions() -> DepartmentScopes:
    """Sessions of the data role this function's own role assumes (background work; the broker's)."""
    settings = get_settings()
    return DepartmentScopes(settings.data_role, settings.stage)


@cache
def session_broker() -> SessionBroker:
    """The broker deciding which data sessions a verified request may have (functions/sharing/sessions.py)."""
    from functions.catalog.repository import CatalogRepository
    from functions.catalog.service import CatalogService
    from functions.identity.nonces import NonceStore
    from functions.policy.actors import Actors
    from functions.sharing.recipients import RecipientRepository
    from functions.sharing.repository import SharingRepository
    from functions.sharing.sessions import SessionBroker

    settings = get_settings()
    catalog = CatalogRepository(settings.catalog_table)
    policies = CatalogService(catalog, access_control(), grants=SharingRepository(settings.sharing_table))
    return SessionBroker(
        NonceStore(settings.nonces_table),
        catalog,
        policies,
        Actors(directory()),
        RecipientRepository(settings.sharing_table),
        directory(),
        data_sessions().credentials,
    )


@cache
def scopes() -> DepartmentScopes:
    """Sessions acting for one department's data (functions.core.scoped): while serving a request, the
    broker's (the sessions function in AWS, in this process on the embedded stack); otherwise the
    function's own assumption of the data role."""
    settings = get_settings()
    broker: Broker
    if settings.session_broker:
        from functions.sharing.sessions import BrokerFunction

        broker = BrokerFunction(settings.session_broker)
    else:

        def broker(request: Serving, department: str, dataset: str | None) -> Credentials | None:
            return session_broker().vend(request, department, dataset)

    return DepartmentScopes(settings.data_role, settings.stage, broker=broker)


@cache
def department_keys() -> DepartmentKeys:
    return DepartmentKeys(directory())


@cache
def key_service() -> KeyService:
    settings = get_settings()
    return KeyService(settings.catalog_table, settings.platform_key, scopes(), department_keys())


@cache
def idempotency_store() -> IdempotencyStore:
    return IdempotencyStore(get_settings().idempotency_table)


@cache
def access_control() -> AccessControl:
    """The one door to access decisions: the policies, parsed once per process, and the audit log."""
    from functions.policy.access import AccessControl
    from functions.policy.engine import PolicyEngine

    return AccessControl(PolicyEngine(get_settings().policies_dir), audit_log())
