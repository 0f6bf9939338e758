"""`/mapi/v1/jobs/*`: create, list, status, cancel, failures, affected."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter, Depends, Request

from bucketjobs.api.body import json_object, parse
from bucketjobs.api.errors import ApiError
from bucketjobs.api.schemas import (
    AffectedResponse,
    CreateJobBody,
    CreateJobResponse,
    FailuresResponse,
    JobIdBody,
    JobPageBody,
    JobStatusResponse,
    ListJobsBody,
    ListJobsResponse,
    errors,
    request_body,
)
from bucketjobs.api.security import require, state_of
from bucketjobs.auth import permissions as perm
from bucketjobs.auth.caller import Caller
from bucketjobs.jobs.service import ListQuery, check_job_id
from bucketjobs.jobs.wire import affected_view, failure_view, job_view

router = APIRouter(tags=["jobs"])
COMMON_ERRORS = (400, 401, 403, 405, 413, 500, 503)


@router.post(
    "/jobs/create",
    response_model=CreateJobResponse,
    responses=errors(*COMMON_ERRORS),
    openapi_extra=request_body(CreateJobBody),
)
async def create_job(
    request: Request, caller: Caller = Depends(require(perm.JOBS_CREATE))
) -> dict[str, Any]:
    """Start a job over a bucket; answers with it at once (EXAMINING)."""
    body = parse(CreateJobBody, await json_object(request))
    state = state_of(request)
    storage = request.app.state.storage
    row = await state.jobs.create(
        caller,
        body.jobType,
        body.bucketName,
        body.jobParams,
        component_id=await storage.primary_id(),
        storage=storage,
        idempotency_key=request.headers.get("idempotency-key"),
    )
    return {"jobStatus": job_view(row)}


@router.post(
    "/jobs/list",
    response_model=ListJobsResponse,
    response_model_exclude_unset=True,
    responses=errors(*COMMON_ERRORS),
    openapi_extra=request_body(ListJobsBody),
)
async def list_jobs(
    request: Request, caller: Caller = Depends(require(perm.JOBS_LIST))
) -> dict[str, Any]:
    """The jobs the caller may see, newest first, filtered and paged."""
    body = parse(ListJobsBody, await json_object(request))
    query = ListQuery(
        bucket_name=body.bucketName,
        user_id=body.userId.id if body.userId else None,
        job_type=body.jobType,
        job_states=tuple(body.jobStates) if body.jobStates else None,
        page_size=100 if body.pageSize is None else body.pageSize,
        page_token=body.pageToken,
    )
    rows, token = await state_of(request).jobs.list(caller, query)
    result: dict[str, Any] = {"jobs": [job_view(row) for row in rows]}
    if token:
        result["pageToken"] = token
    return result


def _job_id(body: JobIdBody | JobPageBody) -> int:
    try:
        return check_job_id(body.jobId.id)
    except Exception as exc:
        raise ApiError(400, str(exc)) from None


@router.post(
    "/jobs/status",
    response_model=JobStatusResponse,
    responses=errors(404, *COMMON_ERRORS),
    openapi_extra=request_body(JobIdBody),
)
async def job_status(
    request: Request, caller: Caller = Depends(require(perm.JOBS_STATUS))
) -> dict[str, Any]:
    """One job: state, counters, result."""
    job_id = _job_id(parse(JobIdBody, await json_object(request)))
    return {"status": job_view(await state_of(request).jobs.status(caller, job_id))}


@router.post(
    "/jobs/cancel",
    response_model=JobStatusResponse,
    responses=errors(404, *COMMON_ERRORS),
    openapi_extra=request_body(JobIdBody),
)
async def cancel_job(
    request: Request,
    caller: Caller = Depends(require(perm.JOBS_CANCEL, perm.JOBS_ADMIN_CANCEL)),
) -> dict[str, Any]:
    """Stop a job: no object operation starts after the answer; counters stay exact."""
    job_id = _job_id(parse(JobIdBody, await json_object(request)))
    return {"status": job_view(await state_of(request).jobs.cancel(caller, job_id))}


@router.post(
    "/jobs/failures",
    response_model=FailuresResponse,
    response_model_exclude_unset=True,
    responses=errors(404, *COMMON_ERRORS),
    openapi_extra=request_body(JobPageBody),
)
async def job_failures(
    request: Request, caller: Caller = Depends(require(perm.JOBS_STATUS))
) -> dict[str, Any]:
    """[ext] The objects a job failed on, in key order, paged."""
    service = state_of(request).jobs
    return await _job_page(request, caller, service.failures, "failures", failure_view)


@router.post(
    "/jobs/affected",
    response_model=AffectedResponse,
    response_model_exclude_unset=True,
    responses=errors(404, *COMMON_ERRORS),
    openapi_extra=request_body(JobPageBody),
)
async def job_affected(
    request: Request, caller: Caller = Depends(require(perm.JOBS_STATUS))
) -> dict[str, Any]:
    """A dry run's preview: the first 1,000 objects (in key order) it would act on."""
    service = state_of(request).jobs
    return await _job_page(request, caller, service.affected, "affected", affected_view)


async def _job_page(
    request: Request,
    caller: Caller,
    fetch: Callable[..., Awaitable[tuple[Sequence[Any], str | None]]],
    name: str,
    view: Callable[[Any], dict[str, Any]],
) -> dict[str, Any]:
    """One page of a job's rows (`jobs/failures`, `jobs/affected`) as `{name: [...]}`."""
    body = parse(JobPageBody, await json_object(request))
    page_size = 100 if body.pageSize is None else body.pageSize
    rows, token = await fetch(caller, _job_id(body), page_size, body.pageToken)
    result: dict[str, Any] = {name: [view(row) for row in rows]}
    if token:
        result["pageToken"] = token
    return result
