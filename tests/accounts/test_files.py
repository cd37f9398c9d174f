"""Token files: an auth directory written by llm-mux / CLIProxyAPI loads as is, refreshed tokens are written back in
the same layout (unknown fields kept) atomically with mode 0600, and the directory scan reports adds, changes and
removals."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from muxtrio.accounts.files import TokenFile, file_name, parse_time, read_token_file, write_token_file
from muxtrio.accounts.store import AccountStore

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "accounts" / "llm-mux-auth"


@pytest.fixture
def auth_copy(tmp_path: Path) -> Path:
    target = tmp_path / "auth"
    shutil.copytree(FIXTURES, target)
    return target


def test_an_llm_mux_auth_dir_loads_as_is(auth_copy: Path) -> None:
    store = AccountStore(str(auth_copy))
    changes = store.scan()
    labels = sorted(a.label for a in changes.added)
    assert labels == [
        "claude:alice@example.com",
        "codex:bob@example.com",
        "gemini-cli:carol@example.com/carol-project-1",
        "gemini-cli:carol@example.com/carol-project-2",
        "github-copilot:dave",
        "qwen:erin@example.com",
    ]
    assert sorted(changes.skipped) == [
        "antigravity-frank@example.com.json: account type 'antigravity' is not served by muxtrio",
        "claude-grace@example.com.json: disabled",
    ]
    by_label = {a.label: a for a in changes.added}
    assert by_label["codex:bob@example.com"].extras == {"account_id": "8d2b0000-0000-4000-8000-00000000000b"}
    status = by_label["codex:bob@example.com"].status(0.0)
    assert (status["plan"], status["email"], status["state"]) == ("plus", "bob@example.com", "ok")
    assert "FAKE" not in json.dumps(status), "no token in what a management API shows"
    assert by_label["qwen:erin@example.com"].extras == {"base_url": "https://portal.qwen.ai/v1"}
    assert by_label["gemini-cli:carol@example.com/carol-project-2"].extras == {"project": "carol-project-2"}
    claude = by_label["claude:alice@example.com"].file.token
    assert claude.expires_at == parse_time("2025-11-02T17:00:00.123456Z"), "Go's nanosecond RFC 3339 with an offset"
    assert store.scan() == type(changes)(), "an unchanged directory reports nothing (skipped files are not re-read)"


def test_refreshed_tokens_are_written_back_in_the_same_layout(auth_copy: Path) -> None:
    for name, nested in (("claude-alice@example.com.json", False), ("gemini-carol@example.com-all.json", True)):
        path = auth_copy / name
        before = json.loads(path.read_text())
        token = read_token_file(str(path)).with_tokens("new-access", 2_000_000_000.0, "new-refresh", now=1.9e9)
        write_token_file(token)
        after = json.loads(path.read_text())
        assert os.stat(path).st_mode & 0o777 == 0o600
        moved = after["token"] if nested else after
        assert (moved["access_token"], moved["refresh_token"]) == ("new-access", "new-refresh")
        assert (moved["expiry"] if nested else moved["expired"]) == "2033-05-18T03:33:20Z"
        unchanged = {k: v for k, v in before.items() if k not in ("token", "access_token", "refresh_token",
                                                                  "expired", "last_refresh")}  # fmt: skip
        assert {k: after[k] for k in unchanged} == unchanged, "unknown fields are kept"
    assert [p.name for p in auth_copy.iterdir() if p.name.startswith(".tmp")] == [], "no temporary file left"


def test_a_new_directory_is_created_private(tmp_path: Path) -> None:
    path = tmp_path / "new" / "auth" / file_name("codex", "bob@example.com")
    write_token_file(TokenFile(str(path), "codex", {"access_token": "a", "refresh_token": "r"}))
    assert os.stat(path.parent).st_mode & 0o777 == 0o700
    assert json.loads(path.read_text())["type"] == "codex"
    assert file_name("gemini-cli", "c@x.io", "p1") == "gemini-c@x.io-p1.json"
    assert file_name("claude", "a b/../c") == "claude-a_b_.._c.json"


def test_scan_reports_changes_and_removals(auth_copy: Path) -> None:
    store = AccountStore(str(auth_copy))
    store.scan()
    seen: list[tuple[list[str], list[str], list[str]]] = []
    store.listeners.append(lambda c: seen.append(([a.label for a in c.added], [a.label for a in c.updated],
                                                  [a.label for a in c.removed])))  # fmt: skip
    path = auth_copy / "qwen-erin@example.com.json"
    data = json.loads(path.read_text())
    data["access_token"] = "rotated-by-another-process-and-longer"
    path.write_text(json.dumps(data))
    (auth_copy / "codex-bob@example.com.json").unlink()
    (auth_copy / "broken.json").write_text("{not json")
    changes = store.scan()
    assert seen == [([], ["qwen:erin@example.com"], ["codex:bob@example.com"])]
    assert changes.skipped == ("broken.json: not JSON",)
    assert store.accounts[str(path)].file.token.access_token == "rotated-by-another-process-and-longer"


def test_polling_cost_is_one_listing_and_a_stat_per_file(auth_copy: Path) -> None:
    """The watcher's steady state: an unchanged directory is listed, no file is read or parsed."""
    store = AccountStore(str(auth_copy))
    store.scan()
    before = {path: file.token for path, file in store.files.items()}
    store.scan()
    assert {path: file.token for path, file in store.files.items()} == before
    assert all(store.files[p].token is before[p] for p in before), "nothing was re-read"
