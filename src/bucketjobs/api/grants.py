"""`/mapi/v1/user/grants/*` [ext]: which buckets a `user` reaches (SPEC §2 "Bucket access").

Managed with `mapi:users:admin`; the rules are in `auth/access.py`, the rows in
`auth/grants.py`. A user reads their own grants through `user/info`.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictStr
from sqlalchemy.ext.asyncio import AsyncConnection

from bucketjobs.api.body import json_object, parse
from bucketjobs.api.errors import ApiError
from bucketjobs.api.schemas import IdRef, JsonInt, errors, request_body
from bucketjobs.api.security import require, state_of
from bucketjobs.auth import grants
from bucketjobs.auth import permissions as perm
from bucketjobs.auth.access import MAX_GRANTS, Access, Grant, GrantError, check_pattern
from bucketjobs.auth.caller import Caller
from bucketjobs.auth.users import get_user
from bucketjobs.jobs.model import INT32_MAX

router = APIRouter(tags=["users"])
ERRORS = (400, 401, 403, 404, 405, 413, 500, 503)


class GrantBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    component: JsonInt | None = Field(
        default=None, ge=1, le=INT32_MAX, description="storage component id; default the primary"
    )
    bucketPattern: StrictStr = Field(
        min_length=1, max_length=63, description="a bucket name, or a prefix ending in '*'"
    )
    access: Literal["READ", "WRITE"] = "READ"


class UserRefBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    userId: IdRef


class SetGrantsBody(UserRefBody):
    grants: list[GrantBody] = Field(max_length=MAX_GRANTS)


def grant_view(user_id: int, grant: Grant) -> dict[str, Any]:
    return {
        "userId": {"id": user_id},
        "component": grant.component_id,
        "bucketPattern": grant.bucket_pattern,
        "access": grant.access.value,
    }


async def _existing_user(conn: AsyncConnection, ref: IdRef) -> int:
    if await get_user(conn, ref.id) is None:
        raise ApiError(404, f"user {ref.id} not found", code="NOT_FOUND")
    return ref.id


@router.post(
    "/user/grants/set", responses=errors(*ERRORS), openapi_extra=request_body(SetGrantsBody)
)
async def set_grants(
    request: Request, _: Caller = Depends(require(perm.USERS_ADMIN))
) -> dict[str, Any]:
    """Replace the user's whole set of grants."""
    body = parse(SetGrantsBody, await json_object(request))
    async with state_of(request).db.begin() as conn:
        user_id = await _existing_user(conn, body.userId)
        try:
            primary = await grants.primary_component(conn)
            wanted = [
                Grant(g.component or primary, check_pattern(g.bucketPattern), Access(g.access))
                for g in body.grants
            ]
            stored = await grants.replace(conn, user_id, wanted)
        except GrantError as exc:
            raise ApiError(400, str(exc)) from None
    return {"grants": [grant_view(user_id, g) for g in stored]}


@router.post("/user/grants/get", responses=errors(*ERRORS), openapi_extra=request_body(UserRefBody))
async def get_grants(
    request: Request, _: Caller = Depends(require(perm.USERS_ADMIN))
) -> dict[str, Any]:
    """[ext] A user's bucket grants."""
    body = parse(UserRefBody, await json_object(request))
    async with state_of(request).db.connect() as conn:
        user_id = await _existing_user(conn, body.userId)
        held = await grants.load(conn, user_id)
    return {"grants": [grant_view(user_id, g) for g in held]}
