"""`/mapi/v1/storage_component/*`: real endpoint tests, write-only encrypted secrets, one primary."""

from __future__ import annotations

from sqlalchemy import text

from tests.support.services import free_port
from tests.support.stack import component_body


async def test_create_list_update_without_ever_returning_secrets(admin, remote_store, db):
    body = component_body(remote_store.endpoint, remote_store.access_key, remote_store.secret_key,
                          "crud")  # fmt: skip
    created = await admin.ok("/storage_component/create", body)
    config = created["storageComponentConfig"]
    assert created["state"] == "ACTIVE" and created["primary"] is False
    assert "accessKey" not in config and "secretKey" not in config
    assert config["listingOrder"] == "hierarchical"  # SeaweedFS, seen by its Server header

    listed = await admin.ok("/storage_component/list", {})
    assert isinstance(listed, list)
    assert [c for c in listed if c["id"] == created["id"]] == [created]
    assert sum(c["primary"] for c in listed) == 1
    assert remote_store.secret_key not in str(listed)

    async with db.connect() as conn:
        stored = (
            await conn.execute(
                text(
                    "SELECT access_key_enc, secret_key_enc, config::text FROM storage_components"
                    " WHERE id = :id"
                ),
                {"id": created["id"]},
            )
        ).one()
    assert remote_store.secret_key not in "".join(stored)
    assert remote_store.access_key not in "".join(stored)

    update = {"id": created["id"], "storageComponentConfig": {**body["storageComponentConfig"]}}
    del update["storageComponentConfig"]["secretKey"]  # left out: kept
    update["storageComponentConfig"]["label"] = "renamed"
    updated = await admin.ok("/storage_component/update", update)
    assert updated["storageComponentConfig"]["label"] == "renamed"
    tested = await admin.ok("/storage_component/test", {"id": created["id"]})
    assert tested["verified"] is True, tested


async def test_test_reports_what_failed(admin, remote_store):
    wrong = component_body(remote_store.endpoint, remote_store.access_key, "not-the-secret", "bad")
    bad = await admin.ok("/storage_component/create", wrong)
    result = await admin.ok("/storage_component/test", {"id": bad["id"]})
    assert result["verified"] is False
    assert result["httpStatus"] == 403 and result["errorCode"], result

    down = component_body(f"http://127.0.0.1:{free_port()}", "ak", "sk", "down")
    gone = await admin.ok("/storage_component/create", down)
    result = await admin.ok("/storage_component/test", {"id": gone["id"]})
    assert result["verified"] is False and result["httpStatus"] is None
    assert result["errorCode"] == "ConnectionError"

    missing_bucket = component_body(remote_store.endpoint, remote_store.access_key,
                                    remote_store.secret_key, "nb")  # fmt: skip
    missing_bucket["storageComponentConfig"]["bucket"] = "no-such-bucket-here"
    nb = await admin.ok("/storage_component/create", missing_bucket)
    result = await admin.ok("/storage_component/test", {"id": nb["id"]})
    assert (result["verified"], result["httpStatus"]) == (False, 404)


async def test_state_rules_and_exactly_one_primary(admin, remote_store, bucket):
    listed = await admin.ok("/storage_component/list", {})
    primary = next(c for c in listed if c["primary"])
    refused = await admin.post("/storage_component/update_state",
                               {"id": primary["id"], "state": "INACTIVE"})  # fmt: skip
    assert refused.status_code == 400

    body = component_body(remote_store.endpoint, remote_store.access_key, remote_store.secret_key,
                          "inactive")  # fmt: skip
    other = await admin.ok("/storage_component/create", body)
    off = await admin.ok(
        "/storage_component/update_state", {"id": other["id"], "state": "INACTIVE"}
    )
    assert off["state"] == "INACTIVE"
    job = await admin.post("/jobs/create", {
        "jobType": "BATCH_REPLICATE", "bucketName": bucket,
        "jobParams": {"destinationBucket": "x-dst", "destinationComponent": other["id"]},
    })  # fmt: skip
    assert job.status_code == 400 and "INACTIVE" in job.json()["message"]
    missing = await admin.post("/storage_component/update_state", {"id": 987654, "state": "ACTIVE"})
    assert missing.status_code == 404


async def test_bad_bodies_are_400_and_create_nothing(admin):
    before = await admin.ok("/storage_component/list", {})
    for body in (
        {},
        {"storageType": "FTP", "storageComponentConfig": {"label": "x", "host": "h"}},
        {"storageType": "GENERIC_S3", "storageComponentConfig": {"label": "x", "host": "h"}},
        {"storageType": "GENERIC_S3",
         "storageComponentConfig": {"label": "x", "host": "h", "port": 70000,
                                    "accessKey": "a", "secretKey": "s"}},
        {"storageType": "GENERIC_S3",
         "storageComponentConfig": {"label": "x", "host": "h", "accessKey": "a",
                                    "secretKey": "s", "unknownField": 1}},
        *({"storageType": "GENERIC_S3",
           "storageComponentConfig": {"label": "x", "host": host, "accessKey": "a",
                                      "secretKey": "s"}}
          for host in ("h\x00", "http://h", "h/path", "h:9000", "h h", "[::1", "é.example",
                       ".staging-", "a..b", "-a.b", "a-.b", "x" * 64 + ".b")),
        *({"storageType": "GENERIC_S3",
           "storageComponentConfig": {"label": "x", "host": "h", "uriScheme": "https",
                                      "accessKey": "a", "secretKey": "s", "caCertificate": ca}}
          for ca in ("\x00", "not a pem", "é" * 20, "-----BEGIN CERTIFICATE-----\n\x00\n",
                     "x" * 70_000, 12345, {"pem": "x"})),
    ):  # fmt: skip
        response = await admin.post("/storage_component/create", body)
        assert response.status_code == 400, (body, response.text)
        if "caCertificate" in body.get("storageComponentConfig", {}):
            message = response.json()["message"]
            assert "caCertificate" in message and "é" * 20 not in message, message
    assert await admin.ok("/storage_component/list", {}) == before


async def test_only_storage_admins(stack):
    oscar = stack.add_user("oscar", "operator")
    try:
        for path in ("list", "create", "test", "update", "update_state"):
            response = await oscar.post(f"/storage_component/{path}", {})
            assert response.status_code == 403, path
    finally:
        await oscar.close()
