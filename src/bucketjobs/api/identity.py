"""Identity routes: OpenID Connect token/certs/discovery, CSRF pair, user info, serial."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from bucketjobs.api.body import json_object
from bucketjobs.api.errors import ApiError
from bucketjobs.api.schemas import errors
from bucketjobs.api.security import authenticate, state_of
from bucketjobs.auth.caller import Caller
from bucketjobs.auth.csrf import SESSION_COOKIE, TOKEN_COOKIE
from bucketjobs.auth.passwords import verify_password
from bucketjobs.auth.permissions import permissions_for
from bucketjobs.auth.tokens import InvalidToken
from bucketjobs.auth.users import find_by_name, get_user

oidc = APIRouter(prefix="/ui/auth/realms/{realm}", tags=["identity"])
mapi = APIRouter(tags=["identity"])


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


def _check_realm(request: Request, realm: str) -> None:
    if realm != state_of(request).realm:
        raise ApiError(404, f"realm {realm!r} not found")


@oidc.post(
    "/protocol/openid-connect/token",
    responses={401: {"description": "invalid_grant"}, 400: {"description": "invalid_request"}},
)
async def token(request: Request, realm: str) -> Any:
    """Password and refresh_token grants (form-encoded, Keycloak-compatible)."""
    _check_realm(request, realm)
    state = state_of(request)
    raw = await request.body()
    if len(raw) > 64 * 1024:
        return _oauth_error(413, "invalid_request", "request too large")
    form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
    client_id = form.get("client_id", "")
    if client_id not in state.client_ids:
        return _oauth_error(401, "unauthorized_client", "unknown client_id")
    grant = form.get("grant_type")
    if grant == "password":
        username, password = form.get("username", ""), form.get("password", "")
        throttle = state.throttle
        wait = throttle.retry_after(username)
        if wait > 0:
            response = _oauth_error(429, "slow_down", "too many failed logins, retry later")
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        async with state.db.connect() as conn:
            user = await find_by_name(conn, username)
        ok = await asyncio.to_thread(
            verify_password, user.password_hash if user else None, password
        )
        if not ok or user is None:
            throttle.failed(username)
            return _oauth_error(401, "invalid_grant", "Invalid user credentials")
        throttle.succeeded(username)
        return state.tokens.issue(user.id, user.name)
    if grant == "refresh_token":
        try:
            user_id = state.tokens.verify_refresh(form.get("refresh_token", ""))
        except InvalidToken:
            return _oauth_error(401, "invalid_grant", "Invalid refresh token")
        async with state.db.connect() as conn:
            found = await get_user(conn, user_id)
        if found is None:
            return _oauth_error(401, "invalid_grant", "Invalid refresh token")
        return state.tokens.issue(found.id, found.name)
    return _oauth_error(
        400, "unsupported_grant_type", "grant_type must be password or refresh_token"
    )


@oidc.get("/protocol/openid-connect/certs")
async def certs(request: Request, realm: str) -> dict[str, Any]:
    _check_realm(request, realm)
    return state_of(request).tokens.jwks()


@oidc.get("/.well-known/openid-configuration")
async def discovery(request: Request, realm: str) -> dict[str, Any]:
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
    await json_object(request)
    async with state_of(request).db.connect() as conn:
        user = await get_user(conn, caller.user_id)
    assert user is not None
    return {"id": {"id": user.id}, "displayName": user.name, "roles": permissions_for(user.roles)}


@mapi.post("/serial_number/get", responses=errors(400, 401, 413, 500, 503))
async def serial_number(request: Request, _: Caller = Depends(authenticate)) -> dict[str, Any]:
    await json_object(request)
    return {"value": state_of(request).serial}
