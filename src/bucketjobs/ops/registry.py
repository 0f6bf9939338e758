"""Which operation runs which job type. A type without an operation cannot be created."""

from __future__ import annotations

from bucketjobs.jobs.model import JobType
from bucketjobs.ops.base import Operation
from bucketjobs.ops.lifecycle import LifecycleUpdate
from bucketjobs.ops.metrics import MetricReconciliation
from bucketjobs.ops.replicate import Replicate
from bucketjobs.ops.triggers import TriggerReconciliation

OPERATIONS: dict[JobType, Operation] = {
    JobType.METRIC_RECONCILIATION: MetricReconciliation(),
    JobType.BATCH_REPLICATE: Replicate(),
    JobType.LIFECYCLE_UPDATE: LifecycleUpdate(),
    JobType.TRIGGER_RECONCILIATION: TriggerReconciliation(),
}
