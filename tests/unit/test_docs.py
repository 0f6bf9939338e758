"""The docs are what the code says: the API reference matches the served OpenAPI document,
the troubleshooting page names every code the service can answer with, and the API page's
jobParams tables name each type's keys."""

from __future__ import annotations

import re
from pathlib import Path

from bucketjobs.api.app import create_app
from bucketjobs.api.errors import CODES
from bucketjobs.api.reference import render
from bucketjobs.jobs import errors as job_errors

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "bucketjobs"


def test_the_api_reference_is_generated_from_the_served_document():
    app = create_app("postgresql://unused@127.0.0.1:1/unused", Path("/nonexistent"))
    committed = (ROOT / "docs" / "API-REFERENCE.md").read_text()
    assert committed == render(app.openapi()), (
        "docs/API-REFERENCE.md is stale: python -m bucketjobs.api.reference > docs/API-REFERENCE.md"
    )
    assert (
        "## POST /mapi/v1/jobs/create" in committed
        and "`jobParams` of `LIFECYCLE_UPDATE`" in committed
    )


def _codes() -> set[str]:
    codes = set(CODES.values())
    codes |= {
        kind.code
        for kind in vars(job_errors).values()
        if isinstance(kind, type) and issubclass(kind, job_errors.JobError)
    }
    text = "\n".join(p.read_text() for p in SRC.rglob("*.py"))
    codes |= set(re.findall(r"_oauth_error\(\s*\d+,\s*\"([a-z_]+)\"", text))
    codes |= set(re.findall(r"(?:StorageError|super\(\).__init__)\(\"([A-Z][A-Za-z]+)\"", text))
    codes |= set(re.findall(r"Failure\([^)]*?\"([A-Z][A-Za-z]+)\"", text))
    return codes


def test_the_troubleshooting_page_names_every_code():
    page = (ROOT / "docs" / "TROUBLESHOOTING.md").read_text()
    codes = _codes()
    assert {"JOB_NOT_FOUND", "invalid_grant", "TlsError", "DeliveryFailed"} <= codes
    missing = sorted(code for code in codes if f"`{code}`" not in page)
    assert missing == [], f"docs/TROUBLESHOOTING.md does not explain {missing}"


def _cells(row: str) -> list[str]:
    """A Markdown table row's cells (an escaped `\\|` is inside one)."""
    return re.split(r"(?<!\\)\|", row)


def test_the_api_page_names_each_types_job_params():
    """docs/API.md's hand-written jobParams tables against the parser: the common table
    names the common keys, each type's row names that type's own keys and no other's, and
    every key has the help text the OpenAPI document and the console's form show."""
    from bucketjobs.jobs.params import BY_TYPE, COMMON, HELP

    page = (ROOT / "docs" / "API.md").read_text()
    section = page.split("## jobParams by job type", 1)[1].split("\n## ", 1)[0]
    rows = {
        _cells(line)[1].strip(" `"): line for line in section.splitlines() if line.startswith("| `")
    }
    every = set(COMMON) | {key for _, fields in BY_TYPE.values() for key in fields}
    assert set(HELP) == every
    assert set(COMMON) <= set(rows)
    for job_type, (_, fields) in BY_TYPE.items():
        own = _cells(rows[job_type.value])[2]
        named = set(re.findall(r"`([a-z][A-Za-z]+)`", own))
        assert named == set(fields), f"docs/API.md, {job_type.value}: {sorted(named ^ set(fields))}"
