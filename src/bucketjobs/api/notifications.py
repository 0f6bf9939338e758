"""`/mapi/v1/notification/*` [ext]: where re-sent events go (SPEC §4).

Targets (`target/create|list|delete`) are changed with `mapi:storage:admin` and read by any
user; secrets in their configs are write-only, shown as `***`. Bindings (`bucket/set|get`)
say which targets a bucket's events go to; reading them needs READ access to the bucket,
setting them `mapi:storage:admin`. Rules and statements live in notify/.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from bucketjobs.api.body import json_object, parse
from bucketjobs.api.errors import ApiError
from bucketjobs.api.schemas import BucketName, EmptyBody, errors, request_body
from bucketjobs.api.security import authenticate, require, state_of
from bucketjobs.auth import grants
from bucketjobs.auth import permissions as perm
from bucketjobs.auth.access import Access
from bucketjobs.auth.caller import Caller
from bucketjobs.notify.config import Binding, ConfigError, TargetId, TargetSpec, checked_config
from bucketjobs.notify.senders import probe
from bucketjobs.notify.service import TargetConflict, TargetNotFound, binding_view, view

router = APIRouter(tags=["notifications"])
ERRORS = (400, 401, 403, 405, 413, 500, 503)
MAX_BINDINGS = 64


class TargetIdBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: TargetId


class SetBindingsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    bucketName: BucketName
    bindings: list[Binding] = Field(max_length=MAX_BINDINGS)


class GetBindingsBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    bucketName: BucketName


@contextlib.contextmanager
def _answers() -> Iterator[None]:
    """The service's refusals as MAPI errors."""
    try:
        yield
    except TargetNotFound as exc:
        raise ApiError(404, str(exc), code="NOT_FOUND") from None
    except TargetConflict as exc:
        raise ApiError(409, str(exc)) from None
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


@router.post(
    "/notification/target/create",
    responses=errors(409, *ERRORS),
    openapi_extra=request_body(TargetSpec),
)
async def create_target(
    request: Request, _: Any = Depends(require(perm.STORAGE_ADMIN))
) -> dict[str, Any]:
    """[ext] Add a notification target (secrets are encrypted at rest, never returned)."""
    body = parse(TargetSpec, await json_object(request))
    try:
        config = checked_config(body.type, body.config)
    except ConfigError as exc:
        raise ApiError(400, str(exc)) from None
    with _answers():
        row = await state_of(request).notifications.create(body.name, body.type, config)
    return {"target": view(row)}


@router.post(
    "/notification/target/list",
    responses=errors(*ERRORS),
    openapi_extra=request_body(EmptyBody),
)
async def list_targets(request: Request, _: Caller = Depends(authenticate)) -> dict[str, Any]:
    """[ext] The notification targets the caller may see, secrets masked."""
    await json_object(request)
    return {"targets": [view(row) for row in await state_of(request).notifications.targets()]}


@router.post(
    "/notification/target/delete",
    responses=errors(404, 409, *ERRORS),
    openapi_extra=request_body(TargetIdBody),
)
async def delete_target(
    request: Request, _: Any = Depends(require(perm.STORAGE_ADMIN))
) -> dict[str, Any]:
    """[ext] Remove a target no bucket is bound to (409 while one is)."""
    body = parse(TargetIdBody, await json_object(request))
    with _answers():
        await state_of(request).notifications.delete(int(body.id))
    return {}


@router.post(
    "/notification/target/test",
    responses=errors(404, *ERRORS),
    openapi_extra=request_body(TargetIdBody),
)
async def test_target(
    request: Request, _: Any = Depends(require(perm.STORAGE_ADMIN))
) -> dict[str, Any]:
    """Connect to the target as a job would (without sending) and say what answered."""
    body = parse(TargetIdBody, await json_object(request))
    with _answers():
        target = await state_of(request).notifications.target(int(body.id))
    problem = await probe(target)
    return {"id": body.id, "name": target.name, "type": target.type.value,
            "reachable": problem is None, "error": problem}  # fmt: skip


@router.post(
    "/notification/bucket/set",
    responses=errors(404, 409, *ERRORS),
    openapi_extra=request_body(SetBindingsBody),
)
async def set_bindings(
    request: Request, _: Any = Depends(require(perm.STORAGE_ADMIN))
) -> dict[str, Any]:
    """[ext] Replace which targets receive which events of a bucket."""
    body = parse(SetBindingsBody, await json_object(request))
    component_id = await request.app.state.storage.primary_id()
    with _answers():
        rows = await state_of(request).notifications.set_bindings(
            component_id, body.bucketName, body.bindings
        )
    return {"bindings": [binding_view(row) for row in rows]}


@router.post(
    "/notification/bucket/get",
    responses=errors(*ERRORS),
    openapi_extra=request_body(GetBindingsBody),
)
async def get_bindings(request: Request, caller: Caller = Depends(authenticate)) -> dict[str, Any]:
    """[ext] A bucket's notification bindings."""
    body = parse(GetBindingsBody, await json_object(request))
    component_id = await request.app.state.storage.primary_id()
    state = state_of(request)
    async with state.db.connect() as conn:
        if await grants.reaches(conn, caller, [(component_id, body.bucketName, Access.READ)]):
            raise ApiError(403, f"no READ access to bucket {body.bucketName!r}")
    rows = await state.notifications.bindings(component_id, body.bucketName)
    return {"bindings": [binding_view(row) for row in rows]}
