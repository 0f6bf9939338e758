"""`/healthz` and `/metrics` (Prometheus)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from bucketjobs.api.security import state_of

router = APIRouter(tags=["health"])


STATUS = {"type": "object", "properties": {"status": {"type": "string"}}, "required": ["status"]}


@router.get(
    "/healthz",
    responses={
        200: {"content": {"application/json": {"schema": STATUS}}},
        503: {
            "description": "database or store down",
            "content": {"application/json": {"schema": STATUS}},
        },
    },
)
async def healthz(request: Request) -> Any:
    """200 `{"status": "ok"}` once the database and the primary store answer; else 503."""
    try:
        async with state_of(request).db.connect() as conn:
            await conn.execute(text("SELECT 1"))
        storage_ok = await request.app.state.storage.ping()
    except Exception:
        storage_ok = False
    if not storage_ok:
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return {"status": "ok"}


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    """This process's figures and the installation's (bucketjobs/metrics.py); no token, as
    Prometheus scrapes, and the database is read at most once every few seconds."""
    await request.app.state.installation_metrics.refresh()
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
