"""S3 endpoints where they live in the field: port 80, and 443 with TLS from a private CA.

One real SeaweedFS listens on both default ports (it runs as root in CI, as the suite does).
It is used as a replication destination and as the primary store, over plain HTTP and
over verified HTTPS. Before the Host fix every request here failed SignatureDoesNotMatch:
the client signed `127.0.0.1:80` and the server checked `127.0.0.1`.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.mapi import Mapi
from tests.support.objects import assert_same_objects
from tests.support.s3 import s3_client
from tests.support.stack import Store, component_body
from tests.support.tls import PrivateCA

# Metadata that tripped the signer: inner runs of spaces, a tab; and text beyond ASCII as
# S3 clients send it over REST (RFC 2047; raw UTF-8 is in test_http_differential.py).
META = {"note": "a  b\tc   d", "city": "=?UTF-8?B?WsO8cmljaA==?="}


@pytest.fixture(scope="module")
async def default_s3(default_port_store: Store) -> AsyncIterator[Any]:
    store = default_port_store
    async with s3_client(store.endpoint, store.access_key, store.secret_key) as client:
        yield client


def _component(store: Store, scheme: str, ca: PrivateCA | None, label: str) -> dict[str, Any]:
    body = component_body(store.endpoint, store.access_key, store.secret_key, label)
    config = body["storageComponentConfig"]
    config.update(uriScheme=scheme, port=443 if scheme == "https" else 80)
    if ca is not None:
        config["caCertificate"] = ca.ca_pem
    return body


ENDPOINTS = [("http", False), ("https", True)]


@pytest.fixture(scope="module")
async def components(admin: Mapi, default_port_store: Store, ca: PrivateCA) -> dict[str, int]:
    ids = {}
    for scheme, with_ca in ENDPOINTS:
        body = _component(default_port_store, scheme, ca if with_ca else None, f"dp-{scheme}")
        ids[scheme] = int((await admin.ok("/storage_component/create", body))["id"])
    return ids


async def _seed(client: Any, bucket: str) -> list[str]:
    keys = [f"k/{i:03d}" for i in range(40)] + ["with space/ü.txt", "plus+/a=b"]
    for n, key in enumerate(keys):
        await client.put_object(Bucket=bucket, Key=key, Body=f"body {n}".encode() * n,
                                Metadata=META, ContentType="text/plain; charset=utf-8")  # fmt: skip
    return keys


@pytest.mark.parametrize("scheme", [s for s, _ in ENDPOINTS])
async def test_component_on_a_default_port_answers_its_test(admin, components, scheme):
    result = await admin.ok("/storage_component/test", {"id": components[scheme]})
    assert result["verified"] is True, result
    listed = await admin.ok("/storage_component/list", {})
    mine = next(c for c in listed if c["id"] == components[scheme])
    assert mine["storageComponentConfig"]["port"] == (443 if scheme == "https" else 80)


@pytest.mark.parametrize("scheme", [s for s, _ in ENDPOINTS])
async def test_replicate_to_a_destination_on_a_default_port(
    admin, s3, default_s3, bucket, components, scheme
):
    keys = await _seed(s3, bucket)
    await default_s3.create_bucket(Bucket=f"{bucket}-{scheme}")
    job = await admin.create(
        "BATCH_REPLICATE", bucket, destinationComponent=components[scheme],
        destinationBucket=f"{bucket}-{scheme}", replicationFilter="ALL",
    )  # fmt: skip
    done = await admin.wait(job["jobId"]["id"])
    assert done["jobState"] == "COMPLETE", done.get("message")
    assert done["jobStats"]["processed"] == len(keys)
    await assert_same_objects(s3, bucket, default_s3, f"{bucket}-{scheme}", detailed=keys[-3:])
    head = await default_s3.head_object(Bucket=f"{bucket}-{scheme}", Key=keys[-1])
    assert head["Metadata"]["note"] == "a  b\tc   d"  # the bytes, not the signer's canonical form


async def test_https_is_verified_and_a_bad_ca_is_refused(admin, default_port_store):
    untrusted = _component(default_port_store, "https", None, "dp-untrusted")
    created = await admin.ok("/storage_component/create", untrusted)
    result = await admin.ok("/storage_component/test", {"id": created["id"]})
    assert (result["verified"], result["errorCode"]) == (False, "TlsError"), result
    assert "certificate" in result["errorMessage"]

    garbage = _component(default_port_store, "https", None, "dp-garbage")
    garbage["storageComponentConfig"]["caCertificate"] = "-----BEGIN CERTIFICATE-----\nnope\n"
    answer = await admin.post("/storage_component/create", garbage)
    assert answer.status_code == 400 and "caCertificate" in answer.json()["message"]
    plain = _component(default_port_store, "http", None, "dp-plain-ca")
    plain["storageComponentConfig"]["caCertificate"] = "x"
    answer = await admin.post("/storage_component/create", plain)
    assert answer.status_code == 400 and "https" in answer.json()["message"]


async def _make_primary(admin: Mapi, component_id: int) -> None:
    """Mark a component primary with an update that keeps its config (secrets are kept when
    left out; `listingOrder` is derived, not settable)."""
    view = next(c for c in await admin.ok("/storage_component/list", {}) if c["id"] == component_id)
    config = {k: v for k, v in view["storageComponentConfig"].items() if k != "listingOrder"}
    await admin.ok("/storage_component/update", {
        "id": component_id, "primary": True, "storageType": view["storageType"],
        "storageComponentConfig": config,
    })  # fmt: skip


@pytest.mark.parametrize("scheme", [s for s, _ in ENDPOINTS])
async def test_a_default_port_store_as_the_primary(admin, default_s3, components, scheme):
    """The whole path on a primary at port 80 / 443: create (bucket check), plan, list,
    count, finish."""
    name = f"primary-{scheme}-{os.getpid()}"
    await default_s3.create_bucket(Bucket=name)
    keys = await _seed(default_s3, name)
    original = next(c for c in await admin.ok("/storage_component/list", {}) if c["primary"])
    await _make_primary(admin, components[scheme])
    try:
        job = await admin.create("METRIC_RECONCILIATION", name)
        done = await admin.wait(job["jobId"]["id"])
    finally:
        await _make_primary(admin, original["id"])
    assert done["jobState"] == "COMPLETE", done.get("message")
    assert done["result"]["metrics"]["objectCount"] == len(keys)
