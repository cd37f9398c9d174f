"""Two gates on one SQLite file behave as two workers of one node: requests-per-minute and the concurrency cap are
shared through the store, idle leases go back, and a dead worker's concurrency slots stop counting."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from muxtrio.config import Config, UsageConfig
from muxtrio.engine.routing import Router
from muxtrio.errors import LimitError
from muxtrio.keys.gate import KeyGate, KeyIdentity, Ticket
from muxtrio.keys.model import Limits

MODEL = "muxtrio-echo"


def two_workers(tmp_path: Path) -> tuple[KeyGate, KeyGate, Router]:
    config = Config(usage=UsageConfig(dsn=f"sqlite://{tmp_path}/usage.db"))
    return KeyGate(config), KeyGate(config), Router(config)


async def identities(a: KeyGate, b: KeyGate, secret: str) -> tuple[KeyIdentity, KeyIdentity]:
    first, second = await a.identify(secret), await b.identify(secret)
    assert first is not None and second is not None  # b finds a's new key in the store by its hash
    return first, second


async def test_requests_per_minute_shared_by_two_workers(tmp_path: Path) -> None:
    a, b, router = two_workers(tmp_path)
    _, secret = await a.create("team", limits=Limits(rpm=20))
    ida, idb = await identities(a, b, secret)
    for _attempt in range(2):
        minute = int(time.time() // 60)
        admitted = 0
        for index in range(40):
            gate, identity = (a, ida) if index % 2 else (b, idb)
            try:
                gate.settle(await gate.admit(identity, MODEL, 5, router))
                admitted += 1
            except LimitError as refused:
                assert refused.status == 429 and refused.retry_after is not None
        if int(time.time() // 60) == minute:
            break
    assert admitted == 20
    # Fewer store calls than requests: 16 leases for the 20 admitted (slices), and after the first refusal each
    # gate refuses locally until the store may have units again.
    assert a.lease_calls + b.lease_calls < 20, (a.lease_calls, b.lease_calls)
    await a.close()
    await b.close()


async def test_concurrency_cap_shared_by_two_workers(tmp_path: Path) -> None:
    a, b, router = two_workers(tmp_path)
    _, secret = await a.create("team", limits=Limits(max_concurrency=3))
    ida, idb = await identities(a, b, secret)
    held: list[tuple[KeyGate, Ticket]] = [(a, await a.admit(ida, MODEL, 5, router)),
                                          (a, await a.admit(ida, MODEL, 5, router)),
                                          (b, await b.admit(idb, MODEL, 5, router))]
    for gate, identity in ((a, ida), (b, idb)):
        with pytest.raises(LimitError, match="concurrency cap is 3"):
            await gate.admit(identity, MODEL, 5, router)
    gate, first = held.pop(0)
    gate.settle(first)
    with pytest.raises(LimitError):
        await b.admit(idb, MODEL, 5, router)  # the slot went back to a, which holds it for its next request
    await a.sync(final=True)  # a gives back what it holds and is not using
    held.append((b, await b.admit(idb, MODEL, 5, router)))
    for gate, ticket in held:
        gate.settle(ticket)
    await a.close()
    await b.close()


async def test_a_dead_workers_slots_stop_counting(tmp_path: Path) -> None:
    a, b, router = two_workers(tmp_path)
    _, secret = await a.create("team", limits=Limits(max_concurrency=2))
    ida, idb = await identities(a, b, secret)
    await a.admit(ida, MODEL, 5, router)
    await a.admit(ida, MODEL, 5, router)  # a then "dies": it never settles and never sends a heartbeat again
    with pytest.raises(LimitError):
        await b.admit(idb, MODEL, 5, router)
    b.stale_after = -1.0  # as if a's last heartbeat were older than the staleness limit
    b.settle(await b.admit(idb, MODEL, 5, router))
    await b.close()
