"""Fault injection at the AWS client, for every path that writes (tests/faults/harness.py)."""

from tests.faults.harness import FAULTS, Call, FaultInjector, FunctionStopped, plan

__all__ = ["FAULTS", "Call", "FaultInjector", "FunctionStopped", "plan"]
