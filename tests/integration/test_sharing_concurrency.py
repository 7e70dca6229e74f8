"""Two stewards deciding at once, against moto with DynamoDB's atomic conditional writes: the end
state is always one that one of them chose, never a mix (an approval without its grant, a denial
with a grant, two grants from one request, a grant revoked twice)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from functions.core.errors import Conflict
from functions.sharing.models import Approval, Denial, GrantTerms
from functions.sharing.service import SharingService
from tests.integration.conftest import STEWARDS, ask

ROUNDS = 12


def at_once(*actions: Callable[[], Any]) -> list[Any]:
    """Run the actions in threads released together; each result is its return value or its exception."""
    barrier = threading.Barrier(len(actions))
    results: list[Any] = [None] * len(actions)

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = actions[index]()
        except Exception as error:
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def grants_from(sharing: SharingService, access_request_id: str) -> list[Any]:
    return [g for g in sharing.grants(STEWARDS[0], "traffic-flow") if g.access_request == access_request_id]


def test_approve_against_deny_ends_in_one_stewards_decision(sharing: SharingService) -> None:
    outcomes = set()
    for _ in range(ROUNDS):
        asked = ask(sharing)
        approved, denied = at_once(
            lambda asked=asked: sharing.approve(STEWARDS[0], "traffic-flow", asked, Approval()),
            lambda asked=asked: sharing.deny(STEWARDS[1], "traffic-flow", asked, Denial(reason="Not for this purpose")),
        )
        assert [isinstance(r, Conflict) for r in (approved, denied)].count(True) == 1
        request = sharing._sharing.get_request("traffic-flow", asked)
        grants = grants_from(sharing, asked)
        if isinstance(denied, Conflict):
            assert request.status == "approved" and request.decision and request.decision.by == "steward-a"
            assert [g.grant_id for g in grants] == [request.decision.grant_id]
        else:
            assert request.status == "denied" and request.decision and request.decision.by == "steward-b"
            assert grants == []
        outcomes.add(request.status)
    assert outcomes  # the rounds ran; which steward wins is up to the race


def test_two_different_approvals_leave_one_grant_with_one_stewards_terms(sharing: SharingService) -> None:
    narrow_a = GrantTerms(columns=["segment_id", "avg_speed_kmh"])
    narrow_b = GrantTerms(columns=["district"])
    for _ in range(ROUNDS):
        asked = ask(sharing)
        first, second = at_once(
            lambda asked=asked: sharing.approve(STEWARDS[0], "traffic-flow", asked, Approval(terms=narrow_a)),
            lambda asked=asked: sharing.approve(STEWARDS[1], "traffic-flow", asked, Approval(terms=narrow_b)),
        )
        winners = [r for r in (first, second) if not isinstance(r, Exception)]
        assert len(winners) == 1 and all(isinstance(r, Conflict) for r in (first, second) if r not in winners)
        (grant,) = grants_from(sharing, asked)
        assert grant.grant_id == winners[0].grant_id and grant.terms.columns == winners[0].terms.columns
        assert grant.created_by == sharing._sharing.get_request("traffic-flow", asked).decision.by  # type: ignore[union-attr]


def test_two_revocations_at_once_revoke_once(sharing: SharingService) -> None:
    for _ in range(ROUNDS):
        grant = sharing.approve(STEWARDS[0], "traffic-flow", ask(sharing), Approval())
        results = at_once(
            lambda grant=grant: sharing.revoke(STEWARDS[0], "traffic-flow", grant.grant_id),
            lambda grant=grant: sharing.revoke(STEWARDS[1], "traffic-flow", grant.grant_id),
        )
        revoked = [r for r in results if not isinstance(r, Exception)]
        assert len(revoked) == 1 and sum(isinstance(r, Conflict) for r in results) == 1, results
        (stored,) = [g for g in sharing.grants(STEWARDS[0], "traffic-flow") if g.grant_id == grant.grant_id]
        assert stored.status == "revoked" and stored.revoked_by == revoked[0].revoked_by
