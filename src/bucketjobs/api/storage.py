"""The API's view of the primary store: which component it is, and whether a bucket exists."""

from __future__ import annotations

import asyncio
from typing import Any

from botocore.exceptions import ClientError
from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncEngine

from bucketjobs.api.errors import ApiError
from bucketjobs.storage.bucket_config import replication_destination
from bucketjobs.storage.components import Component, load_primary
from bucketjobs.storage.retry import StorageError, with_retries
from bucketjobs.storage.s3 import open_client


class PrimaryStore:
    def __init__(self, db: AsyncEngine, fernet: Fernet) -> None:
        self.db = db
        self.fernet = fernet
        self._component: Component | None = None
        self._client: Any = None
        self._client_cm: Any = None
        self._closing: set[asyncio.Task[Any]] = set()  # old clients being closed

    async def component(self) -> Component:
        if self._component is None:
            async with self.db.connect() as conn:
                self._component = await load_primary(conn, self.fernet)
            if self._component is None:
                raise ApiError(503, "no primary storage component is configured")
        return self._component

    async def primary_id(self) -> int:
        return (await self.component()).id

    async def client(self) -> Any:
        if self._client is None:
            self._client_cm = open_client(await self.component(), 16)
            self._client = await self._client_cm.__aenter__()
        return self._client

    async def bucket_exists(self, bucket: str) -> bool:
        client = await self.client()
        try:
            await with_retries(lambda: client.head_bucket(Bucket=bucket), attempts=3)
        except StorageError as exc:
            if exc.http_status == 404 or exc.code in ("404", "NoSuchBucket", "NotFound"):
                return False
            if exc.http_status == 403:
                raise ApiError(400, f"access to bucket {bucket!r} is denied", exc.code) from None
            raise ApiError(503, "the primary storage is unavailable", exc.code) from None
        return True

    async def replication_destination(self, bucket: str) -> str | None:
        try:
            return await replication_destination(await self.client(), bucket)
        except StorageError as exc:
            raise ApiError(503, "the primary storage is unavailable", exc.code) from None

    async def ping(self) -> bool:
        client = await self.client()
        try:
            await with_retries(lambda: client.list_buckets(), attempts=2)
        except (StorageError, ClientError):
            return False
        return True

    def forget(self) -> None:
        """The primary component changed: load it again on next use."""
        self._component = None
        client_cm, self._client, self._client_cm = self._client_cm, None, None
        if client_cm is not None:
            task = asyncio.get_running_loop().create_task(client_cm.__aexit__(None, None, None))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        await asyncio.gather(*self._closing, return_exceptions=True)
        if self._client_cm is not None:
            await self._client_cm.__aexit__(None, None, None)
            self._client = self._client_cm = None
