"""Composition root: builds each domain service once per process from the settings.

Each builder is cached so a warm Lambda reuses its clients and its parsed policies; nothing here
runs at import time, so importing a handler stays cheap.
"""

from __future__ import annotations

from functools import cache

from functions.audit.chain import AuditLog
from functions.core.settings import get_settings
from functions.identity.directory import DirectoryRepository


@cache
def directory() -> DirectoryRepository:
    return DirectoryRepository(get_settings().directory_table)


@cache
def audit_log() -> AuditLog:
    return AuditLog(get_settings().audit_table)
