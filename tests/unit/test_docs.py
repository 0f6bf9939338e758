"""The generated docs are what the code says: the API reference matches the served OpenAPI
document, and the troubleshooting page names every code the service can answer with."""

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
