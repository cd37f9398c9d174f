"""The management API through the real server: the OpenAPI document matches the routes, auth (404 without a key,
401, both headers, gateway and management keys never interchangeable), masked views, api-keys and providers CRUD
keeping the rest of the file, credential actions, logs, request logs (no traversal), usage, status."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import httpx2
import pytest

from muxtrio.server.management import ROUTES
from muxtrio.server.management_openapi import document, operations
from muxtrio.usage.record import UsageRecord
from muxtrio.usage.store import open_store
from tests.server.control_stack import (
    CLIENT_KEY,
    MANAGEMENT_KEY,
    Admin,
    fake_providers,
    gateway,
    provider_yaml,
    set_management_key,
)

PROVIDER_KEY = "sk-alpha-secret-0001"


def config_text(url: str, tmp_path: Path, extra: str = "") -> str:
    return (
        "# top comment\n"
        "api-keys:\n"
        f"  - {CLIENT_KEY}  # the team key\n"
        "echo-model: true\n"
        "# a comment above usage stays with it\n"
        f"usage:\n  dsn: sqlite://{tmp_path}/usage.db\n"
        f"logging:\n  request-log-dir: {tmp_path}/requests\n"
        "reload:\n  watch: false\n"
        f"{extra}"
        f"providers:\n{provider_yaml('alpha', url, PROVIDER_KEY)}"
    )


def test_openapi_document_describes_exactly_the_routes() -> None:
    assert operations() == {(route.method, route.path) for route in ROUTES}
    doc = document()
    assert doc["openapi"].startswith("3.1")
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            assert "responses" in operation, (method, path)


async def test_without_a_management_key_every_route_is_404(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MUXTRIO_MANAGEMENT_KEY", "LLM_MUX_MANAGEMENT_KEY"):
        monkeypatch.delenv(name, raising=False)
    async with fake_providers("alpha") as fakes:
        async with gateway(str(tmp_path / "c.yaml"), config_text(fakes["alpha"].url, tmp_path)) as gw:
            async with httpx2.AsyncClient() as http:
                for path in ("/status", "/config", "/openapi.json", "/credentials"):
                    r = await http.get(gw.base + "/v1/management" + path, headers={"Authorization": "Bearer x"})
                    assert r.status_code == 404
                    assert r.json()["error"]["code"] == "NOT_FOUND"


async def test_auth_headers_wrong_key_and_key_separation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    set_management_key(monkeypatch)
    async with fake_providers("alpha") as fakes:
        fakes["alpha"].release()
        async with gateway(str(tmp_path / "c.yaml"), config_text(fakes["alpha"].url, tmp_path)) as gw:
            async with httpx2.AsyncClient() as http:
                url = gw.base + "/v1/management/status"
                assert (await http.get(url)).status_code == 401
                r = await http.get(url, headers={"Authorization": "Bearer wrong"})
                assert r.status_code == 401 and r.json() == {
                    "error": {"code": "UNAUTHORIZED", "message": "invalid management key"}
                }
                # A gateway key is not a management key...
                assert (await http.get(url, headers={"Authorization": f"Bearer {CLIENT_KEY}"})).status_code == 401
                # ...and the management key is not a gateway key.
                chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
                r = await http.post(gw.base + "/v1/chat/completions", json=chat,
                                    headers={"Authorization": f"Bearer {MANAGEMENT_KEY}"})
                assert r.status_code == 401
                for headers in ({"Authorization": f"Bearer {MANAGEMENT_KEY}"}, {"X-Management-Key": MANAGEMENT_KEY}):
                    r = await http.get(url, headers=headers)
                    assert r.status_code == 200
                    body = r.json()
                    assert set(body) == {"data", "meta"} and body["meta"]["version"]
                    assert body["data"]["config_file"] == str(tmp_path / "c.yaml")
                    assert body["data"]["reloads"][0]["trigger"] == "startup"
                admin = Admin(http, gw.base)
                r = await admin.call("GET", "/nope")
                assert r.status_code == 404 and r.json()["error"]["code"] == "NOT_FOUND"
                r = await admin.call("DELETE", "/status")
                assert r.status_code == 405 and r.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
                r = await admin.call("GET", "/openapi.json")
                assert r.status_code == 200 and r.json()["openapi"].startswith("3.1")


async def test_config_views_mask_secrets_and_crud_keeps_the_rest_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_management_key(monkeypatch)
    async with fake_providers("alpha") as fakes:
        fakes["alpha"].release()
        path = str(tmp_path / "c.yaml")
        async with gateway(path, config_text(fakes["alpha"].url, tmp_path)) as gw, httpx2.AsyncClient() as http:
            admin = Admin(http, gw.base)
            for route in ("/config", "/providers", "/providers/alpha", "/credentials", "/api-keys"):
                r = await admin.call("GET", route)
                assert r.status_code == 200, route
                assert PROVIDER_KEY not in r.text and CLIENT_KEY not in r.text and MANAGEMENT_KEY not in r.text
            config = await admin.data("GET", "/config")
            assert config["providers"][0]["credentials"][0]["key"] == "****0001"
            raw = await admin.call("GET", "/config.yaml")
            assert raw.text == gw.read()

            # api-keys: generate one, it works at once; delete the old one.
            created = await admin.data("POST", "/api-keys", json={})
            new_key = created["created"]
            assert created["reload"]["result"] == "applied" and len(created["keys"]) == 2
            chat = {"model": "muxtrio-echo", "messages": [{"role": "user", "content": "hi"}]}
            r = await http.post(gw.base + "/v1/chat/completions", json=chat,
                                headers={"Authorization": f"Bearer {new_key}"})
            assert r.status_code == 200
            await admin.data("DELETE", "/api-keys", params={"value": CLIENT_KEY})
            r = await http.post(gw.base + "/v1/chat/completions", json=chat,
                                headers={"Authorization": f"Bearer {CLIENT_KEY}"})
            assert r.status_code == 401
            r = await admin.call("POST", "/api-keys", json={"value": MANAGEMENT_KEY})
            assert r.status_code == 400 and "management key" in r.json()["error"]["message"]
            r = await admin.call("POST", "/api-keys", json={"value": new_key})
            assert r.status_code == 409
            text = gw.read()
            assert text.startswith("# top comment\n")
            assert "# a comment above usage stays with it\nusage:" in text

            # providers: add one, read it masked, put it back masked (the key is kept), delete it.
            entry = {"type": "openai", "name": "beta", "base-url": fakes["alpha"].url + "/v1",
                     "api-keys": ["sk-beta-secret-0002"], "models": [{"name": "other"}]}
            assert (await admin.data("POST", "/providers", json=entry))["result"] == "applied"
            view = await admin.data("GET", "/providers/beta")
            assert view["defined-in"] == "providers" and view["api-keys"] == ["****0002"]
            masked_entry = view["entry"]
            masked_entry["models"] = [{"name": "other"}, {"name": "third"}]
            assert (await admin.data("PUT", "/providers/beta", json=masked_entry))["result"] == "applied"
            assert "sk-beta-secret-0002" in gw.read()
            r = await admin.call("PUT", "/providers/beta", json={**masked_entry, "api-keys": ["****9999"]})
            assert r.status_code == 400 and "providers[1].api-keys[0]" in r.json()["error"]["message"]
            r = await admin.call("POST", "/providers", json={**entry, "base-url": "not a url"})
            assert r.status_code == 409  # the name exists
            r = await admin.call("POST", "/providers", json={**entry, "name": "gamma", "base-url": "ftp://x"})
            assert r.status_code == 400 and "providers[2].base-url" in r.json()["error"]["message"]
            r = await admin.call("DELETE", "/providers/muxtrio-echo")
            assert r.status_code in (404, 409)
            assert (await admin.data("DELETE", "/providers/beta"))["result"] == "applied"
            assert "beta" not in gw.read()
            assert (await admin.call("GET", "/providers/beta")).status_code == 404


async def test_secret_key_written_by_muxtrio_is_hashed_and_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("MUXTRIO_MANAGEMENT_KEY", "LLM_MUX_MANAGEMENT_KEY"):
        monkeypatch.delenv(name, raising=False)
    async with fake_providers("alpha") as fakes:
        path = str(tmp_path / "c.yaml")
        extra = f"remote-management:\n  secret-key: {MANAGEMENT_KEY}\n"
        async with gateway(path, config_text(fakes["alpha"].url, tmp_path, extra)) as gw, httpx2.AsyncClient() as http:
            admin = Admin(http, gw.base)
            assert (await admin.data("POST", "/reload"))["result"] == "unchanged"
            new_text = gw.read().replace("echo-model: true", "echo-model: false")
            record = await admin.data("PUT", "/config.yaml", content=new_text)
            assert record["result"] == "applied"
            text = gw.read()
            assert MANAGEMENT_KEY not in text and "secret-key: scrypt:" in text
            status = await admin.data("GET", "/status")  # the hashed key still opens the API
            assert status["last_reload_error"] is None
            assert (await Admin(http, gw.base, "wrong").call("GET", "/status")).status_code == 401
            config = await admin.data("GET", "/config")
            assert config["remote-management"]["secret-key"] == "(hashed)"


async def test_credential_actions_logs_request_logs_usage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="muxtrio")  # what the server's own logging setup does
    set_management_key(monkeypatch)
    store = open_store(f"sqlite://{tmp_path}/usage.db")
    now = time.time()
    store.write([UsageRecord("req-1", "openai-chat", "m", 200, ts=now - 60, provider="alpha", served_model="m",
                             input_tokens=3, output_tokens=4, total_tokens=7)])
    store.close()
    requests = tmp_path / "requests"
    requests.mkdir()
    (requests / "20260101T120000-abc123.json").write_text('{"request_id": "abc123"}')
    (requests / "not-a-log.txt").write_text("x")
    (tmp_path / "secret.json").write_text("top secret")
    os.symlink(tmp_path / "secret.json", requests / "20260101T120001-link.json")
    async with fake_providers("alpha") as fakes:
        fakes["alpha"].release()
        path = str(tmp_path / "c.yaml")
        async with gateway(path, config_text(fakes["alpha"].url, tmp_path)) as gw, httpx2.AsyncClient() as http:
            admin = Admin(http, gw.base)
            chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
            auth = {"Authorization": f"Bearer {CLIENT_KEY}"}
            # disable -> the only credential takes no requests; enable -> it does again.
            view = await admin.data("POST", "/credentials/alpha%230/disable", json={"reason": "rotating"})
            assert view["disabled"] is True and view["disabled_reason"] == "operator: rotating"
            assert (await http.post(gw.base + "/v1/chat/completions", json=chat, headers=auth)).status_code >= 400
            await admin.data("POST", "/credentials/alpha%230/reset")
            assert (await admin.data("GET", "/credentials"))[0]["disabled"] is True  # reset keeps an operator's disable
            await admin.data("POST", "/credentials/alpha%230/enable")
            assert (await http.post(gw.base + "/v1/chat/completions", json=chat, headers=auth)).status_code == 200
            cred = next(c for c in await admin.data("GET", "/credentials") if c["label"] == "alpha#0")
            assert cred["successes"] == 1 and cred["in_flight"] == 0 and cred["breaker"] == "closed"
            assert (await admin.call("POST", "/credentials/nope%230/reset")).status_code == 404
            assert (await admin.call("POST", "/credentials/alpha%230/reset", content=b"{")).status_code == 400

            # logs: the mutations above were logged with the key's label, never the key.
            logs = await admin.data("GET", "/logs", params={"limit": "1000"})
            messages = [line["message"] for line in logs["lines"]]
            assert any("env MUXTRIO_MANAGEMENT_KEY" in m and "credential alpha#0: disable" in m for m in messages)
            assert not any(MANAGEMENT_KEY in m for m in messages)
            newer = await admin.data("GET", "/logs", params={"after": str(logs["last_seq"])})
            assert all(line["seq"] > logs["last_seq"] for line in newer["lines"])
            assert (await admin.call("GET", "/logs", params={"limit": "0"})).status_code == 400

            # request logs: listed and downloadable by exact name only.
            listed = await admin.data("GET", "/request-logs")
            names = [e["name"] for e in listed]
            assert names[-1] == "20260101T120000-abc123.json"  # newest first; nothing but request logs
            assert not any("link" in name or name.endswith(".txt") for name in names)
            # The 503 above (every credential disabled) was written by the gateway's own request log.
            real = await admin.call("GET", f"/request-logs/{names[0]}")
            assert real.status_code == 200 and real.json()["status"] == 503
            r = await admin.call("GET", "/request-logs/20260101T120000-abc123.json")
            assert r.status_code == 200 and r.json() == {"request_id": "abc123"}
            for bad in ("..%2Fsecret.json", "20260101T120001-link.json", "not-a-log.txt", "%2E%2E"):
                r = await admin.call("GET", f"/request-logs/{bad}")
                assert r.status_code in (400, 404), bad
                assert "top secret" not in r.text

            # usage: the llm-mux shape, grouped.
            report = await admin.data("GET", "/usage", params={"from": "24h", "group-by": "model"})
            assert report["summary"]["total_requests"] == 1
            assert [row["model"] for row in report["by_model"]] == ["m"]
            assert (await admin.call("GET", "/usage", params={"group-by": "colour"})).status_code == 400
            assert (await admin.call("GET", "/usage", params={"from": "yesterday"})).status_code == 400

            stats = await admin.data("GET", "/metrics")
            assert stats["requests"] >= 2 and "alpha" in stats["providers"]
