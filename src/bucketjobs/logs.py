"""Logging for every process: structlog over the standard library's `logging`.

Lines are JSON when stderr is not a terminal (a service manager, a container, a file) and
readable text on one. Every line carries what is bound in its context: `request_id` in the
API (api/request_ids.py), `job_id` and `step` in workers (engine/app.py). Messages never
carry secrets by construction (passwords, keys and tokens are not put in log calls); as a
second guard, any field whose name says it holds one is masked before rendering.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

SECRET_FIELDS = frozenset(
    {"password", "secret", "secretkey", "secret_key", "token", "access_token",
     "refresh_token", "authorization", "authheader", "cookie"}
)  # fmt: skip


def mask_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for name in event:
        if name.lower().replace("-", "_") in SECRET_FIELDS:
            event[name] = "***"
    return event


def configure(level: str, *, json_lines: bool | None = None) -> None:
    """Route all logging (ours, uvicorn's, procrastinate's) through one structlog handler."""
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        mask_secrets,
    ]
    renderer: Any
    if json_lines:
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
