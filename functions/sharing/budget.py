"""Privacy budgets: every differentially private release (a version's view of an aggregated grant on
data about people, built once and kept) spends its epsilon from what the grantee department may
spend on the dataset — one ledger per (dataset, grantee department), whatever grant a release is
made under, so two grants or two versions cannot be differenced beyond it. A release that would go
over is refused (409 privacy_budget_exhausted), the owner's stewards are told, and every spend is
in the owner's audit chain."""

from __future__ import annotations

from functions.audit.chain import AuditEvent, AuditLog
from functions.catalog.models import Dataset
from functions.core.clock import utc_now
from functions.core.errors import PrivacyBudgetExhausted
from functions.core.events import EventPublisher
from functions.core.events import PrivacyBudgetExhausted as BudgetEvent
from functions.core.observability import logger
from functions.sharing.models import Grant
from functions.sharing.repository import SharingRepository


class PrivacyBudget:
    def __init__(self, ledger: SharingRepository, audit: AuditLog, events: EventPublisher) -> None:
        self._ledger = ledger
        self._audit = audit
        self._events = events

    def spend(self, dataset: Dataset, grant: Grant, version: int) -> None:
        privacy = grant.terms.aggregate.privacy if grant.terms.aggregate else None
        if privacy is None:
            return
        grantee = grant.grantee_department
        spent = self._ledger.spend_privacy(dataset.dataset_id, grantee, privacy.epsilon, privacy.budget)
        already = spent if spent is not None else self._ledger.privacy_spent(dataset.dataset_id, grantee)
        details: dict[str, object] = {
            "grant": grant.grant_id,
            "version": version,
            "epsilon": privacy.epsilon,
            "budget": privacy.budget,
            "spent": already,
        }
        self._audit.append(
            dataset.owner,
            AuditEvent(
                actor_department=grant.grantee_department,
                actor_principal=grant.grantee_principal or "*",
                action="SpendPrivacyBudget",
                resource=f"Dataset::{dataset.dataset_id}",
                decision="deny" if spent is None else "allow",
                reason="privacy_budget_exhausted" if spent is None else "",
                details=details,
            ),
        )
        if spent is not None:
            return
        try:
            self._events.publish(
                BudgetEvent(
                    dataset_id=dataset.dataset_id,
                    owner=dataset.owner,
                    grantee_department=grant.grantee_department,
                    grant_id=grant.grant_id,
                    spent=already,
                    budget=privacy.budget,
                    at=utc_now(),
                )
            )
        except Exception:
            logger.warning("the stewards were not told of a spent budget", extra={"dataset": dataset.dataset_id})
        raise PrivacyBudgetExhausted(
            f"{grant.grantee_department} has spent {already:g} of the {privacy.budget:g} it may spend on "
            f"{dataset.dataset_id}'s private releases; a new release needs {privacy.epsilon:g} (the owner's stewards are told)"
        )
