"""`bucketjobs login|logout` and `bucketjobs jobs ...`: the API's client commands, on the SDK.

`login` keeps the server's URL and the session's tokens in a 0600 file under the user's
config dir (`$XDG_CONFIG_HOME/bucketjobs/session.json`, or `BUCKETJOBS_SESSION`); every
other command resumes that session, refreshing its token under a lock on the file, so
commands run side by side do not present one rotated refresh token twice (which the
server takes as theft and answers by ending the session).

Every command prints a table (or a line) by default and JSON with `--json`; an error is
one line on stderr and exit status 1. `watch` exits 0 when the job completes, 3 when it
fails and 4 when it is cancelled.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from bucketjobs.cli.common import console, fail
from bucketjobs.client import Client, Job, MapiError
from bucketjobs.jobs.model import INT32_MAX, INT32_MIN, JobState, JobType

jobs_app = typer.Typer(help="Create, list, watch and cancel jobs through the API (after login).")

EXIT_FAILED = 3
EXIT_CANCELLED = 4
AsJson = Annotated[bool, typer.Option("--json", help="JSON for scripts instead of a table.")]
JobId = Annotated[int, typer.Argument(min=INT32_MIN, max=INT32_MAX, help="The job's id.")]
# Job ids are signed (the reference's): `watch -896328041` must not read as an option.
BY_ID = {"ignore_unknown_options": True}


def session_path() -> Path:
    if os.environ.get("BUCKETJOBS_SESSION"):
        return Path(os.environ["BUCKETJOBS_SESSION"])
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "bucketjobs" / "session.json"


@contextlib.contextmanager
def _locked() -> Iterator[Path]:
    """The session file, held against other commands' refreshes."""
    path = session_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path.parent / "session.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        os.close(fd)


def _save(path: Path, session: dict[str, Any]) -> None:
    fresh = path.with_suffix(".tmp")
    fd = os.open(fresh, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(session, out)
    fresh.replace(path)


def _keep(path: Path, session: dict[str, Any], api: Client) -> None:
    """Store the session's tokens as the client holds them now (rotated by a refresh)."""
    access, expires = api.access
    if api.refresh_token != session.get("refreshToken") or access != session.get("accessToken"):
        session.update(refreshToken=api.refresh_token, accessToken=access, accessExpires=expires)
        _save(path, session)


@contextlib.contextmanager
def _api() -> Iterator[Client]:
    """A client resuming the saved session; API errors become one line and exit 1."""
    with _locked() as path:
        try:
            session = json.loads(path.read_text())
        except (OSError, ValueError):
            fail("not logged in: run `bucketjobs login URL --user NAME` first")
        api = Client(session["url"], refresh_token=session.get("refreshToken"),
                     access_token=session.get("accessToken"),
                     access_expires=float(session.get("accessExpires", 0)),
                     verify=session.get("verify", True))  # fmt: skip
        try:
            _refresh_now(api)
        except MapiError as exc:
            api.close()
            fail(_why(exc))
        _keep(path, session, api)
    try:
        yield api
    except MapiError as exc:
        fail(_why(exc))
    finally:
        with _locked() as path, contextlib.suppress(OSError, ValueError):
            _keep(path, json.loads(path.read_text()), api)
        api.close()


def _refresh_now(api: Client) -> None:
    """Renew the access token while the session file is held, if it expires soon."""
    access, expires = api.access
    if access is None or expires - time.time() < 60:
        api.renew()


def _why(exc: MapiError) -> str:
    if exc.status == 401:
        return f"{exc.message}: log in again (`bucketjobs login`)"
    return f"{exc.code}: {exc.message}" + (f" ({exc.details})" if exc.details else "")


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True) + "\n")


def _job_json(job: Job) -> dict[str, Any]:
    return job.model_dump(mode="json")


def _job_table(jobs: list[Job]) -> Table:
    """Id, type, state and counts stay whole in an 80-column terminal; the rest shrinks."""
    table = Table()
    for name, width in (("id", 11), ("type", 22), ("state", 10)):
        table.add_column(name, no_wrap=True, min_width=width)
    table.add_column("bucket")
    for name in ("processed", "failed", "total"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("started")
    for job in jobs:
        stats = job.jobStats
        table.add_row(str(job.jobId.id), job.jobType.value, job.jobState.value, job.bucketName,
                      f"{stats.processed:,}", f"{stats.failed:,}", f"{stats.total:,}",
                      job.startTime.replace("T", " ")[:19])  # fmt: skip
    return table


def _params(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair[:64]!r} is not key=value", param_hint="-p")
        params[key] = value
    return params


def login(
    url: Annotated[str, typer.Argument(help="The server, e.g. http://127.0.0.1:8080.")],
    user: Annotated[str, typer.Option("--user", "-u", help="The user to log in as.")],
    ca_file: Annotated[
        Path | None, typer.Option(help="CA bundle that signed the server's certificate.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Log in and keep the session (password: BUCKETJOBS_PASSWORD, stdin, or a prompt)."""
    password = os.environ.get("BUCKETJOBS_PASSWORD")
    if not password:
        if sys.stdin.isatty():
            password = str(typer.prompt("password", hide_input=True))
        else:
            password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        fail("no password: give it in BUCKETJOBS_PASSWORD, on stdin or at the prompt")
    verify: bool | str = str(ca_file) if ca_file else True
    url = url.rstrip("/")
    with Client(url, verify=verify) as api:
        try:
            api.login(user, password)
        except MapiError as exc:
            fail(_why(exc) if exc.status != 401 else "login refused: wrong user or password")
        except OSError as exc:
            fail(f"cannot reach {url}: {exc}")
        access, expires = api.access
        with _locked() as path:
            _save(path, {"url": url, "user": user, "verify": verify,
                         "refreshToken": api.refresh_token, "accessToken": access,
                         "accessExpires": expires})  # fmt: skip
    if as_json:
        _print_json({"url": url, "user": user})
    else:
        console.print(f"logged in to {url} as {user}")


def logout(as_json: AsJson = False) -> None:
    """End the saved session on the server and forget it here."""
    with _api() as api:
        api.logout()
    session_path().unlink(missing_ok=True)
    if as_json:
        _print_json({"loggedOut": True})
    else:
        console.print("logged out")


@jobs_app.command("create")
def create(
    job_type: Annotated[JobType, typer.Argument(metavar="TYPE", help="The job type.")],
    bucket: Annotated[str, typer.Argument(help="The bucket to run it over.")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="A jobParams entry, key=value.")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Create a job; prints its id."""
    params = _params(param or [])
    with _api() as api:
        job = api.create(job_type.value, bucket, **params)
    if as_json:
        _print_json(_job_json(job))
    else:
        console.print(f"job {job.jobId.id} {job.jobType.value} on {job.bucketName}: "
                      f"{job.jobState.value}")  # fmt: skip


@jobs_app.command("list")
def list_jobs(
    state: Annotated[
        list[JobState] | None, typer.Option("--state", help="Only jobs in this state.")
    ] = None,
    job_type: Annotated[JobType | None, typer.Option("--type", help="Only this type.")] = None,
    bucket: Annotated[str | None, typer.Option(help="Only jobs over this bucket.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, newest first.")] = 50,
    as_json: AsJson = False,
) -> None:
    """List jobs, newest first."""
    with _api() as api:
        found = []
        states = [s.value for s in state] if state else None
        kind = job_type.value if job_type else None
        for job in api.jobs(states=states, job_type=kind, bucket=bucket, page_size=min(limit, 100)):
            found.append(job)
            if len(found) >= limit:
                break
    if as_json:
        _print_json([_job_json(job) for job in found])
    else:
        console.print(_job_table(found))


@jobs_app.command("status", context_settings=BY_ID)
def status(job_id: JobId, as_json: AsJson = False) -> None:
    """Show one job."""
    with _api() as api:
        job = api.status(job_id)
    _show(job, as_json)


def _show(job: Job, as_json: bool) -> None:
    """One job whole: JSON, or its table row, message and result."""
    if as_json:
        _print_json(_job_json(job))
        return
    console.print(_job_table([job]))
    if job.message:
        console.print(f"message: {job.message}", markup=False)
    if job.result:
        console.print_json(json.dumps(job.result))


@jobs_app.command("cancel", context_settings=BY_ID)
def cancel(job_id: JobId, as_json: AsJson = False) -> None:
    """Cancel a job (its counters keep what was done)."""
    with _api() as api:
        job = api.cancel(job_id)
    if as_json:
        _print_json(_job_json(job))
    else:
        console.print(f"job {job.jobId.id}: {job.jobState.value}")


@jobs_app.command("failures", context_settings=BY_ID)
def failures(
    job_id: JobId,
    limit: Annotated[int, typer.Option(min=1, help="At most this many, in key order.")] = 1000,
    as_json: AsJson = False,
) -> None:
    """List the objects a job failed on."""
    with _api() as api:
        found = []
        for failure in api.failures(job_id, page_size=min(limit, 1000)):
            found.append(failure)
            if len(found) >= limit:
                break
    if as_json:
        _print_json([f.model_dump(mode="json") for f in found])
        return
    table = Table("key", "version", "code", "http", "message")
    for f in found:
        table.add_row(f.key, f.versionId or "", f.errorCode, str(f.httpStatus or ""), f.message)
    console.print(table)


@jobs_app.command("watch", context_settings=BY_ID)
def watch(
    job_id: JobId,
    interval: Annotated[
        float,
        typer.Option(min=0.1, help="Seconds between polls, on a server with no event stream."),
    ] = 0.5,
    as_json: AsJson = False,
) -> None:
    """Follow a job to its end with a progress bar; exit 3 if it fails, 4 if cancelled."""
    with _api() as api:
        job = api.status(job_id)
        if not job.jobState.terminal:
            job = _follow(api, job, interval, quiet=as_json)
    _show(job, as_json)
    if job.jobState is JobState.FAILED:
        raise typer.Exit(EXIT_FAILED)
    if job.jobState is JobState.CANCELLED:
        raise typer.Exit(EXIT_CANCELLED)


def _follow(api: Client, first: Job, interval: float, *, quiet: bool) -> Job:
    """Follow the job to its end (the API's event stream; polling `jobs/status` every
    `interval` where a server has none), drawing processed / failed / total, rates, ETA."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("{task.fields[counts]}"),
        TextColumn("failed {task.fields[failed]:,}"),
        TextColumn("{task.fields[rate]:,.0f} obj/s {task.fields[bytes_rate]}"),
        TimeRemainingColumn(),
    )
    started = time.monotonic()
    with Progress(*columns, console=console, disable=quiet, transient=True) as bar:
        task = bar.add_task(f"job {first.jobId.id}", total=None, counts="", failed=0, rate=0.0,
                            bytes_rate="")  # fmt: skip
        job = first
        for job in _changes(api, first, interval):
            stats = job.jobStats
            done = stats.processed + stats.failed + stats.skipped
            elapsed = max(time.monotonic() - started, 1e-3)
            known, counts = progress_counts(done, stats.total, job.jobState.terminal)
            title = f"job {job.jobId.id} {job.jobState.value}"
            bar.update(task, total=known, completed=done, failed=stats.failed,
                       rate=done / elapsed, bytes_rate=_bytes(stats.bytes / elapsed),
                       counts=counts, description=title)  # fmt: skip
    return job


def progress_counts(done: int, total: int, ended: bool) -> tuple[int | None, str]:
    """The bar's total (None: not known) and its counts text. `total` grows while the bucket
    is still being listed, and a job that counts what it lists has done all of it at every
    moment: a running job with nothing left of its total is still listing, so it shows no
    total (and so no ETA) rather than a full bar."""
    if total and (done < total or ended):
        return total, f"{done:,}/{total:,} objects"
    return None, f"{done:,} objects so far" if total and not ended else f"{done:,} objects"


def _changes(api: Client, first: Job, interval: float) -> Iterator[Job]:
    """The job at each change until its end."""
    job = first
    yield job
    try:
        for job in api.events(first.jobId.id):
            yield job
        if job.jobState.terminal:
            return
    except MapiError as exc:
        if exc.status != 404 or exc.code == "JOB_NOT_FOUND":
            raise  # 404 without a job code: a server with no event stream; poll it
    while not job.jobState.terminal:
        time.sleep(interval)
        job = api.status(job.jobId.id)
        yield job


def _bytes(per_second: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if per_second < 1024 or unit == "GiB":
            return f"{per_second:,.1f} {unit}/s"
        per_second /= 1024
    raise AssertionError("unreachable")
