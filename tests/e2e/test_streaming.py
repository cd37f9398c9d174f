"""Streaming is incremental end to end: the first chunk reaches the client while the provider is still holding the
rest of its answer.

The fake provider sends its first content chunk, then stops until the test releases it; the client's SDK, reading
the stream in a worker thread, releases it from its first content event. The assertion is on the order of events in
one shared log, never on wall-clock time: if the gateway buffered the answer, the client could not see a chunk
before the provider finished (the fake gives up holding after a hang guard and logs it, and the test fails).
"""

from __future__ import annotations

import trio

from tests.e2e import clients
from tests.e2e.clients import PER_CLIENT, Answer
from tests.e2e.conftest import CLIENT_KEY, PER_UPSTREAM, Stack, run_sync
from tests.e2e.fakes import script_text


@PER_UPSTREAM
@PER_CLIENT
async def test_first_chunk_reaches_client_before_provider_finishes(stack: Stack, client: str, upstream: str) -> None:
    fake = stack.fake(upstream)
    sdk = clients.make(client, stack.url, CLIENT_KEY)

    def on_chunk(answer: Answer) -> None:
        if answer.chunks == 1:
            stack.events.append(f"client:first-chunk:{answer.text}")
            trio.from_thread.run_sync(fake.release.set)

    sdk.on_chunk = on_chunk
    answer = await run_sync(sdk.ask, stack.model(upstream, "hold"), sdk.start(), stream=True)
    sdk.close()
    assert answer.text == script_text("hold", upstream)
    assert f"provider:{upstream}:hang-guard" not in stack.events, stack.events
    first = stack.events.index("client:first-chunk:Hello ")
    held = stack.events.index(f"provider:{upstream}:held")
    finished = stack.events.index(f"provider:{upstream}:finished")
    assert held < finished and first < finished, stack.events
    [seen] = stack.requests(upstream)
    assert seen.finished
