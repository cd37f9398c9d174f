"""The ``wrk`` driver: fixed-duration closed-loop load with a Lua script for POST bodies, pinned to cpu1.

wrk (Debian package ``wrk``) is a C load generator, so the client side costs little next to the servers. It counts
whole responses: for streaming scenarios events/s is responses/s times the events each response carries. Its
latency percentiles come from ``--latency``; ``--timeout`` is generous so slow targets are measured, not dropped.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from typing import Any

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def available() -> str | None:
    """None when wrk can run, else why not."""
    return None if shutil.which("wrk") else "wrk not installed (apt-get install wrk)"


def _lua(body: dict[str, Any] | None, headers: dict[str, str]) -> str:
    lines = ['wrk.method = "POST"' if body is not None else 'wrk.method = "GET"']
    for name, value in {"Content-Type": "application/json", **headers}.items():
        lines.append(f"wrk.headers[{json.dumps(name)}] = {json.dumps(value)}")
    if body is not None:
        # A Lua long string keeps the JSON as is (no escaping); the bodies here never contain "]==]".
        lines.append("wrk.body = [==[" + json.dumps(body, separators=(",", ":")) + "]==]")
    return "\n".join(lines) + "\n"


def _ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return float("nan")
    return float(m.group(1)) * _UNITS[m.group(2)]


def run(url: str, body: dict[str, Any] | None, *, conns: int, seconds: float, cpus: str = "1",
        headers: dict[str, str] | None = None, timeout_s: int = 60) -> dict[str, Any]:
    """One wrk run; returns rps, requests, p50/p90/p99 in ms, and error counts."""
    fd, script = tempfile.mkstemp(suffix=".lua", prefix="perf-wrk-")
    with os.fdopen(fd, "w") as f:
        f.write(_lua(body, headers or {}))
    dur = max(1, round(seconds))
    cmd = ["taskset", "-c", cpus, "wrk", "-t1", f"-c{conns}", f"-d{dur}s", "--latency", f"--timeout={timeout_s}s",
           "-s", script, url]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=dur + timeout_s + 30).stdout
    finally:
        os.unlink(script)
    result: dict[str, Any] = {"conns": conns, "seconds": dur}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result["rps"] = float(m.group(1)) if m else 0.0
    m = re.search(r"(\d+) requests in ([\d.]+)(\w+),", out)
    result["requests"] = int(m.group(1)) if m else 0
    for q in ("50", "90", "99"):
        m = re.search(rf"\s{q}(?:\.000)?%\s+([\d.]+\w+)", out)
        result[f"p{q}_ms"] = round(_ms(m.group(1)), 3) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: (.*)", out)
    result["socket_errors"] = m.group(1).strip() if m else ""
    if not result["requests"]:
        result["raw"] = out[-1500:]
    return result
