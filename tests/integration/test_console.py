"""The web console at /console, driven in headless Chromium (Debian's, through Playwright)
against the real server: log in, create a job from the form and watch it complete, cancel
another, see failures listed, the bucket metrics view, and /docs with no way out (issue 14 §4).

Screenshots of each step are kept in build/test-artifacts/console/.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.integration.test_triggers import _no_targets_left  # noqa: F401 - autouse here too
from tests.support.brokers import Webhook
from tests.support.mapi import Mapi
from tests.support.s3 import put_many
from tests.support.stack import ADMIN_PASSWORD

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts" / "console"
# As root on a machine with no way out: no sandbox, and none of Chromium's own traffic.
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
HOSTILE_KEY = "<img src=x onerror=alert(1)>&amp;\u00e9 key"


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    assert shutil.which(CHROMIUM), "Debian's chromium: scripts/test installs it"
    async with async_playwright() as driver:
        chromium = await driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        await chromium.close()


@pytest.fixture
async def page(browser: Any, stack: Any) -> AsyncIterator[Any]:
    """A fresh browser context; fails the test on any page error, console error (a CSP
    refusal is one), dialog left unanswered or request to another origin."""
    context = await browser.new_context(viewport={"width": 1200, "height": 900})
    tab = await context.new_page()
    problems: list[str] = []
    origin = urlsplit(stack.base_url).netloc
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    tab.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    tab.on(
        "request", lambda r: _same_origin(r.url, origin) or problems.append(f"off-site: {r.url}")
    )
    tab.problems = problems
    yield tab
    await context.close()


def _same_origin(url: str, origin: str) -> bool:
    return url.startswith(("data:", "about:", f"blob:http://{origin}/")) or (
        urlsplit(url).netloc == origin
    )


async def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def _log_in(page: Any, base_url: str) -> None:
    await page.goto(f"{base_url}/console/")
    await page.fill("#login-form [name=username]", "admin")
    await page.fill("#login-form [name=password]", ADMIN_PASSWORD)
    await page.click("#login-form button")
    await page.wait_for_selector("#view-jobs:not([hidden])")


async def _state(page: Any, state: str, timeout: float = 60_000) -> None:
    await page.wait_for_function(
        "s => document.getElementById('job-state').textContent === s", arg=state, timeout=timeout
    )


async def _rows_are(page: Any, job_ids: list[str]) -> None:
    """Wait until the jobs table lists exactly `job_ids`, in that order."""
    await page.wait_for_function(
        "ids => [...document.querySelectorAll('#jobs-table tbody a')]"
        ".map(a => a.textContent).join() === ids",
        arg=",".join(job_ids),
    )


async def _first_row_is(page: Any, job_id: str) -> None:
    """Wait until the jobs table's first row is `job_id` (the page it shows has loaded)."""
    await page.wait_for_function(
        "id => document.querySelector('#jobs-table tbody a')?.textContent === id", arg=job_id
    )


async def test_log_in_create_watch_list_and_metrics(page, stack, s3, bucket, admin: Mapi):
    await put_many(s3, bucket, ((f"obj/{i:03}", b"x" * i) for i in range(40)))
    await page.goto(f"{stack.base_url}/console/")
    await page.wait_for_selector("#view-login:not([hidden])")
    await _shot(page, "01-login")
    # A wrong password: the API's refusal on the page, still at the login form.
    await page.fill("#login-form [name=username]", "admin")
    await page.fill("#login-form [name=password]", "not the password")
    await page.click("#login-form button")
    await page.wait_for_selector("#error:not([hidden])")
    assert "UNAUTHORIZED" in await page.text_content("#error")
    page.problems.clear()  # the browser logs the 401 itself
    await _log_in(page, stack.base_url)

    # The form: each type's parameters with their help, from the OpenAPI document.
    await page.click("nav >> text=New job")
    await page.select_option("#create-form [name=jobType]", "BATCH_REPLICATE")
    help_text = await page.text_content("#create-params")
    assert "destinationBucket" in help_text and "Required unless" in help_text
    # Bad input: the API's message on the page, and no job created.
    before = [j["jobId"]["id"] for j in (await admin.ok("/jobs/list", {}))["jobs"]]
    await page.select_option("#create-form [name=jobType]", "METRIC_RECONCILIATION")
    await page.fill("#create-form [name=bucketName]", "Not_A_Bucket")
    await page.click("#create-form button[type=submit]")
    await page.wait_for_selector("#error:not([hidden])")
    assert "INVALID_REQUEST" in await page.text_content("#error")
    after = [j["jobId"]["id"] for j in (await admin.ok("/jobs/list", {}))["jobs"]]
    assert after == before
    page.problems.clear()  # the browser logs the 400 itself

    await page.fill("#create-form [name=bucketName]", bucket)
    await page.fill("#create-form [name='param:failureThreshold']", "10")
    await _shot(page, "02-create")
    await page.click("#create-form button[type=submit]")
    await page.wait_for_url("**/console/#/job/*")
    await _state(page, "COMPLETE")
    job_id = int(page.url.rsplit("/", 1)[1])
    facts = await page.text_content("#job-facts")
    assert "Processed40" in facts and "failureThreshold=10" in facts
    result = json.loads(await page.text_content("#job-result"))
    assert result["metrics"]["objectCount"] == 40
    assert result["metrics"]["bytes"] == sum(range(40))
    assert await page.locator("#job-chart polyline").count() == 1
    await _shot(page, "03-job-complete")

    # The jobs table, filtered by bucket and state: that job, and only it.
    await page.click("nav >> text=Jobs")
    await page.fill("#jobs-filter [name=bucket]", bucket)
    await page.select_option("#jobs-filter [name=state]", "COMPLETE")
    await page.click("#jobs-filter button")
    await _rows_are(page, [str(job_id)])  # the unfiltered table already showed it
    await page.select_option("#jobs-filter [name=state]", "")
    await page.select_option("#jobs-filter [name=type]", "BATCH_REPLICATE")
    await page.click("#jobs-filter button")
    await page.wait_for_selector("#jobs-empty:not([hidden])")
    await _shot(page, "04-jobs")
    # Pages of 20: at least 21 jobs in the installation, whatever ran before.
    while len((await admin.ok("/jobs/list", {"pageSize": 21}))["jobs"]) < 21:
        made = await admin.create("METRIC_RECONCILIATION", bucket, dryRun="true")
        await admin.wait(made["jobId"]["id"])
    listed = (await admin.ok("/jobs/list", {"pageSize": 40}))["jobs"]
    await page.fill("#jobs-filter [name=bucket]", "")
    await page.select_option("#jobs-filter [name=type]", "")
    await page.click("#jobs-filter button")
    first_page = [str(j["jobId"]["id"]) for j in listed[:20]]
    await _first_row_is(page, first_page[0])
    assert await page.locator("#jobs-first").is_disabled()
    await page.click("#jobs-next")
    await _first_row_is(page, str(listed[20]["jobId"]["id"]))
    shown = await page.locator("#jobs-table tbody a").all_text_contents()
    assert len(shown) <= 20 and not set(shown) & set(first_page)
    await page.click("#jobs-first")
    await _first_row_is(page, first_page[0])

    # Bucket metrics, as that job stored them.
    await page.click("nav >> text=Bucket metrics")
    await page.fill("#metrics-form [name=bucketName]", bucket)
    await page.click("#metrics-form button[type=submit]")
    await page.wait_for_selector("#metrics-facts dd")
    metrics = await page.text_content("#metrics-facts")
    assert "Objects40" in metrics and f"By job{job_id}" in metrics
    await _shot(page, "05-metrics")
    assert page.problems == []


async def test_a_late_answer_does_not_replace_the_filtered_table(page, stack, s3, bucket, admin):
    """The unfiltered listing asked for on opening Jobs answers after the filtered one asked
    for next: the table keeps the filtered rows."""
    other = f"{bucket}-other"
    await s3.create_bucket(Bucket=other)
    jobs = {}
    for name in (bucket, other):
        made = await admin.create("METRIC_RECONCILIATION", name, dryRun="true")
        jobs[name] = str(made["jobId"]["id"])
        await admin.wait(made["jobId"]["id"])
    await _log_in(page, stack.base_url)
    await page.click("nav >> text=New job")

    async def slow_unfiltered(route: Any) -> None:
        if "bucketName" not in (route.request.post_data or ""):
            await asyncio.sleep(1.5)
        await route.continue_()

    await page.route("**/mapi/v1/jobs/list", slow_unfiltered)
    unfiltered = lambda r: r.url.endswith("/jobs/list") and "bucketName" not in (r.post_data or "")  # noqa: E731
    async with page.expect_request_finished(unfiltered, timeout=10_000):
        await page.click("nav >> text=Jobs")
        await page.fill("#jobs-filter [name=bucket]", bucket)
        await page.click("#jobs-filter button")
        await _rows_are(page, [jobs[bucket]])  # the filtered answer, while the other waits
    await page.evaluate("() => new Promise(done => setTimeout(done, 200))")  # its handler ran
    shown = await page.locator("#jobs-table tbody a").all_text_contents()
    assert shown == [jobs[bucket]]
    assert page.problems == []


async def test_cancel_asks_then_stops_the_job(page, stack, s3, bucket, admin: Mapi):
    await put_many(s3, bucket, ((f"k{i:03}", b"") for i in range(60)))
    await _log_in(page, stack.base_url)
    await page.click("nav >> text=New job")
    await page.select_option("#create-form [name=jobType]", "METRIC_RECONCILIATION")
    await page.fill("#create-form [name=bucketName]", bucket)
    await page.fill("#create-form [name='param:rateLimit']", "3")  # ~20 s of work
    await page.click("#create-form button[type=submit]")
    await page.wait_for_url("**/console/#/job/*")
    job_id = int(page.url.rsplit("/", 1)[1])
    await page.wait_for_selector("#job-cancel:not([hidden])")
    # Declining the confirmation changes nothing.
    page.once("dialog", lambda dialog: dialog.dismiss())
    await page.click("#job-cancel")
    status = await admin.status(job_id)
    assert status["jobState"] not in ("CANCELLED", "COMPLETE", "FAILED")
    messages: list[str] = []

    async def accept(dialog: Any) -> None:
        messages.append(dialog.message)
        await dialog.accept()

    page.once("dialog", accept)
    await page.click("#job-cancel")
    await _state(page, "CANCELLED", timeout=15_000)
    assert messages == [f"Cancel job {job_id}? Work already done stays done."]
    status = await admin.status(job_id)
    assert status["jobState"] == "CANCELLED"
    assert status["jobStats"]["processed"] < 60
    assert await page.locator("#job-cancel").is_hidden()
    await _shot(page, "06-cancelled")
    assert page.problems == []


async def test_failures_are_listed_as_text(page, stack, s3, bucket, admin: Mapi):
    """A TRIGGER_RECONCILIATION with one target taking events and one refusing them (403,
    not retried): every key is a failure on the job's page; a key that looks like markup
    is shown as text and runs nothing."""
    keys = ["plain", HOSTILE_KEY]
    await put_many(s3, bucket, ((key, b"x") for key in keys))
    hook, refusing = Webhook(), Webhook()
    refusing.fail_with = 403
    await hook.start()
    await refusing.start()
    try:
        live = await _target(admin, f"live-{bucket}", hook.url)
        dead = await _target(admin, f"refusing-{bucket}", refusing.url)
        await _bind(admin, bucket, [live, dead])
        created = await admin.create("TRIGGER_RECONCILIATION", bucket, failureThreshold="100")
        job_id = created["jobId"]["id"]
        await admin.wait(job_id)
    finally:
        await hook.stop()
        await refusing.stop()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await _log_in(page, stack.base_url)
    await page.goto(f"{stack.base_url}/console/#/job/{job_id}")
    await _state(page, "COMPLETE")
    await page.wait_for_selector("#job-failures tbody tr >> nth=1")
    cells = await page.locator("#job-failures tbody tr td:first-child").all_text_contents()
    assert sorted(cells) == sorted(keys)
    table = await page.text_content("#job-failures")
    assert table.count("DeliveryFailed") == 2
    assert await page.locator("#job-failures img").count() == 0 and dialogs == []
    await _shot(page, "07-failures")
    await _bind(admin, bucket, [])
    assert page.problems == []


async def _target(admin: Mapi, name: str, url: str) -> Any:
    body = {"name": name, "type": "WEBHOOK", "config": {"url": url}}
    return (await admin.ok("/notification/target/create", body))["target"]["id"]


async def _bind(admin: Mapi, bucket: str, targets: list[Any]) -> None:
    bindings = [{"targetId": t, "events": ["s3:ObjectCreated:*"]} for t in targets]
    await admin.ok("/notification/bucket/set", {"bucketName": bucket, "bindings": bindings})


async def test_docs_work_with_no_way_out(page, stack):
    """Swagger UI renders every operation from assets served by the API itself (the page
    fixture fails the test on any request to another origin)."""
    await page.goto(f"{stack.base_url}/docs")
    await page.wait_for_selector(".opblock", timeout=30_000)
    assert await page.locator(".opblock").count() > 20
    assert page.problems == []


async def test_console_files_carry_a_strict_policy(stack):
    import httpx

    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        for path in ("/console/", "/console/console.js", "/console/console.css"):
            answer = await http.get(path)
            assert answer.status_code == 200
            assert "script-src 'self'" in answer.headers["content-security-policy"]
            assert answer.headers["x-content-type-options"] == "nosniff"
        assert (await http.get("/console", follow_redirects=False)).status_code == 308
        long_name = "a" * 5000
        for path in ("/console/..%2fapp.py", "/console/__init__.py", "/console/x%00.js",
                     f"/console/{long_name}.js"):  # fmt: skip
            answer = await http.get(path)
            assert answer.status_code == 404 and answer.json()["code"] == "NOT_FOUND"
        assert (await http.get("/docs/assets/swagger-ui.css")).status_code == 200
        for path in ("/docs/assets/..%2f..%2fcore.py", "/docs/assets/%2e%2e/core.py"):
            assert (await http.get(path)).status_code == 404, path
        assert (await http.get("/redoc")).status_code == 404
