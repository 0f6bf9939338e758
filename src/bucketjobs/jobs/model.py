"""Job types and the forward-only state machine (pure rules, no I/O)."""

from __future__ import annotations

from enum import StrEnum

# Ids on the wire (jobs, users, components) are signed 32-bit integers, as in the reference.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


class JobType(StrEnum):
    BATCH_REPLICATE = "BATCH_REPLICATE"
    LIFECYCLE_UPDATE = "LIFECYCLE_UPDATE"
    METRIC_RECONCILIATION = "METRIC_RECONCILIATION"
    TRIGGER_RECONCILIATION = "TRIGGER_RECONCILIATION"


class JobState(StrEnum):
    EXAMINING = "EXAMINING"
    PROCESSING = "PROCESSING"
    EXECUTING = "EXECUTING"
    COMPLETE = "COMPLETE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({JobState.COMPLETE, JobState.FAILED, JobState.CANCELLED})
ACTIVE_STATES = (JobState.EXAMINING, JobState.PROCESSING, JobState.EXECUTING)
_RANK = {JobState.EXAMINING: 0, JobState.PROCESSING: 1, JobState.EXECUTING: 2}


def can_transition(current: JobState, target: JobState) -> bool:
    """States only move forward; terminal states never change."""
    if current.terminal:
        return False
    if target.terminal:
        return True
    return _RANK[target] > _RANK[current]


def states_before(target: JobState) -> list[JobState]:
    """The non-terminal states from which `target` is reachable (for conditional UPDATEs)."""
    return [s for s in ACTIVE_STATES if can_transition(s, target)]
