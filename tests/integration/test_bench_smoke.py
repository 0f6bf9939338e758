"""Tiny runs of every benchmark, so bench/ cannot rot. Timing is not asserted here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_metric_reconciliation_bench_smoke():
    out = subprocess.run(
        [
            sys.executable,
            str(BENCH / "metrics_reconciliation.py"),
            "--sizes",
            "1500",
            "--repeat",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "bucketjobs METRIC_RECONCILIATION" in out.stdout
    assert "obstore list" in out.stdout and "s5cmd ls" in out.stdout
    assert out.stdout.rstrip().endswith("bench ok")


def test_replicate_bench_smoke():
    out = subprocess.run(
        [sys.executable, str(BENCH / "replicate.py"), "--objects", "300", "--repeat", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for row in ("bucketjobs BATCH_REPLICATE", "s5cmd cp", "rclone copy", "rclone → other"):
        assert row in out.stdout
    assert out.stdout.rstrip().endswith("bench ok")
