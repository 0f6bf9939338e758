"""Request bodies: read to a limit, then JSON whatever the Content-Type says, objects only.

The reference declares `*/*` and its own curl examples send JSON as form content, so the
Content-Type header is ignored on purpose. Every body is counted as it streams in and
reading stops at the limit, before any authentication or parsing.

Strings anywhere in the document are checked once here: PostgreSQL text cannot hold NUL and
no encoder takes a lone surrogate, so either is a 400 naming the field, not a 500 later.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from bucketjobs.api.errors import ApiError

MAX_BODY = 1024 * 1024
MAX_DEPTH = 32
BODY_TIMEOUT = 30.0  # seconds for a whole body: a trickling client does not hold a task
M = TypeVar("M", bound=BaseModel)


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes")


class BodyTooSlow(Exception):
    def __init__(self) -> None:
        super().__init__(f"request body not received within {BODY_TIMEOUT:g} s")


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, or BodyTooLarge as soon as the declared or streamed size passes `limit`."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(BODY_TIMEOUT):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise BodyTooSlow() from None
    return b"".join(chunks)


def text_problem(value: str) -> str | None:
    """Why a string cannot be stored or sent on, or None if it can."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (not valid Unicode)"
    return None


def _check_document(data: Any) -> None:
    """Depth and string checks without recursion (the document may be hostile)."""
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ApiError(400, f"request body is nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                raise ApiError(400, f"{where or 'body'}: {problem}")
        elif isinstance(value, dict):
            for key, item in value.items():
                problem = text_problem(key)
                if problem:
                    raise ApiError(400, f"{where or 'body'}: a field name {problem}")
                stack.append((item, f"{where}.{key}" if where else key, depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))


async def json_object(request: Request) -> dict[str, Any]:
    limit = getattr(request.app.state, "max_body", MAX_BODY)
    try:
        raw = await read_limited(request, limit)
    except BodyTooLarge as exc:
        raise ApiError(413, str(exc)) from None
    except BodyTooSlow as exc:
        raise ApiError(408, str(exc)) from None
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except RecursionError:
        raise ApiError(400, f"request body is nested deeper than {MAX_DEPTH} levels") from None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object")
    _check_document(data)
    return data


def parse(model: type[M], data: dict[str, Any]) -> M:
    """Validate with pydantic and turn its errors into one clear 400.

    Only locations and messages are reported, never the input: a rejected body may carry
    secrets (a component's secretKey) and an answer never echoes them.
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        found = exc.errors(include_url=False, include_input=False, include_context=False)
        where = ".".join(str(p) for p in found[0]["loc"]) or "body"
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in found[:10]
        )
        raise ApiError(400, f"{where}: {found[0]['msg']}", details[:1000]) from None
