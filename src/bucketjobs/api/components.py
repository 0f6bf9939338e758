"""`/mapi/v1/storage_component/*`: the stores jobs read from and replicate to (SPEC §5).

Credentials are write-only: stored encrypted (Fernet, key outside the database), never in
an answer or a log line. Exactly one component is primary — the store whose buckets jobs
act on; marking another primary moves the mark in the same transaction.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    field_validator,
)

from bucketjobs.api.body import json_object, parse
from bucketjobs.api.errors import ApiError
from bucketjobs.api.schemas import EmptyBody, IdRef, JsonInt, errors, request_body
from bucketjobs.api.security import require, state_of
from bucketjobs.auth import permissions as perm
from bucketjobs.jobs.model import INT32_MAX
from bucketjobs.jobs.params import BUCKET_PATTERN, valid_bucket_name
from bucketjobs.storage.component_service import (
    ComponentNotFound,
    ComponentRuleError,
    Credentials,
)

router = APIRouter(tags=["storage components"])
ERRORS = (400, 401, 403, 405, 413, 500, 503)
StorageType = Literal["GENERIC_S3", "AMAZON_S3", "HCP_S3"]
SECRET_FIELDS = ("accessKey", "secretKey")


# RFC 1123 host names: labels of 1-63 letters, digits, hyphens (not at either end) and
# underscores (seen in internal names), dot-separated, an optional final dot.
_DNS_NAME = re.compile(r"(?:(?!-)[A-Za-z0-9_-]{1,63}(?<!-)\.)*(?!-)[A-Za-z0-9_-]{1,63}(?<!-)\.?")


class ComponentConfig(BaseModel):
    """`storageComponentConfig`. Timeouts are in seconds."""

    model_config = ConfigDict(extra="forbid")
    label: StrictStr = Field(min_length=1, max_length=256)
    # A DNS name, an IPv4 address or an IPv6 address (brackets optional): never a URL.
    host: StrictStr = Field(min_length=1, max_length=253)
    port: JsonInt | None = Field(default=None, ge=1, le=65535)
    uriScheme: Literal["http", "https"] = "https"
    region: StrictStr = Field(default="us-east-1", min_length=1, max_length=64)
    bucket: StrictStr | None = Field(default=None, max_length=63, pattern=BUCKET_PATTERN)
    authType: Literal["V4"] = "V4"
    accessKey: StrictStr | None = Field(default=None, min_length=1, max_length=256)
    secretKey: StrictStr | None = Field(default=None, min_length=1, max_length=256)
    usePathStyleAlways: StrictBool = True
    maxConnections: JsonInt | None = Field(default=None, ge=1, le=1024)
    connectionTimeout: JsonInt | None = Field(default=None, ge=1, le=3600)
    socketTimeout: JsonInt | None = Field(default=None, ge=1, le=3600)
    caCertificate: StrictStr | None = Field(default=None, min_length=1, max_length=65536)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if _DNS_NAME.fullmatch(value):
            return value
        bracketed = value.startswith("[") and value.endswith("]")
        try:
            ipaddress.IPv6Address(value[1:-1] if bracketed else value)
        except ValueError:
            raise ValueError(
                "must be a host name (dot-separated labels of 1-63 letters, digits,"
                " hyphens) or an IP address, not a URL"
            ) from None
        return value


class CreateBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    storageType: StorageType
    storageComponentConfig: ComponentConfig
    primary: StrictBool = False


ComponentId = Annotated[JsonInt, Field(ge=1, le=INT32_MAX)]


class UpdateBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: ComponentId
    storageType: StorageType | None = None
    storageComponentConfig: ComponentConfig
    primary: StrictBool | None = None


class StateBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: ComponentId
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


def _config(config: ComponentConfig) -> dict[str, Any]:
    """The non-secret part of the config, as the service stores it."""
    if config.bucket is not None and not valid_bucket_name(config.bucket):
        raise ApiError(400, f"storageComponentConfig.bucket {config.bucket!r} is not valid")
    return config.model_dump(exclude={*SECRET_FIELDS}, exclude_none=True)


@contextlib.contextmanager
def _answers() -> Iterator[None]:
    """The service's refusals as MAPI errors."""
    try:
        yield
    except ComponentNotFound as exc:
        raise ApiError(404, str(exc), code="NOT_FOUND") from None
    except ComponentRuleError as exc:
        raise ApiError(400, str(exc)) from None


@router.post(
    "/storage_component/create",
    response_model=ComponentView,
    responses=errors(*ERRORS),
    openapi_extra=request_body(CreateBody),
)
async def create_component(
    request: Request, _: Any = Depends(require(perm.STORAGE_ADMIN))
) -> dict[str, Any]:
    """[ext] Add a storage component: an S3 endpoint with its credentials."""
    body = parse(CreateBody, await json_object(request))
    config = body.storageComponentConfig
    if config.accessKey is None or config.secretKey is None:
        raise ApiError(400, "storageComponentConfig.accessKey and secretKey are required")
    credentials = Credentials(config.accessKey, config.secretKey)
    with _answers():
        row = await state_of(request).components.create(
            body.storageType, _config(config), credentials, body.primary
        )
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
    """[ext] Every storage component, credentials masked."""
    await json_object(request)
    return [view(row) for row in await state_of(request).components.list()]


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
    config = body.storageComponentConfig
    with _answers():
        row = await state_of(request).components.update(
            body.id, _config(config), storage_type=body.storageType,
            access_key=config.accessKey, secret_key=config.secretKey, primary=body.primary,
        )  # fmt: skip
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
    """[ext] Mark a component ACTIVE or INACTIVE."""
    body = parse(StateBody, await json_object(request))
    with _answers():
        return view(await state_of(request).components.set_state(body.id, body.state))


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
    components = state_of(request).components
    with _answers():
        row = await components.get(body.id)
        result = await components.test(row)
    return {
        "id": row.id,
        "storageType": row.storage_type,
        "verified": result.verified,
        "httpStatus": result.http_status,
        "errorCode": result.error_code,
        "errorMessage": result.error_message,
    }
