"""Jobs API rules through HTTP: listing and pages, visibility, bad input, idempotency."""

from __future__ import annotations

import datetime as dt
import json
import random

import httpx
import pytest
from sqlalchemy import func, select, text

from bucketjobs.db.models import jobs


async def _job_count(db) -> int:
    async with db.connect() as conn:
        return int(await conn.scalar(select(func.count()).select_from(jobs)))


async def _insert_jobs(db, user_id: int, bucket: str, count: int, start: dt.datetime) -> set[int]:
    """Finished jobs written straight to the table (what 2,500 past jobs look like)."""
    rows, ids = [], set()
    async with db.begin() as conn:
        component = await conn.scalar(text("SELECT id FROM storage_components WHERE is_primary"))
        existing = set((await conn.execute(select(jobs.c.id))).scalars())
        while len(ids) < count:
            job_id = random.randint(-(2**31), 2**31 - 1)
            if job_id and job_id not in existing and job_id not in ids:
                ids.add(job_id)
        for n, job_id in enumerate(sorted(ids)):
            # Several jobs share a timestamp so ties are broken by id.
            created = start + dt.timedelta(milliseconds=n // 3)
            rows.append(dict(
                id=job_id, user_id=user_id, job_type="METRIC_RECONCILIATION",
                bucket_name=bucket, component_id=component, state="COMPLETE", params={},
                created_at=created, updated_at=created, completed_at=created,
            ))  # fmt: skip
        await conn.execute(jobs.insert(), rows)
    return ids


async def test_pages_skip_nothing_and_repeat_nothing_while_jobs_are_created(admin, db):
    me = (await admin.ok("/user/info"))["id"]["id"]
    start = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    original = await _insert_jobs(db, me, "paging-bucket", 2500, start)
    seen: list[int] = []
    token = None
    pages = 0
    while pages < 100:  # 9 expected; a token that never ends fails below
        body = {"bucketName": "paging-bucket", "pageSize": 300}
        if token:
            body["pageToken"] = token
        page = await admin.ok("/jobs/list", body)
        seen += [j["jobId"]["id"] for j in page["jobs"]]
        pages += 1
        # New jobs arrive between pages (newer than everything listed so far).
        await _insert_jobs(db, me, "paging-bucket", 7, dt.datetime.now(dt.UTC))
        token = page.get("pageToken")
        if not token:
            break
    assert pages == 9
    assert len(seen) == len(set(seen)), "a job was repeated"
    assert set(seen) == original, "a job was skipped (or a newer one leaked into later pages)"
    times = [(j, i) for i, j in enumerate(seen)]
    assert times  # order: newest first, then id
    async with db.connect() as conn:
        order = (await conn.execute(
            select(jobs.c.id).where(jobs.c.id.in_(original))
            .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
        )).scalars().all()  # fmt: skip
    assert seen == list(order)


async def test_page_token_tampering_and_filter_reuse_rejected(admin, db):
    me = (await admin.ok("/user/info"))["id"]["id"]
    await _insert_jobs(db, me, "tamper-bucket", 5, dt.datetime(2025, 2, 1, tzinfo=dt.UTC))
    page = await admin.ok("/jobs/list", {"bucketName": "tamper-bucket", "pageSize": 2})
    token = page["pageToken"]
    body, _, mac = token.partition(".")
    flipped = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    for bad in (f"{flipped}.{mac}", token[:-1] + ("x" if token[-1] != "x" else "y"), "garbage", ""):
        response = await admin.post(
            "/jobs/list", {"bucketName": "tamper-bucket", "pageSize": 2, "pageToken": bad}
        )
        if bad == "":
            continue  # empty token means "first page"
        assert response.status_code == 400, bad
        assert response.json()["code"] == "INVALID_REQUEST"
    other = await admin.post("/jobs/list", {"bucketName": "other-bucket", "pageToken": token})
    assert other.status_code == 400


async def test_admin_filters_and_nulls_mean_absent(admin, db):
    me = (await admin.ok("/user/info"))["id"]["id"]
    await _insert_jobs(db, me, "filter-bucket", 4, dt.datetime(2025, 3, 1, tzinfo=dt.UTC))
    by_bucket = await admin.ok("/jobs/list", {"bucketName": "filter-bucket"})
    assert len(by_bucket["jobs"]) == 4 and "pageToken" not in by_bucket
    assert all(j["bucketName"] == "filter-bucket" for j in by_bucket["jobs"])
    by_user = await admin.ok("/jobs/list", {"userId": {"id": me}, "bucketName": "filter-bucket"})
    assert len(by_user["jobs"]) == 4
    nobody = await admin.ok("/jobs/list", {"userId": {"id": 999999}, "bucketName": "filter-bucket"})
    assert nobody["jobs"] == []
    nulls = await admin.ok(
        "/jobs/list", {"bucketName": None, "userId": None, "pageSize": None, "pageToken": None}
    )
    assert len(nulls["jobs"]) == 100
    states = await admin.ok("/jobs/list", {"bucketName": "filter-bucket", "jobStates": ["FAILED"]})
    assert states["jobs"] == []


BAD_CREATES = [
    ("not json", b"{nope", 400),
    ("array", b"[1, 2]", 400),
    ("string", b'"METRIC_RECONCILIATION"', 400),
    ("missing jobType", b'{"bucketName": "abc"}', 400),
    ("missing bucket", b'{"jobType": "METRIC_RECONCILIATION"}', 400),
    ("number jobType", b'{"jobType": 5, "bucketName": "abc"}', 400),
    ("unknown jobType", b'{"jobType": "FORMAT_DISK", "bucketName": "abc"}', 400),
    ("bad bucket", b'{"jobType": "METRIC_RECONCILIATION", "bucketName": "Bad_Bucket"}', 400),
    ("ip bucket", b'{"jobType": "METRIC_RECONCILIATION", "bucketName": "192.168.1.1"}', 400),
    ("params not object", b'{"jobType": "METRIC_RECONCILIATION", "bucketName": "abc", "jobParams": [1]}', 400),
    ("unknown param", b'{"jobType": "METRIC_RECONCILIATION", "bucketName": "abc", "jobParams": {"destinationBucket": "x"}}', 400),
    ("nested param", b'{"jobType": "METRIC_RECONCILIATION", "bucketName": "abc", "jobParams": {"prefix": {"a": 1}}}', 400),
    ("list param", b'{"jobType": "METRIC_RECONCILIATION", "bucketName": "abc", "jobParams": {"prefix": ["a"]}}', 400),
    ("null param", b'{"jobType": "METRIC_RECONCILIATION", "bucketName": "abc", "jobParams": {"prefix": null}}', 400),
    ("dryRun maybe", b'{"jobType": "METRIC_RECONCILIATION", "bucketName": "abc", "jobParams": {"dryRun": "maybe"}}', 400),
    ("threshold text", b'{"jobType": "METRIC_RECONCILIATION", "bucketName": "abc", "jobParams": {"failureThreshold": "lots"}}', 400),
    ("threshold range", b'{"jobType": "METRIC_RECONCILIATION", "bucketName": "abc", "jobParams": {"failureThreshold": 101}}', 400),
    ("concurrency zero", b'{"jobType": "METRIC_RECONCILIATION", "bucketName": "abc", "jobParams": {"maxConcurrency": 0}}', 400),
    ("oversize", b'{"jobType": "METRIC_RECONCILIATION", "bucketName": "abc", "pad": "' + b"x" * (1024 * 1024 + 10) + b'"}', 413),
]  # fmt: skip


@pytest.mark.parametrize("name,raw,status", BAD_CREATES, ids=[c[0] for c in BAD_CREATES])
async def test_bad_input_is_a_clear_4xx_and_creates_nothing(admin, db, name, raw, status):
    before = await _job_count(db)
    headers = {"Authorization": f"Bearer {admin.token}", **await admin.csrf_headers()}
    response = await admin.http.post("/mapi/v1/jobs/create", content=raw, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()
    assert set(error) == {"code", "message", "details"}
    assert all(isinstance(v, str) for v in error.values())
    assert error["message"]
    assert await _job_count(db) == before


async def test_scalar_params_and_form_content_type_are_accepted(admin, s3, bucket):
    headers = {
        "Authorization": f"Bearer {admin.token}",
        "Content-Type": "application/x-www-form-urlencoded",  # what curl -d sends
        **await admin.csrf_headers(),
    }
    body = {
        "jobType": "METRIC_RECONCILIATION",
        "bucketName": bucket,
        "jobParams": {"dryRun": True, "failureThreshold": 10, "prefix": "p/"},
    }
    response = await admin.http.post(
        "/mapi/v1/jobs/create", content=json.dumps(body), headers=headers
    )
    assert response.status_code == 200, response.text
    job = response.json()["jobStatus"]
    assert job["jobParams"] == {"dryRun": "true", "failureThreshold": "10", "prefix": "p/"}
    assert job["jobState"] == "EXAMINING"
    assert isinstance(job["jobId"]["id"], int) and job["jobId"]["id"] != 0
    assert job["startTime"].endswith("Z") and len(job["startTime"]) == 24
    assert job["completeTime"] is None


async def test_idempotency_key_returns_the_original_job(admin, s3, bucket, db):
    key = {"Idempotency-Key": f"create-{bucket}"}
    body = {"jobType": "METRIC_RECONCILIATION", "bucketName": bucket}
    first = (await admin.ok("/jobs/create", body, headers=key))["jobStatus"]
    before = await _job_count(db)
    again = (await admin.ok("/jobs/create", body, headers=key))["jobStatus"]
    assert again["jobId"] == first["jobId"]
    assert await _job_count(db) == before


async def test_empty_body_is_an_empty_object(admin):
    headers = {"Authorization": f"Bearer {admin.token}", **await admin.csrf_headers()}
    response = await admin.http.post("/mapi/v1/jobs/list", content=b"", headers=headers)
    assert response.status_code == 200
    assert isinstance(response.json()["jobs"], list)


async def test_status_of_unknown_job(admin):
    response = await admin.post("/jobs/status", {"jobId": {"id": 424242}})
    assert response.status_code == 404 and response.json()["code"] == "JOB_NOT_FOUND"
    response = await admin.post("/jobs/status", {"jobId": {"id": "12"}})
    assert response.status_code == 400
    async with httpx.AsyncClient(base_url=admin.base_url) as http:
        assert (await http.get("/healthz")).json() == {"status": "ok"}
