"""The Python SDK for the jobs part of the VSP One Object Management API.

    from bucketjobs.client import Client

    with Client("http://127.0.0.1:8080") as api:
        api.login("admin", password)
        job = api.create("METRIC_RECONCILIATION", "photos")
        print(api.status(job.jobId.id).jobState)

`AsyncClient` has the same calls, awaited. Errors raise MapiError with the API's `code`.
"""

from bucketjobs.client.aio import AsyncClient
from bucketjobs.client.errors import MapiError, NotLoggedIn
from bucketjobs.client.sync import Client
from bucketjobs.jobs.model import JobState, JobType
from bucketjobs.jobs.wire import Job, JobStats, ObjectFailure

__all__ = [
    "AsyncClient",
    "Client",
    "Job",
    "JobState",
    "JobStats",
    "JobType",
    "MapiError",
    "NotLoggedIn",
    "ObjectFailure",
]
