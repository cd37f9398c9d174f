"""Edits of the config file's text, written atomically, keeping what the operator wrote elsewhere.

Role: the management API changes ``api-keys``, ``providers`` or ``remote-management`` by replacing that one
top-level block of the YAML text (everything else — other keys, their comments, their order and quoting — stays
byte for byte), and writes files by temp file + fsync + rename.

What is lost: comments *inside* a replaced block (PyYAML does not keep comments; ruamel is not in the stack). A
column-0 comment just above the next top-level key stays with that key. Anchors and aliases that cross into a
replaced block are not supported: such a block is written out expanded.

Invariants:
- A write is atomic: readers (the file watcher of every worker) see the old file or the new one, never a mix.
- The new file keeps the old file's permission bits.
- ``remote-management.secret-key`` is written as a scrypt hash, never as plain text (:func:`hash_secret_key`).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Callable
from typing import Any

import yaml

_TOP_KEY = re.compile(r"""^(?:"([^"]+)"|'([^']+)'|([^\s#'"][^:#]*?))\s*:(?:\s|$)""")


def _top_level_key(line: str) -> str | None:
    if not line or line[0] in " \t#-" or line.startswith("..."):
        return None
    match = _TOP_KEY.match(line)
    if match is None:
        return None
    return next(group for group in match.groups() if group is not None)


def _block(lines: list[str], key: str) -> tuple[int, int] | None:
    """``[start, end)`` line indices of the top-level ``key`` and its indented body."""
    start = next((i for i, line in enumerate(lines) if _top_level_key(line) == key), None)
    if start is None:
        return None
    end = start + 1
    while end < len(lines):
        line = lines[end]
        stripped = line.strip()
        if stripped and line[0] not in " \t" and not line.startswith("- "):
            break  # the next top-level key, a column-0 comment, or a document marker
        end += 1
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1  # trailing blank lines stay between blocks
    return start, end


def dump_block(key: str, value: Any) -> str:
    return yaml.safe_dump({key: value}, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000)


def replace_block(text: str, key: str, value: Any) -> str:
    """``text`` with the top-level ``key`` set to ``value`` (``None`` removes the key); appended when absent."""
    lines = text.splitlines(keepends=True)
    found = _block(lines, key)
    new = [] if value is None else dump_block(key, value).splitlines(keepends=True)
    if found is None:
        if value is None:
            return text
        prefix = text if not text or text.endswith("\n") else text + "\n"
        return prefix + "".join(new)
    start, end = found
    return "".join(lines[:start] + new + lines[end:])


def hash_secret_key(text: str, data: dict[str, Any], hasher: Callable[[str], str]) -> str:
    """``text`` with a plain ``remote-management.secret-key`` replaced by ``hasher(key)``; unchanged otherwise."""
    section = data.get("remote-management")
    if not isinstance(section, dict):
        return text
    key = section.get("secret-key")
    if not isinstance(key, str) or not key.strip() or key.startswith(("scrypt:", "sha256:")):
        return text
    return replace_block(text, "remote-management", {**section, "secret-key": hasher(key.strip())})


def write_atomic(path: str, text: str) -> None:
    """Replace ``path`` with ``text``: temp file in the same directory, fsync, rename (keeps the mode bits)."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        mode = os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        mode = 0o600
    fd, temp = tempfile.mkstemp(prefix=".muxtrio-config-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
