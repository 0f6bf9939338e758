"""Request bodies: JSON whatever the Content-Type says, size-limited, objects only.

The reference declares `*/*` and its own curl examples send JSON as form content, so the
Content-Type header is ignored on purpose.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from bucketjobs.api.errors import ApiError

MAX_BODY = 1024 * 1024
M = TypeVar("M", bound=BaseModel)


async def json_object(request: Request) -> dict[str, Any]:
    limit = getattr(request.app.state, "max_body", MAX_BODY)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body larger than {limit} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "request body must be a JSON object")
    return data


def parse(model: type[M], data: dict[str, Any]) -> M:
    """Validate with pydantic and turn its errors into one clear 400."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        details = str(exc.errors(include_url=False))[:1000]
        raise ApiError(400, f"{where}: {first['msg']}", details) from None
