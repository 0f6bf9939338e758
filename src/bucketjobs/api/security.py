"""Bearer-token authentication, CSRF on state-changing requests, permission checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import Request

from bucketjobs.api.errors import ApiError
from bucketjobs.api.state import ApiState
from bucketjobs.auth import sessions
from bucketjobs.auth.access import reaches_all
from bucketjobs.auth.caller import Caller
from bucketjobs.auth.csrf import HEADER, SESSION_COOKIE, TOKEN_COOKIE, CsrfError
from bucketjobs.auth.permissions import permissions_for
from bucketjobs.auth.tokens import InvalidToken
from bucketjobs.db.session import read

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def state_of(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


async def authenticate(request: Request) -> Caller:
    """The caller behind a valid bearer token, with CSRF checked for unsafe methods."""
    state = state_of(request)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing bearer token", "send Authorization: Bearer <access_token>")
    try:
        session = state.tokens.verify_access(token.strip())
    except InvalidToken as exc:
        raise ApiError(401, "invalid bearer token", str(exc)) from None
    if request.method not in SAFE_METHODS:
        try:
            state.csrf.verify(
                request.cookies.get(SESSION_COOKIE),
                request.cookies.get(TOKEN_COOKIE),
                request.headers.get(HEADER),
            )
        except CsrfError as exc:
            raise ApiError(401, "CSRF check failed", f"CSRF: {exc}") from None
    live = state.live_sessions
    user = live.get(session)
    if user is None:
        ticket = live.ticket()
        user = await read(state.reads, lambda conn: sessions.holder(conn, session))
        if user is not None:
            live.remember(session, user, ticket)
    if user is None:
        raise ApiError(401, "invalid bearer token", "the token's session has ended")
    return Caller(
        user.id, user.name, frozenset(permissions_for(user.roles)), reaches_all(user.roles)
    )


def require(*permissions: str) -> Callable[[Request], Awaitable[Caller]]:
    """A dependency: authenticated, and holding at least one of `permissions`."""

    async def check(request: Request) -> Caller:
        caller = await authenticate(request)
        if permissions and not any(caller.can(p) for p in permissions):
            raise ApiError(403, "permission denied", f"needs one of {', '.join(permissions)}")
        return caller

    return check
