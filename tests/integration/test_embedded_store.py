"""The embedded SeaweedFS as a laptop install uses it: more buckets than gigabytes free, ports
taken by others."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import httpx
import pytest

from bucketjobs.storage.embedded import EmbeddedSeaweed, EmbeddedStoreError
from tests.support.s3 import s3_client


async def test_more_buckets_than_free_gigabytes_all_take_writes(tmp_path: Path):
    # weed's own default allowed one volume per free GB: the bucket after that failed.
    count = min(1500, shutil.disk_usage(tmp_path).free // 2**30 + 20)
    seaweed = EmbeddedSeaweed(tmp_path / "weed")
    creds = seaweed.start()
    try:
        async with s3_client(seaweed.endpoint, creds.access_key, creds.secret_key) as s3:
            for n in range(count):
                await s3.create_bucket(Bucket=f"many-{n}")
                await s3.put_object(Bucket=f"many-{n}", Key="k", Body=b"v")
            last = await s3.get_object(Bucket=f"many-{count - 1}", Key="k")
            assert await last["Body"].read() == b"v"
    finally:
        seaweed.stop()


def test_a_chosen_s3_port_taken_before_start_is_chosen_again(tmp_path: Path):
    seaweed = EmbeddedSeaweed(tmp_path / "weed")
    first = seaweed.s3_port
    with socket.socket() as thief:  # CI lost a run to this: 5 retries on the same port
        thief.bind(("127.0.0.1", first))
        thief.listen()
        try:
            seaweed.start()
            assert seaweed.s3_port != first
            assert httpx.get(seaweed.endpoint, timeout=5).status_code == 403  # S3 answers
        finally:
            seaweed.stop()


def test_a_named_s3_port_in_use_fails_at_once_naming_it(tmp_path: Path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        seaweed = EmbeddedSeaweed(tmp_path / "weed", port)
        started = time.monotonic()
        try:
            with pytest.raises(EmbeddedStoreError, match=f"port {port} named"):
                seaweed.start()
        finally:
            seaweed.stop()
        assert time.monotonic() - started < 10  # one attempt, not five
