"""Identity routes: OpenID Connect token/logout/certs/discovery, CSRF pair, user info and
password, serial."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from bucketjobs.api.body import (
    BodyTooLarge,
    BodyTooSlow,
    json_object,
    parse,
    read_limited,
    text_problem,
)
from bucketjobs.api.errors import ApiError
from bucketjobs.api.grants import grant_view
from bucketjobs.api.schemas import errors, request_body
from bucketjobs.api.security import authenticate, state_of
from bucketjobs.auth import grants, sessions
from bucketjobs.auth.caller import Caller
from bucketjobs.auth.csrf import SESSION_COOKIE, TOKEN_COOKIE
from bucketjobs.auth.logins import LoginRefused
from bucketjobs.auth.permissions import permissions_for
from bucketjobs.auth.tokens import InvalidToken
from bucketjobs.auth.users import (
    MAX_PASSWORD,
    UserError,
    get_user,
    new_password_hash,
    set_password,
)
from bucketjobs.metrics import LOGIN_FAILURES

oidc = APIRouter(prefix="/ui/auth/realms/{realm}", tags=["identity"])
mapi = APIRouter(tags=["identity"])


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _check_realm(request: Request, realm: str) -> None:
    if realm != state_of(request).realm:
        raise ApiError(404, f"realm {realm[:64]!r} not found")


MAX_FORM = 16 * 1024  # a token request is a few short fields


async def _form(request: Request) -> dict[str, str] | JSONResponse:
    """The form fields, or the OAuth error answer for a body that is too big or malformed."""
    try:
        raw = await read_limited(request, MAX_FORM)
        pairs = parse_qsl(
            raw.decode("ascii"), keep_blank_values=True, max_num_fields=16, errors="strict"
        )
    except BodyTooLarge as exc:
        return _oauth_error(413, "invalid_request", str(exc))
    except BodyTooSlow as exc:
        return _oauth_error(408, "invalid_request", str(exc))
    except (UnicodeDecodeError, ValueError):
        return _oauth_error(400, "invalid_request", "the body is not a valid form")
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            return _oauth_error(400, "invalid_request", f"{name[:32]!r} given twice")
        problem = text_problem(value)
        if problem:
            return _oauth_error(400, "invalid_request", f"{name[:32]!r} {problem}")
        form[name] = value
    return form


async def _client_form(request: Request, realm: str) -> dict[str, str] | JSONResponse:
    """The form of an OpenID Connect call from a known client, or the OAuth error answer."""
    _check_realm(request, realm)
    form = await _form(request)
    if not isinstance(form, JSONResponse) and (
        form.get("client_id", "") not in state_of(request).client_ids
    ):
        return _oauth_error(401, "unauthorized_client", "unknown client_id")
    return form


def _address(request: Request) -> str:
    return request.client.host if request.client else ""


@oidc.post(
    "/protocol/openid-connect/token",
    responses={401: {"description": "invalid_grant"}, 400: {"description": "invalid_request"}},
)
async def token(request: Request, realm: str) -> Any:
    """Password and refresh_token grants (form-encoded, Keycloak-compatible)."""
    state = state_of(request)
    form = await _client_form(request, realm)
    if isinstance(form, JSONResponse):
        return form
    grant = form.get("grant_type")
    if grant == "password":
        password = form.get("password", "")
        if len(password) > MAX_PASSWORD:
            return _oauth_error(400, "invalid_request", "password too long")
        try:
            user = await state.logins.check(form.get("username", ""), password, _address(request))
        except LoginRefused as exc:
            LOGIN_FAILURES.inc()
            if not exc.retry_after:
                return _oauth_error(401, "invalid_grant", "Invalid user credentials")
            response = _oauth_error(429, "slow_down", "too many logins, retry later")
            response.headers["Retry-After"] = str(int(exc.retry_after) + 1)
            return response
        async with state.db.begin() as conn:
            session = await sessions.start(conn, user, state.clock.now(), state.tokens.refresh_ttl)
        return state.tokens.issue(session)
    if grant == "refresh_token":
        try:
            presented = state.tokens.verify_refresh(form.get("refresh_token", ""))
            async with state.db.begin() as conn:
                following = await sessions.rotate(
                    conn, presented, state.clock.now(), state.tokens.refresh_ttl
                )
            state.live_sessions.forget_user(presented.user_id)  # a reuse revokes them
        except InvalidToken:
            following = None
        if following is None:
            return _oauth_error(401, "invalid_grant", "Invalid refresh token")
        return state.tokens.issue(following)
    return _oauth_error(
        400, "unsupported_grant_type", "grant_type must be password or refresh_token"
    )


@oidc.post(
    "/protocol/openid-connect/logout",
    status_code=204,
    responses={400: {"description": "invalid_grant"}},
)
async def logout(request: Request, realm: str) -> Response:
    """End the session the refresh token belongs to (Keycloak's shape: 204, no body)."""
    state = state_of(request)
    form = await _client_form(request, realm)
    if isinstance(form, JSONResponse):
        return form
    try:
        session = state.tokens.verify_refresh(form.get("refresh_token", ""))
    except InvalidToken:
        return _oauth_error(400, "invalid_grant", "Invalid refresh token")
    async with state.db.begin() as conn:
        await sessions.end(conn, session)
    state.live_sessions.forget_user(session.user_id)  # other processes hear the trigger
    return Response(status_code=204)


@oidc.get("/protocol/openid-connect/certs")
async def certs(request: Request, realm: str) -> dict[str, Any]:
    """The public keys that sign access tokens (JWKS)."""
    _check_realm(request, realm)
    return state_of(request).tokens.jwks()


@oidc.get("/.well-known/openid-configuration")
async def discovery(request: Request, realm: str) -> dict[str, Any]:
    """The realm's OpenID Connect discovery document."""
    _check_realm(request, realm)
    here = str(request.base_url).rstrip("/") + f"/ui/auth/realms/{realm}"
    return {
        "issuer": state_of(request).tokens.issuer,
        "token_endpoint": f"{here}/protocol/openid-connect/token",
        "jwks_uri": f"{here}/protocol/openid-connect/certs",
        "grant_types_supported": ["password", "refresh_token"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "none"],
    }


@mapi.get("/csrf", responses=errors(500))
async def csrf(request: Request, response: Response) -> dict[str, Any]:
    """A fresh CSRF pair; the only MAPI route that needs no token."""
    state = state_of(request)
    session, token_value = state.csrf.issue()
    secure = state.secure_cookies or request.url.scheme == "https"
    response.set_cookie(TOKEN_COOKIE, token_value, path="/", samesite="strict", secure=secure)
    response.set_cookie(
        SESSION_COOKIE, session, path="/", samesite="strict", secure=secure, httponly=True
    )
    return {}


@mapi.post("/user/info", responses=errors(400, 401, 413, 500, 503))
async def user_info(request: Request, caller: Caller = Depends(authenticate)) -> dict[str, Any]:
    """The caller: id, display name and permissions (and their grants)."""
    await json_object(request)
    async with state_of(request).db.connect() as conn:
        user = await get_user(conn, caller.user_id)
        held = await grants.load(conn, caller.user_id)
    assert user is not None
    return {
        "id": {"id": user.id},
        "displayName": user.name,
        "roles": permissions_for(user.roles),
        "grants": [grant_view(user.id, g) for g in held],
    }


@mapi.post("/serial_number/get", responses=errors(400, 401, 413, 500, 503))
async def serial_number(request: Request, _: Caller = Depends(authenticate)) -> dict[str, Any]:
    """The installation's serial number."""
    await json_object(request)
    return {"value": state_of(request).serial}


class PasswordBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    currentPassword: StrictStr = Field(max_length=MAX_PASSWORD)
    newPassword: StrictStr = Field(min_length=1, max_length=MAX_PASSWORD)


@mapi.post(
    "/user/password",
    responses=errors(400, 401, 413, 429, 500, 503),
    openapi_extra=request_body(PasswordBody),
)
async def change_password(
    request: Request, caller: Caller = Depends(authenticate)
) -> dict[str, Any]:
    """[ext] The caller changes their own password; all their tokens stop working."""
    body = parse(PasswordBody, await json_object(request))
    state = state_of(request)
    try:
        await state.logins.check(caller.username, body.currentPassword, _address(request))
    except LoginRefused as exc:
        LOGIN_FAILURES.inc()
        if exc.retry_after:
            raise ApiError(429, "too many attempts, retry later") from None
        raise ApiError(400, "currentPassword is wrong") from None
    try:
        hashed = await asyncio.to_thread(new_password_hash, body.newPassword)
    except UserError as exc:
        raise ApiError(400, f"newPassword: {exc}") from None
    async with state.db.begin() as conn:
        await set_password(conn, caller.username, hashed)
    state.live_sessions.forget_user(caller.user_id)
    return {}
