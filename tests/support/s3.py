"""Seeding buckets in the real store, fast (many PUTs in flight)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session


def s3_client(endpoint: str, access: str, secret: str) -> Any:
    return get_session().create_client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        config=AioConfig(max_pool_connections=64, s3={"addressing_style": "path"}),
    )


async def put_many(
    client: Any, bucket: str, items: Iterable[tuple[str, bytes]], concurrency: int = 48
) -> None:
    """PUT every (key, body), `concurrency` at a time, without building a task per object."""
    iterator = iter(items)

    async def lane() -> None:
        for key, body in iterator:
            await client.put_object(Bucket=bucket, Key=key, Body=body)

    await asyncio.gather(*(lane() for _ in range(concurrency)))
