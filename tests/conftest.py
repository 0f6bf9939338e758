"""Session-wide real parts: PostgreSQL, SeaweedFS, a `serve --no-worker` API and a worker."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bucketjobs.db.embedded import EmbeddedPostgres
from bucketjobs.db.session import sqlalchemy_url
from bucketjobs.storage.embedded import EmbeddedSeaweed
from tests.support.mapi import Mapi
from tests.support.s3 import s3_client
from tests.support.services import Process, free_port, port_free, wait_http
from tests.support.stack import ADMIN_PASSWORD, Stack, Store, component_body
from tests.support.tls import PrivateCA, private_ca


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data")
    url = server.start()
    yield url
    server.stop()


def _seaweed(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Store]:
    seaweed = EmbeddedSeaweed(tmp_path_factory.mktemp(name))
    creds = seaweed.start()
    yield Store(seaweed.endpoint, creds.access_key, creds.secret_key)
    seaweed.stop()


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    yield from _seaweed(tmp_path_factory, "seaweedfs")


@pytest.fixture(scope="session")
def ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    """A private CA and a server certificate for 127.0.0.1 / localhost signed by it."""
    return private_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="session")
def default_port_store(tmp_path_factory: pytest.TempPathFactory, ca: PrivateCA) -> Iterator[Store]:
    """A SeaweedFS where S3 endpoints live in the field: HTTP on port 80 and HTTPS on 443
    with a certificate from a private CA (ports below 1024: the suite runs as root)."""
    if os.geteuid() != 0:
        pytest.skip("ports 80 and 443 need root (the suite runs as root in CI)")
    if not (port_free(80) and port_free(443)):
        pytest.skip("something else listens on 127.0.0.1:80 or :443")
    seaweed = EmbeddedSeaweed(
        tmp_path_factory.mktemp("seaweed-default-ports"), 80, https_port=443,
        tls=(ca.cert, ca.key),
    )  # fmt: skip
    creds = seaweed.start()
    assert seaweed.endpoint == "http://127.0.0.1"
    yield Store(seaweed.endpoint, creds.access_key, creds.secret_key)
    seaweed.stop()


@pytest.fixture(scope="session")
def remote_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """A second SeaweedFS: another S3 endpoint, for cross-endpoint replication."""
    yield from _seaweed(tmp_path_factory, "seaweedfs-remote")


@pytest.fixture(scope="session")
async def remote_component(admin: Mapi, remote_store: Store) -> int:
    """The second SeaweedFS registered as a (non-primary) storage component."""
    body = component_body(
        remote_store.endpoint, remote_store.access_key, remote_store.secret_key, "remote"
    )
    return int((await admin.ok("/storage_component/create", body))["id"])


@pytest.fixture(scope="session")
async def remote_s3(remote_store: Store) -> AsyncIterator[Any]:
    async with s3_client(
        remote_store.endpoint, remote_store.access_key, remote_store.secret_key
    ) as client:
        yield client


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, postgres_url: str, store: Store
) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("bucketjobs")
    port = free_port()
    env = {"BUCKETJOBS_ADMIN_PASSWORD": ADMIN_PASSWORD}
    api = Process(
        ["serve", "--no-worker", "--port", str(port), "--data-dir", str(data_dir),
         "--database-url", postgres_url, "--s3-endpoint", store.endpoint,
         "--s3-access-key", store.access_key, "--s3-secret-key", store.secret_key],
        env, data_dir / "api.log",
    )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    wait_http(f"{base_url}/healthz", proc=api)
    running = Stack(base_url, postgres_url, data_dir, store, api)
    running.start_worker()
    yield running
    running.stop_workers()
    api.stop()


@pytest.fixture(scope="session")
async def db(stack: Stack) -> AsyncIterator[AsyncEngine]:
    """Direct access to the service's database, for what the API does not show."""
    engine = create_async_engine(sqlalchemy_url(stack.database_url))
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
async def admin(stack: Stack) -> AsyncIterator[Mapi]:
    client = Mapi(stack.base_url, "admin", ADMIN_PASSWORD)
    await client.login()
    yield client
    await client.close()


@pytest.fixture(scope="session")
async def s3(store: Store) -> AsyncIterator[Any]:
    async with s3_client(store.endpoint, store.access_key, store.secret_key) as client:
        yield client


_counter = iter(range(1, 1_000_000))


@pytest.fixture
async def bucket(s3: Any) -> str:
    """A new empty bucket per test."""
    name = f"t{os.getpid()}-{next(_counter)}"
    await s3.create_bucket(Bucket=name)
    return name
