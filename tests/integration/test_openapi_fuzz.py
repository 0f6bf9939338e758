"""A short schemathesis run against the served OpenAPI document: no 5xx, no undocumented
response, no schema violation.

Driven through hypothesis directly: schemathesis's pytest plugin does not load under pytest 9.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.mapi import REALM_TOKEN
from tests.support.stack import ADMIN_PASSWORD, private_api

EXAMPLES_PER_OPERATION = int(os.environ.get("BUCKETJOBS_FUZZ_EXAMPLES", "30"))
STATEFUL_EXAMPLES = int(os.environ.get("BUCKETJOBS_FUZZ_STATEFUL", "25"))
# Every check but "valid data accepted": MAPI answers 400 to well-formed requests the domain
# refuses (a bucket that does not exist, a job already active).
CONFORMANCE = [not_a_server_error, status_code_conformance, content_type_conformance,
               response_schema_conformance, negative_data_rejection]  # fmt: skip


def _session(base_url: str) -> requests.Session:
    session = requests.Session()
    token = session.post(
        base_url + REALM_TOKEN,
        data={"grant_type": "password", "username": "admin", "password": ADMIN_PASSWORD,
              "client_id": "admin-cli"},
    ).json()["access_token"]  # fmt: skip
    session.get(f"{base_url}/mapi/v1/csrf")
    session.headers["Authorization"] = f"Bearer {token}"
    session.headers["X-XSRF-TOKEN"] = session.cookies["XSRF-TOKEN"]
    return session


@pytest.fixture
def fuzzed_api(tmp_path, store, postgres_url) -> Iterator[str]:
    """The fuzzer, as an administrator, creates storage components and moves the primary
    mark: on a database of its own, away from the suite's stack."""
    with private_api(tmp_path, store, postgres_url) as (url, _):
        yield url


def test_api_conforms_to_its_openapi_document(fuzzed_api):
    schema = schemathesis.openapi.from_url(f"{fuzzed_api}/openapi.json")
    session = _session(fuzzed_api)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(session=session, checks=CONFORMANCE)

        run()


async def test_stateful_create_status_cancel(fuzzed_api, s3):
    """Follow the document's links (jobs/create → status, cancel, failures) with generated
    requests: real job ids reach the later calls, and no step answers 5xx."""
    for name in ("fuzz-one", "fuzz-two"):  # buckets a generated create may name and find
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            await s3.create_bucket(Bucket=name)
    schema = schemathesis.openapi.from_url(f"{fuzzed_api}/openapi.json")
    session = _session(fuzzed_api)
    calls: list[tuple[str, int]] = []

    class Machine(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, object]:
            return {"session": session}

        def after_call(self, response: Any, case: schemathesis.Case) -> None:
            calls.append((case.operation.path, response.status_code))

        def validate_response(self, response: Any, case: schemathesis.Case, *_: Any,
                              **__: Any) -> None:  # fmt: skip
            case.validate_response(response, checks=CONFORMANCE)

    await asyncio.to_thread(
        Machine.run,
        settings=settings(
            max_examples=STATEFUL_EXAMPLES, deadline=None, database=None,
            suppress_health_check=list(HealthCheck), stateful_step_count=6,
        )
    )  # fmt: skip
    followed = {path for path, status in calls if path.endswith(("/status", "/cancel"))}
    assert followed, "no link from jobs/create was followed"
