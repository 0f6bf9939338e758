"""An event stream's life in one API process (api/job_feed.py), driven through its ASGI
receive and send: views reach it, the newest wins, and it ends, unsubscribed, when the job
ends or the client leaves."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from bucketjobs.api.job_feed import JobFeed, _stream


def _view(state: str, processed: int) -> dict[str, Any]:
    return {"jobState": state, "jobStats": {"processed": processed}}


class Client:
    def __init__(self) -> None:
        self.gone = asyncio.Event()
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        await self.gone.wait()
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    def events(self) -> list[dict[str, Any]]:
        bodies = [m.get("body", b"") for m in self.sent if m["type"] == "http.response.body"]
        return [json.loads(b.split(b"data: ", 1)[1]) for b in bodies if b.startswith(b"event:")]


async def _started(feed: JobFeed, job_id: int, client: Client) -> asyncio.Task[None]:
    feed.listening = True
    task = asyncio.create_task(
        _stream(feed, job_id, _view("EXECUTING", 0), client.receive, client.send)
    )
    while job_id not in feed._subscribers:
        await asyncio.sleep(0.001)
    return task


async def test_the_newest_view_wins_and_the_terminal_one_ends_the_stream():
    feed, client = JobFeed(jobs=None), Client()  # type: ignore[arg-type]
    task = await _started(feed, 7, client)
    (subscription,) = feed._subscribers[7]
    subscription.offer(_view("EXECUTING", 10))
    subscription.offer(_view("EXECUTING", 20))  # before the stream woke: 10 is skipped
    await asyncio.sleep(0.01)
    subscription.offer(_view("COMPLETE", 30))
    await asyncio.wait_for(task, 2)
    processed = [e["jobStats"]["processed"] for e in client.events()]
    assert processed == [0, 20, 30]
    assert client.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert feed._subscribers == {}


async def test_a_client_that_leaves_ends_its_stream_and_subscription():
    feed, client = JobFeed(jobs=None), Client()  # type: ignore[arg-type]
    task = await _started(feed, 8, client)
    client.gone.set()
    await asyncio.wait_for(task, 2)
    assert feed._subscribers == {}
    assert [e["jobStats"]["processed"] for e in client.events()] == [0]
