"""The web console at `/console`: three static files from the package, no build step.

The page is a client of the same API as every other (bearer token, CSRF pair, the
`jobs/events` stream), so it has no route of its own beyond these files. They are served
from a fixed list (no path from the request ever reaches the file system) with a policy that
lets the page load only its own script and style and talk only to this origin.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from bucketjobs.api.errors import ApiError

router = APIRouter(include_in_schema=False)

FILES = {
    "index.html": "text/html; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
}

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@cache
def _content(name: str) -> bytes:
    return files(__package__).joinpath(name).read_bytes()


@router.get("/console")
async def console_root() -> Response:
    return RedirectResponse("/console/", status_code=308)


@router.get("/console/")
async def console_page() -> Response:
    return _serve("index.html")


@router.get("/console/{name}")
async def console_file(name: str) -> Response:
    if name not in FILES:
        raise ApiError(404, "no such console file", code="NOT_FOUND")
    return _serve(name)


def _serve(name: str) -> Response:
    return Response(_content(name), media_type=FILES[name], headers=HEADERS)
