"""The embedded SeaweedFS as a laptop install uses it: more buckets than gigabytes free."""

from __future__ import annotations

import shutil
from pathlib import Path

from bucketjobs.storage.embedded import EmbeddedSeaweed
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
