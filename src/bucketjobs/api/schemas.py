"""Request and response shapes, for validation and for the served OpenAPI document."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, StrictStr

from bucketjobs.api.errors import ERROR_SCHEMA
from bucketjobs.jobs.model import INT32_MAX, INT32_MIN, JobState, JobType
from bucketjobs.jobs.params import (
    BUCKET_PATTERN,
    BY_TYPE,
    COMMON,
    HELP,
    MAX_ENTRIES,
    MAX_VALUE_LEN,
)
from bucketjobs.jobs.wire import AffectedObject, Job, ObjectFailure
from bucketjobs.ops.registry import OPERATIONS


def _integral(value: Any) -> Any:
    """JSON has one number type: 5.0 is the integer 5 (JSON Schema agrees); 5.5 is not."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# An integer field of a request: an int, or a float with no fraction; never a bool or text.
JsonInt = Annotated[StrictInt, BeforeValidator(_integral)]


class EmptyBody(BaseModel):
    """A body with nothing in it that matters (`{}`); anything else is ignored."""

    model_config = ConfigDict(extra="ignore")


class IdRef(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: JsonInt = Field(ge=INT32_MIN, le=INT32_MAX)


BucketName = Annotated[StrictStr, Field(min_length=3, max_length=63, pattern=BUCKET_PATTERN)]
PageSize = Annotated[JsonInt, Field(ge=1, le=1000)]


def _job_params_schema(kind: JobType) -> dict[str, Any]:
    """The keys a job type takes (jobs/params.py): scalars, nothing else."""
    _, fields = BY_TYPE[kind]
    value = {"type": ["string", "number", "boolean"], "maxLength": MAX_VALUE_LEN}
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": {key: {**value, "description": HELP[key]} for key in [*COMMON, *fields]},
    }


def _per_type(schema: dict[str, Any]) -> None:
    schema["oneOf"] = [
        {
            "properties": {
                "jobType": {"const": kind.value},
                "jobParams": {"anyOf": [_job_params_schema(kind), {"type": "null"}]},
            }
        }
        for kind in JobType
        if kind in OPERATIONS
    ]


class CreateJobBody(BaseModel):
    """jobType, bucketName and jobParams are checked by the job service, whose messages name
    the rule broken; the schema states the same rules for clients and fuzzers (the keys of
    jobParams per jobType in `oneOf`)."""

    model_config = ConfigDict(extra="ignore", json_schema_extra=_per_type)
    jobType: StrictStr = Field(
        json_schema_extra={"enum": [t.value for t in JobType if t in OPERATIONS]}
    )
    bucketName: StrictStr = Field(
        json_schema_extra={"minLength": 3, "maxLength": 63, "pattern": BUCKET_PATTERN}
    )
    jobParams: dict[str, Any] | None = Field(
        default=None,
        description="per jobType (SPEC §4); values are strings, numbers or booleans",
        json_schema_extra={"maxProperties": MAX_ENTRIES},
    )


class ListJobsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    bucketName: BucketName | None = None
    userId: IdRef | None = None
    pageSize: PageSize | None = None
    pageToken: StrictStr | None = Field(default=None, max_length=1024)
    jobType: JobType | None = None
    jobStates: list[JobState] | None = None


class JobIdBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    jobId: IdRef


class JobPageBody(BaseModel):
    """A page of one job's objects (`jobs/failures`, `jobs/affected`)."""

    model_config = ConfigDict(extra="ignore")
    jobId: IdRef
    pageSize: PageSize | None = None
    pageToken: StrictStr | None = Field(default=None, max_length=1024)


class BucketBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    bucketName: BucketName


class CreateJobResponse(BaseModel):
    jobStatus: Job


class JobStatusResponse(BaseModel):
    status: Job


class FailuresResponse(BaseModel):
    failures: list[ObjectFailure]
    pageToken: str | None = Field(default=None, description="present only when more exist")


class AffectedResponse(BaseModel):
    affected: list[AffectedObject]
    pageToken: str | None = Field(default=None, description="present only when more exist")


class ListJobsResponse(BaseModel):
    jobs: list[Job]
    pageToken: str | None = Field(default=None, description="present only when more exist")


# Schemas referenced by request bodies; app.py adds them to the document's components.
REQUEST_SCHEMAS: dict[str, Any] = {}


def request_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON body that we parse ourselves (any Content-Type)."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    REQUEST_SCHEMAS.update(schema.pop("$defs", {}))
    return {
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": schema}},
        }
    }


ERROR_STATUSES = {
    400: "invalid request",
    401: "missing or invalid token, or CSRF failure",
    403: "permission denied",
    404: "not found",
    405: "method not allowed",
    409: "conflicts with what exists (a taken name, a target still bound)",
    413: "body too large",
    429: "too many requests",
    500: "internal error",
    503: "database unavailable",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for the error body."""
    return {
        status: {
            "description": ERROR_STATUSES[status],
            "content": {"application/json": {"schema": ERROR_SCHEMA}},
        }
        for status in statuses
    }


OAUTH_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "error_description"],
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
}


def complete_responses(document: dict[str, Any]) -> None:
    """Describe the answers every route can give, so the document matches the wire.

    Every route can answer 404 (unknown path parameter values), 405 and 500; routes with a
    body 413; routes reading the database 503. We never answer 422 (bad input is a 400).
    The OpenID Connect routes answer in OAuth2's error shape, not the MAPI one.
    """
    for path, methods in document.get("paths", {}).items():
        oauth = path.startswith("/ui/auth/")
        body_schema = OAUTH_ERROR_SCHEMA if oauth else ERROR_SCHEMA
        for method, operation in methods.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            wanted = [404, 405, 500] + ([413] if method == "post" else [])
            if path != "/metrics":
                wanted.append(503)
            if oauth and method == "post":
                wanted += [400, 401, 429]
            for status in wanted:
                entry = responses.setdefault(str(status), {"description": ERROR_STATUSES[status]})
                if status >= 400 and "content" not in entry:
                    entry["content"] = {"application/json": {"schema": body_schema}}
            if oauth:  # realm and route errors on these paths use the MAPI body
                responses["404"]["content"]["application/json"]["schema"] = {
                    "oneOf": [ERROR_SCHEMA, OAUTH_ERROR_SCHEMA]
                }


def link_jobs(document: dict[str, Any], prefixes: tuple[str, ...]) -> None:
    """OpenAPI links from jobs/create to what takes its job id (status, cancel, failures), so
    clients and schema-driven fuzzers can follow a job through its life."""
    paths = document.get("paths", {})
    for prefix in prefixes:
        created = paths.get(f"{prefix}/jobs/create", {}).get("post")
        if created is None:
            continue
        links = {}
        for name, route in (("Status", "status"), ("Cancel", "cancel"), ("Failures", "failures")):
            target = paths.get(f"{prefix}/jobs/{route}", {}).get("post")
            if target is not None:
                links[name] = {
                    "operationId": target["operationId"],
                    "requestBody": {"jobId": {"id": "$response.body#/jobStatus/jobId/id"}},
                }
        created["responses"]["200"]["links"] = links
