"""`/mapi/v1/storage_component/*`: the stores jobs read from and replicate to (SPEC §5).

Credentials are write-only: stored encrypted (Fernet, key outside the database), never in
an answer or a log line. Exactly one component is primary — the store whose buckets jobs
act on; marking another primary moves the mark in the same transaction.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr
from sqlalchemy import select, update

from bucketjobs.api.body import json_object, parse
from bucketjobs.api.errors import ApiError
from bucketjobs.api.schemas import IdRef, errors, request_body
from bucketjobs.api.security import require, state_of
from bucketjobs.auth import permissions as perm
from bucketjobs.db.models import storage_components
from bucketjobs.jobs.params import valid_bucket_name
from bucketjobs.storage.components import decrypt, detect_listing_order
from bucketjobs.storage.endpoint import DEFAULT_PORTS, Endpoint, tls_context
from bucketjobs.storage.errors import StorageError
from bucketjobs.storage.http import S3Http

router = APIRouter(tags=["storage components"])
ERRORS = (400, 401, 403, 405, 413, 500, 503)
StorageType = Literal["GENERIC_S3", "AMAZON_S3", "HCP_S3"]
SECRET_FIELDS = ("accessKey", "secretKey")


class ComponentConfig(BaseModel):
    """`storageComponentConfig`. Timeouts are in seconds."""

    model_config = ConfigDict(extra="forbid")
    label: StrictStr = Field(min_length=1, max_length=256)
    # A DNS name or an IP address (IPv6 with or without brackets): never a URL or a path.
    host: StrictStr = Field(
        min_length=1, max_length=253, pattern=r"^([A-Za-z0-9_.-]+|\[?[0-9A-Fa-f:.]+\]?)$"
    )
    port: StrictInt | None = Field(default=None, ge=1, le=65535)
    uriScheme: Literal["http", "https"] = "https"
    region: StrictStr = Field(default="us-east-1", min_length=1, max_length=64)
    bucket: StrictStr | None = None
    authType: Literal["V4"] = "V4"
    accessKey: StrictStr | None = Field(default=None, min_length=1, max_length=256)
    secretKey: StrictStr | None = Field(default=None, min_length=1, max_length=256)
    usePathStyleAlways: StrictBool = True
    maxConnections: StrictInt | None = Field(default=None, ge=1, le=1024)
    connectionTimeout: StrictInt | None = Field(default=None, ge=1, le=3600)
    socketTimeout: StrictInt | None = Field(default=None, ge=1, le=3600)
    caCertificate: StrictStr | None = Field(default=None, min_length=1, max_length=65536)


class CreateBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    storageType: StorageType
    storageComponentConfig: ComponentConfig
    primary: StrictBool = False


class UpdateBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: StrictInt
    storageType: StorageType | None = None
    storageComponentConfig: ComponentConfig
    primary: StrictBool | None = None


class EmptyBody(BaseModel):
    model_config = ConfigDict(extra="ignore")


class StateBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: StrictInt
    state: Literal["ACTIVE", "INACTIVE"]


class ComponentView(BaseModel):
    id: int
    storageType: str
    storageComponentConfig: dict[str, Any]
    state: str
    primary: bool


class TestResult(BaseModel):
    id: int
    storageType: str
    verified: bool
    httpStatus: int | None
    errorCode: str | None
    errorMessage: str | None


def view(row: Any) -> dict[str, Any]:
    config = {k: v for k, v in row.config.items() if k not in SECRET_FIELDS}
    return {
        "id": row.id,
        "storageType": row.storage_type,
        "storageComponentConfig": config,
        "state": row.state,
        "primary": row.is_primary,
    }


async def _stored_config(config: ComponentConfig) -> dict[str, Any]:
    """The non-secret config as stored, with the port defaulted and the listing order found."""
    if config.bucket is not None and not valid_bucket_name(config.bucket):
        raise ApiError(400, f"storageComponentConfig.bucket {config.bucket!r} is not valid")
    if config.caCertificate is not None:
        if config.uriScheme != "https":
            raise ApiError(400, "storageComponentConfig.caCertificate needs uriScheme https")
        try:
            tls_context(config.caCertificate)
        except ValueError as exc:
            raise ApiError(400, f"storageComponentConfig.caCertificate is {exc}") from None
    stored = config.model_dump(exclude={*SECRET_FIELDS}, exclude_none=True)
    stored.setdefault("port", DEFAULT_PORTS[config.uriScheme])
    endpoint = Endpoint(config.uriScheme, config.host.strip("[]"), stored["port"]).url
    stored["listingOrder"] = await asyncio.to_thread(
        detect_listing_order, endpoint, config.caCertificate
    )
    return stored


async def _row(conn: Any, component_id: int) -> Any:
    row = (
        await conn.execute(
            select(storage_components).where(storage_components.c.id == component_id)
        )
    ).first()
    if row is None:
        raise ApiError(404, f"storage component {component_id} not found", code="NOT_FOUND")
    return row


async def _update(conn: Any, component_id: int, values: dict[str, Any]) -> Any:
    table = storage_components
    statement = update(table).where(table.c.id == component_id).values(values).returning(table)
    return (await conn.execute(statement)).one()


@router.post(
    "/storage_component/create",
    response_model=ComponentView,
    responses=errors(*ERRORS),
    openapi_extra=request_body(CreateBody),
)
async def create_component(
    request: Request, _: Any = Depends(require(perm.STORAGE_ADMIN))
) -> dict[str, Any]:
    body = parse(CreateBody, await json_object(request))
    config = body.storageComponentConfig
    if config.accessKey is None or config.secretKey is None:
        raise ApiError(400, "storageComponentConfig.accessKey and secretKey are required")
    state = state_of(request)
    stored = await _stored_config(config)
    async with state.db.begin() as conn:
        if body.primary:
            await conn.execute(update(storage_components).values(is_primary=False))
        row = (
            await conn.execute(
                storage_components.insert()
                .values(
                    storage_type=body.storageType,
                    config=stored,
                    access_key_enc=state.fernet.encrypt(config.accessKey.encode()).decode(),
                    secret_key_enc=state.fernet.encrypt(config.secretKey.encode()).decode(),
                    is_primary=body.primary,
                    state="ACTIVE",
                )
                .returning(storage_components)
            )
        ).one()
    if body.primary:
        request.app.state.storage.forget()
    return view(row)


@router.post(
    "/storage_component/list",
    response_model=list[ComponentView],
    responses=errors(*ERRORS),
    openapi_extra=request_body(EmptyBody),
)
async def list_components(
    request: Request, _: Any = Depends(require(perm.STORAGE_ADMIN))
) -> list[dict[str, Any]]:
    await json_object(request)
    async with state_of(request).db.connect() as conn:
        rows = await conn.execute(select(storage_components).order_by(storage_components.c.id))
        return [view(row) for row in rows]


@router.post(
    "/storage_component/update",
    response_model=ComponentView,
    responses=errors(404, *ERRORS),
    openapi_extra=request_body(UpdateBody),
)
async def update_component(
    request: Request, _: Any = Depends(require(perm.STORAGE_ADMIN))
) -> dict[str, Any]:
    """Replace the config; credentials left out are kept."""
    body = parse(UpdateBody, await json_object(request))
    state = state_of(request)
    config = body.storageComponentConfig
    stored = await _stored_config(config)
    async with state.db.begin() as conn:
        current = await _row(conn, body.id)
        if body.primary is False and current.is_primary:
            raise ApiError(400, "mark another component primary instead: one must be primary")
        if body.primary and current.state != "ACTIVE":
            raise ApiError(400, f"storage component {body.id} is INACTIVE and cannot be primary")
        values: dict[str, Any] = {"config": stored}
        if body.storageType is not None:
            values["storage_type"] = body.storageType
        if config.accessKey is not None:
            values["access_key_enc"] = state.fernet.encrypt(config.accessKey.encode()).decode()
        if config.secretKey is not None:
            values["secret_key_enc"] = state.fernet.encrypt(config.secretKey.encode()).decode()
        if body.primary:
            await conn.execute(update(storage_components).values(is_primary=False))
            values["is_primary"] = True
        row = await _update(conn, body.id, values)
    request.app.state.storage.forget()
    return view(row)


@router.post(
    "/storage_component/update_state",
    response_model=ComponentView,
    responses=errors(404, *ERRORS),
    openapi_extra=request_body(StateBody),
)
async def update_component_state(
    request: Request, _: Any = Depends(require(perm.STORAGE_ADMIN))
) -> dict[str, Any]:
    body = parse(StateBody, await json_object(request))
    async with state_of(request).db.begin() as conn:
        current = await _row(conn, body.id)
        if body.state == "INACTIVE" and current.is_primary:
            raise ApiError(400, "the primary component cannot be made INACTIVE")
        row = await _update(conn, body.id, {"state": body.state})
    return view(row)


@router.post(
    "/storage_component/test",
    response_model=TestResult,
    responses=errors(404, *ERRORS),
    openapi_extra=request_body(IdRef),
)
async def test_component(
    request: Request, _: Any = Depends(require(perm.STORAGE_ADMIN))
) -> dict[str, Any]:
    """Real requests: list the buckets (endpoint and credentials), then HEAD the configured
    bucket if there is one. The first failure is reported."""
    body = parse(IdRef, await json_object(request))
    state = state_of(request)
    async with state.db.connect() as conn:
        row = await _row(conn, body.id)
    component = decrypt(row, state.fernet)
    result: dict[str, Any] = {
        "id": row.id,
        "storageType": row.storage_type,
        "verified": True,
        "httpStatus": 200,
        "errorCode": None,
        "errorMessage": None,
    }
    http = S3Http(component, 2)
    try:
        await asyncio.wait_for(http.request("GET", ""), 30)
        if component.config.get("bucket"):
            await asyncio.wait_for(http.request("HEAD", component.config["bucket"]), 30)
    except StorageError as exc:
        result.update(
            verified=False, httpStatus=exc.http_status, errorCode=exc.code, errorMessage=exc.message
        )
    except TimeoutError:
        result.update(verified=False, httpStatus=None, errorCode="Timeout",
                      errorMessage="no answer within 30 s")  # fmt: skip
    finally:
        await http.close()
    return result
