"""The ASGI application: routers under `/mapi/v1` and `/v1`, identity, health, OpenAPI."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline

from bucketjobs import __version__
from bucketjobs.api import (
    buckets,
    components,
    console,
    errors,
    grants,
    health,
    identity,
    job_feed,
    jobs,
    notifications,
)
from bucketjobs.api.request_ids import RequestIds
from bucketjobs.api.schemas import REQUEST_SCHEMAS, complete_responses, link_jobs
from bucketjobs.api.state import ApiState
from bucketjobs.api.storage import PrimaryStore
from bucketjobs.auth.csrf import CsrfProtector
from bucketjobs.auth.live_sessions import LiveSessions
from bucketjobs.auth.logins import LoginChecker
from bucketjobs.auth.password_gate import PasswordGate
from bucketjobs.auth.throttle import LoginThrottle
from bucketjobs.auth.tokens import TokenIssuer, load_or_create_key
from bucketjobs.clock import Clock, clock
from bucketjobs.db.installation import load_installation
from bucketjobs.db.session import create_engine, create_read_engine, libpq_url
from bucketjobs.jobs.pages import PageTokens
from bucketjobs.jobs.service import JobService
from bucketjobs.metrics import register_installation
from bucketjobs.notify.service import NotificationService
from bucketjobs.ops.registry import OPERATIONS
from bucketjobs.storage.component_service import ComponentService
from bucketjobs.storage.secrets import check_fernet, load_fernet

MAPI_PREFIXES = ("/mapi/v1", "/v1")


def create_app(
    database_url: str,
    data_dir: Path,
    *,
    public_url: str | None = None,
    the_clock: Clock = clock,
    secure_cookies: bool = False,
    max_body: int = 1024 * 1024,
) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = create_engine(database_url)
        reads = create_read_engine(database_url)
        live_sessions = LiveSessions()
        listener = asyncio.create_task(live_sessions.listen(libpq_url(database_url)))
        fernet = load_fernet(data_dir)
        async with db.begin() as conn:
            secrets = await load_installation(conn)
            await check_fernet(conn, fernet, data_dir)
        realm = "vsp-object"
        # One issuer for every API process of the installation, whatever Host a client used.
        base = public_url.rstrip("/") if public_url else f"urn:bucketjobs:{secrets['serial']}"
        issuer = f"{base}/ui/auth/realms/{realm}"
        app.state.api = ApiState(
            db=db,
            reads=reads,
            clock=the_clock,
            tokens=TokenIssuer(
                load_or_create_key(data_dir / "jwt-signing-key.pem"), issuer, the_clock
            ),
            csrf=CsrfProtector(bytes.fromhex(secrets["csrf_secret"]), the_clock),
            jobs=JobService(
                db,
                reads,
                PageTokens(bytes.fromhex(secrets["page_secret"])),
                the_clock,
                frozenset(OPERATIONS),
            ),
            components=ComponentService(db, fernet),
            notifications=NotificationService(db, fernet),
            fernet=fernet,
            serial=secrets["serial"],
            realm=realm,
            secure_cookies=secure_cookies,
            logins=LoginChecker(db, LoginThrottle(the_clock), PasswordGate()),
            live_sessions=live_sessions,
        )
        app.state.storage = PrimaryStore(db, fernet)
        app.state.max_body = max_body
        app.state.installation_metrics = register_installation(reads)
        app.state.job_feed = job_feed.JobFeed(app.state.api.jobs)
        feed_listener = asyncio.create_task(app.state.job_feed.listen(libpq_url(database_url)))
        # What startup built lives as long as the process: keep it out of every collection,
        # which would otherwise walk it (pauses of tens of ms in an API answering in 2 ms).
        gc.freeze()
        # Under 500 clients, requests in flight live long enough to reach the older
        # generations and every collection walks them: collecting the youngest one every
        # 20,000 allocations instead of 700 took jobs/status there from 1,100-1,300 to
        # 1,400-1,600 requests/s (docs/PERFORMANCE.md).
        gc.set_threshold(20_000, 10, 10)
        try:
            yield
        finally:
            for task in (listener, feed_listener):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await app.state.storage.close()
            await reads.dispose()
            await db.dispose()

    # /docs with its script and style served from the package, not a CDN: it works on a
    # host with no way out. No /redoc: its page fetches a logo from a CDN whatever we serve.
    app = FastAPIOffline(
        static_url="/docs/assets",
        redoc_url=None,
        title="bucketjobs",
        version=__version__,
        description="Bulk jobs over S3 buckets (jobs part of the VSP One Object Management API)",
        lifespan=lifespan,
        # FastAPI's OpenTelemetry hooks look up the global providers (and os.environ) on
        # every request: ~4 % of a request's CPU for nothing, as none is configured.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    errors.install(app)
    for prefix in MAPI_PREFIXES:
        app.include_router(identity.mapi, prefix=prefix)
        app.include_router(jobs.router, prefix=prefix)
        app.include_router(job_feed.router, prefix=prefix)
        app.include_router(buckets.router, prefix=prefix)
        app.include_router(components.router, prefix=prefix)
        app.include_router(grants.router, prefix=prefix)
        app.include_router(notifications.router, prefix=prefix)
    app.include_router(identity.oidc)
    app.include_router(health.router)
    app.include_router(console.router)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(REQUEST_SCHEMAS)
            complete_responses(schema)
            link_jobs(schema, MAPI_PREFIXES)
            schema["components"]["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    # Outermost, so that even the 500 handler's log line carries the request's id.
    build = app.build_middleware_stack
    app.build_middleware_stack = lambda: RequestIds(  # type: ignore[method-assign]
        job_feed.DeferredStreams(build())
    )
    return app
