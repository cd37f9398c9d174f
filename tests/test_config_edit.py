"""Text edits of the config file: one top-level block replaced, everything else byte for byte; atomic writes;
the management secret hashed; the log ring."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import yaml

from muxtrio import config_edit
from muxtrio.logring import LogRing

TEXT = """\
# muxtrio config: comments here stay
port: 8317   # the port
api-keys:
  # inner comments of a replaced block are lost (documented)
  - one
  - two

# this comment belongs to providers
providers:
- type: openai
  base-url: https://api.openai.com/v1
remote-management:
  allow-remote: false
  secret-key: plain-management-key
"""


def test_replace_block_keeps_everything_else() -> None:
    edited = config_edit.replace_block(TEXT, "api-keys", ["three"])
    assert edited.startswith("# muxtrio config: comments here stay\nport: 8317   # the port\napi-keys:\n- three\n\n")
    assert "# this comment belongs to providers\nproviders:\n- type: openai\n" in edited
    assert yaml.safe_load(edited)["api-keys"] == ["three"]
    removed = config_edit.replace_block(TEXT, "providers", None)
    assert "providers:" not in removed and "# this comment belongs to providers" in removed
    assert yaml.safe_load(removed)["remote-management"]["allow-remote"] is False
    appended = config_edit.replace_block("port: 1", "api-keys", ["k"])
    assert yaml.safe_load(appended) == {"port": 1, "api-keys": ["k"]}
    assert config_edit.replace_block(TEXT, "absent", None) == TEXT


def test_secret_key_is_hashed_once() -> None:
    data = yaml.safe_load(TEXT)
    hashed = config_edit.hash_secret_key(TEXT, data, lambda key: "scrypt:" + key[::-1])
    assert "plain-management-key" not in hashed
    assert yaml.safe_load(hashed)["remote-management"]["secret-key"] == "scrypt:" + "plain-management-key"[::-1]
    again = config_edit.hash_secret_key(hashed, yaml.safe_load(hashed), lambda key: "never")
    assert again == hashed


def test_write_atomic_replaces_and_keeps_mode(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("old")
    os.chmod(path, 0o640)
    config_edit.write_atomic(str(path), "new")
    assert path.read_text() == "new"
    assert os.stat(path).st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["c.yaml"]


def test_log_ring_is_bounded_and_paged_by_seq() -> None:
    ring = LogRing(capacity=3)
    logger = logging.getLogger("muxtrio.test.ring")
    logger.addHandler(ring)
    logger.setLevel(logging.INFO)
    try:
        for n in range(5):
            logger.info("line %d\nforged", n)
    finally:
        logger.removeHandler(ring)
    lines, last, dropped = ring.since(0, 10)
    assert [line.seq for line in lines] == [3, 4, 5] and last == 5 and dropped == 2
    assert lines[0].message == "line 2\\nforged"
    lines, _, dropped = ring.since(4, 10)
    assert [line.seq for line in lines] == [5] and dropped == 0
    assert [line.seq for line in ring.since(0, 1)[0]] == [3]
