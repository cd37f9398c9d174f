"""Hot reload through the real server: open streams finish on the configuration they started with, keys rotate
live, a broken file changes nothing, a removed provider's streams finish, credential state carries over.

The gateway is loaded from a YAML file in the test's temp dir; the providers are gated fakes on loopback
(``control_stack.GatedProvider``), so streams stay open exactly as long as the test wants. Clients are the official
``openai`` SDK (async, under trio) and httpx2 for the management API.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
import trio

from tests.server.control_stack import (
    CLIENT_KEY,
    Admin,
    fake_providers,
    gateway,
    provider_yaml,
    set_management_key,
)

STREAMS = 50
HANG_GUARD_S = 30.0  # never a pass condition: only stops a broken test from hanging


def sdk(base: str, key: str = CLIENT_KEY) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=HANG_GUARD_S)


def config_text(providers: str, *, keys: tuple[str, ...] = (CLIENT_KEY,), extra: str = "") -> str:
    key_lines = "".join(f"  - {k}\n" for k in keys)
    return (
        "# the operator's comment at the top stays\n"
        "host: 127.0.0.1\n"
        f"api-keys:\n{key_lines}"
        "echo-model: false\n"
        "reload:\n  poll-interval: 50ms\n"
        f"{extra}"
        f"providers:\n{providers}"
    )


async def stream_text(client: openai.AsyncOpenAI, model: str, started: trio.Semaphore | None = None) -> str:
    parts: list[str] = []
    stream = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
            if started is not None and len(parts) == 1:
                started.release()
    return "".join(parts)


async def wait_until(predicate: Any, what: str) -> None:
    with trio.fail_after(HANG_GUARD_S):
        while not await predicate():
            await trio.sleep(0.02)


@pytest.fixture(autouse=True)
def _management_key(monkeypatch: pytest.MonkeyPatch) -> None:
    set_management_key(monkeypatch)


async def test_reload_while_50_streams_are_open_none_cut_each_finishes_on_its_old_route(tmp_path: Path) -> None:
    async with fake_providers("alpha", "beta") as fakes:
        alpha = provider_yaml("alpha", fakes["alpha"].url, "sk-alpha-0001")
        beta = provider_yaml("beta", fakes["beta"].url, "sk-beta-0001", models=("other",))
        path = str(tmp_path / "muxtrio.yaml")
        async with gateway(path, config_text(alpha + beta)) as gw, httpx2.AsyncClient() as http:
            admin = Admin(http, gw.base)
            client = sdk(gw.base)
            results: list[str] = []
            opened = trio.Semaphore(0)

            async def one() -> None:
                results.append(await stream_text(client, "m", opened))

            with trio.fail_after(HANG_GUARD_S):
                async with trio.open_nursery() as nursery:
                    for _ in range(STREAMS):
                        nursery.start_soon(one)
                    for _ in range(STREAMS):
                        await opened.acquire()  # every stream has its first token: all are open on alpha
                    assert fakes["alpha"].open_streams == STREAMS
                    # Swap: model "m" now goes to beta only.
                    beta_serves_m = provider_yaml("beta", fakes["beta"].url, "sk-beta-0001", models=("m",))
                    gw.write(config_text(beta_serves_m))
                    record = await admin.data("POST", "/reload")
                    assert record["result"] == "applied"
                    assert "providers" in record["changes"]
                    # New requests use the new configuration at once...
                    fakes["beta"].release()
                    fresh = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
                    assert fresh.choices[0].message.content == "beta:whole"
                    status = await admin.data("GET", "/status")
                    assert status["engines_draining"] == 1
                    # ...while the 50 old streams are still open on alpha; now let them finish.
                    assert fakes["alpha"].open_streams == STREAMS
                    fakes["alpha"].release()
            assert results == ["alpha:start:end"] * STREAMS
            status = await admin.data("GET", "/status")
            assert status["engines_draining"] == 0  # the old engine closed after its last stream


async def test_key_rotation_live_old_refused_new_accepted_no_request_fails_in_between(tmp_path: Path) -> None:
    async with fake_providers("alpha") as fakes:
        fakes["alpha"].release()
        old_key, new_key = "client-old-key-1111", "client-new-key-2222"
        path = str(tmp_path / "muxtrio.yaml")
        text = config_text(provider_yaml("alpha", fakes["alpha"].url, "sk-alpha-0001"), keys=(old_key,))
        async with gateway(path, text) as gw, httpx2.AsyncClient() as http:
            admin = Admin(http, gw.base)
            outcomes: list[tuple[str, str, int]] = []  # (phase at start, key, status)
            phase = "before"
            stop = trio.Event()

            async def hammer(key: str) -> None:
                async with httpx2.AsyncClient() as c:
                    while not stop.is_set():
                        started_in = phase
                        r = await c.post(gw.base + "/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                                         json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
                        outcomes.append((started_in if started_in == phase else "during", key, r.status_code))
                        await trio.sleep(0)

            async def seen(wanted: str) -> bool:
                return sum(1 for o in outcomes if o[0] == wanted) >= 20

            with trio.fail_after(HANG_GUARD_S):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(hammer, old_key)
                    nursery.start_soon(hammer, new_key)
                    await wait_until(lambda: seen("before"), "traffic before")
                    phase = "rotating"
                    change = await admin.data("PATCH", "/api-keys", json={"old": old_key, "new": new_key})
                    assert change["reload"]["result"] == "applied"
                    phase = "after"
                    await wait_until(lambda: seen("after"), "traffic after")
                    stop.set()
            for started_in, key, status in outcomes:
                assert status in (200, 401), (started_in, key, status)  # never a 5xx or a dropped connection
                if started_in == "before":
                    assert status == (200 if key == old_key else 401)
                elif started_in == "after":
                    assert status == (200 if key == new_key else 401)
            assert {o[2] for o in outcomes if o[0] == "after" and o[1] == new_key} == {200}
            assert old_key not in gw.read() and new_key in gw.read()
            assert gw.read().startswith("# the operator's comment at the top stays\n")


async def test_broken_file_changes_nothing_and_status_names_the_key_path(tmp_path: Path) -> None:
    async with fake_providers("alpha") as fakes:
        fakes["alpha"].release()
        path = str(tmp_path / "muxtrio.yaml")
        good = config_text(provider_yaml("alpha", fakes["alpha"].url, "sk-alpha-0001"))
        async with gateway(path, good) as gw, httpx2.AsyncClient() as http:
            admin = Admin(http, gw.base)
            before = await admin.data("GET", "/status")
            # On disk, through the watcher: a provider with a bad base-url.
            gw.write(good.replace("base-url: http", "base-url: ftp"))

            async def rejected() -> bool:
                return (await admin.data("GET", "/status"))["last_reload_error"] is not None

            await wait_until(rejected, "the watcher rejected the file")
            status = await admin.data("GET", "/status")
            assert "providers[0].base-url" in status["last_reload_error"]
            assert status["config_hash"] == before["config_hash"]
            assert status["reloads"][-1]["result"] == "rejected"
            client = sdk(gw.base)
            answer = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
            assert answer.choices[0].message.content == "alpha:whole"
            # Through the API: a 400 naming the key path, and the file on disk is not touched.
            on_disk = gw.read()
            r = await admin.call("PUT", "/config.yaml", content=good.replace("api-keys:", "api-keys: 7\nx:"))
            assert r.status_code == 400
            assert r.json()["error"]["code"] == "INVALID_REQUEST"
            r = await admin.call("PUT", "/config.yaml", content="port: 99999\n" + good.replace("host: 127.0.0.1\n", ""))
            assert r.status_code == 400 and "port" in r.json()["error"]["message"]
            assert gw.read() == on_disk
            # Fixing the file applies it.
            gw.write(good.replace("api-keys:", "request-retry: 1\napi-keys:", 1))

            async def applied() -> bool:
                return (await admin.data("GET", "/status"))["last_reload_error"] is None

            await wait_until(applied, "the fixed file was applied")
            assert (await admin.data("GET", "/config"))["request-retry"] == 1


async def test_provider_removed_while_streaming_its_stream_finishes_and_it_takes_no_new_requests(
    tmp_path: Path,
) -> None:
    async with fake_providers("alpha", "beta") as fakes:
        fakes["beta"].release()
        path = str(tmp_path / "muxtrio.yaml")
        providers = provider_yaml("alpha", fakes["alpha"].url, "sk-alpha-0001") + provider_yaml(
            "beta", fakes["beta"].url, "sk-beta-0001", models=("other",)
        )
        async with gateway(path, config_text(providers)) as gw, httpx2.AsyncClient() as http:
            admin = Admin(http, gw.base)
            client = sdk(gw.base)
            result: list[str] = []
            opened = trio.Semaphore(0)

            async def one() -> None:
                result.append(await stream_text(client, "m", opened))

            with trio.fail_after(HANG_GUARD_S):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(one)
                    await opened.acquire()
                    record = await admin.data("DELETE", "/providers/alpha")
                    assert record["result"] == "applied"
                    creds = await admin.data("GET", "/credentials")
                    removed = [c for c in creds if c["provider"] == "alpha"]
                    assert [(c["removed"], c["in_flight"]) for c in removed] == [(True, 1)]
                    with pytest.raises(openai.NotFoundError):
                        await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
                    requests_before = fakes["alpha"].requests
                    fakes["alpha"].release()
            assert result == ["alpha:start:end"]
            assert fakes["alpha"].requests == requests_before
            assert "alpha" not in gw.read() and "beta" in gw.read()
            assert all(c["provider"] != "alpha" for c in await admin.data("GET", "/credentials"))


async def test_credential_state_carries_over_unless_its_key_changed(tmp_path: Path) -> None:
    async with fake_providers("alpha", "beta") as fakes:
        for fake in fakes.values():
            fake.release()
        path = str(tmp_path / "muxtrio.yaml")
        alpha = provider_yaml("alpha", fakes["alpha"].url, "sk-alpha-0001")
        beta = provider_yaml("beta", fakes["beta"].url, "sk-beta-0001", models=("other",))
        async with gateway(path, config_text(alpha + beta)) as gw, httpx2.AsyncClient() as http:
            admin = Admin(http, gw.base)
            client = sdk(gw.base)
            await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
            await admin.data("POST", "/credentials/alpha%230/disable", json={"reason": "maintenance"})
            await admin.data("POST", "/credentials/beta%230/disable")
            # Reload: alpha unchanged, beta's key rotated.
            gw.write(config_text(alpha + beta.replace("sk-beta-0001", "sk-beta-0002"), extra="request-retry: 2\n"))
            assert (await admin.data("POST", "/reload"))["result"] == "applied"
            creds = {c["label"]: c for c in await admin.data("GET", "/credentials")}
            assert creds["alpha#0"]["disabled"] is True
            assert creds["alpha#0"]["disabled_reason"] == "operator: maintenance"
            assert creds["alpha#0"]["successes"] == 1
            assert creds["beta#0"]["disabled"] is False and creds["beta#0"]["key"] == "****0002"
            with pytest.raises(openai.APIStatusError):
                await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
            await admin.data("POST", "/credentials/alpha%230/enable")
            answer = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
            assert answer.choices[0].message.content == "alpha:whole"
            assert (await admin.data("POST", "/reload"))["result"] == "unchanged"


async def test_restart_only_settings_are_reported_not_applied(tmp_path: Path) -> None:
    async with fake_providers("alpha") as fakes:
        fakes["alpha"].release()
        path = str(tmp_path / "muxtrio.yaml")
        text = config_text(provider_yaml("alpha", fakes["alpha"].url, "sk-alpha-0001"))
        async with gateway(path, text) as gw, httpx2.AsyncClient() as http:
            admin = Admin(http, gw.base)
            gw.write(text.replace("host: 127.0.0.1\n", "host: 127.0.0.1\nport: 9999\nworkers: 3\nrequest-retry: 0\n"))
            record = await admin.data("POST", "/reload")
            assert record["result"] == "applied"
            assert record["needs_restart"] == ["port", "workers"]
            config = await admin.data("GET", "/config")
            assert config["request-retry"] == 0 and config["workers"] == 1 and config["port"] != 9999
    assert os.path.exists(path)
