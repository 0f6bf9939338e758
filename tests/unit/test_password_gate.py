"""The password gate: a bounded number of hashes at once, slots shared between addresses."""

from __future__ import annotations

import asyncio

import pytest

from bucketjobs.auth.password_gate import GateFull, PasswordGate


async def test_slots_go_round_robin_between_addresses():
    gate = PasswordGate(slots=1)
    order: list[str] = []
    release = asyncio.Event()

    async def login(address: str, hold: bool = False) -> None:
        async with gate.admit(address):
            order.append(address)
            if hold:
                await release.wait()

    first = asyncio.create_task(login("flood", hold=True))
    await asyncio.sleep(0)
    flood = [asyncio.create_task(login("flood")) for _ in range(20)]
    await asyncio.sleep(0)
    real = asyncio.create_task(login("real"))
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(first, *flood, real)
    # The real user is served after one more flood hash at most, not after all 20.
    assert order.index("real") <= 2
    assert gate.waiting == 0


async def test_waiting_is_bounded_per_address_and_in_total():
    gate = PasswordGate(slots=1, per_address=2, total=3)
    held = asyncio.Event()

    async def login(address: str) -> None:
        async with gate.admit(address):
            await held.wait()

    tasks = [asyncio.create_task(login("a")) for _ in range(3)]  # 1 running, 2 waiting
    await asyncio.sleep(0)
    with pytest.raises(GateFull):
        async with gate.admit("a"):
            pass
    tasks.append(asyncio.create_task(login("b")))
    await asyncio.sleep(0)
    with pytest.raises(GateFull):
        async with gate.admit("c"):
            pass
    held.set()
    await asyncio.gather(*tasks)
    assert gate.waiting == 0


async def test_a_cancelled_waiter_gives_its_turn_back():
    gate = PasswordGate(slots=1)
    held = asyncio.Event()

    async def login(address: str) -> None:
        async with gate.admit(address):
            await held.wait()

    running = asyncio.create_task(login("a"))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(login("b"))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    held.set()
    await running
    async with asyncio.timeout(1):  # the slot is free again
        async with gate.admit("c"):
            pass
