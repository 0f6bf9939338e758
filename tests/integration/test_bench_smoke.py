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


def test_memory_bench_50k_stays_bounded():
    """Issue 3's CI form of the 1,000,000-object memory check: every process ≤ 250 MB."""
    out = subprocess.run(
        [sys.executable, str(BENCH / "memory.py"), "--objects", "50000", "--limit-mb", "250"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "METRIC_RECONCILIATION" in out.stdout and "BATCH_REPLICATE" in out.stdout
    assert out.stdout.rstrip().endswith("bench ok")
