"""Where muxtrio's CPU goes: py-spy samples the gateway (cpu0) while wrk (cpu1) drives one workload, and the
collapsed stacks are summed per package, per muxtrio module and per function.

Workloads: non-streaming OpenAI → OpenAI (wrk c=16), streaming Anthropic provider → OpenAI client, and streaming
OpenAI → OpenAI (1,000-event streams, wrk c=8). py-spy must be in the muxtrio venv (``pip install py-spy``; it
needs ptrace, which root has here). ``--full-filenames`` is required to attribute frames to packages.

Reading the summary: *self* is the share of samples whose innermost frame is in that package or function (where the
CPU actually is); *inclusive* counts a sample once for every function on its stack (what a function costs with
everything it calls). Idle samples (the trio loop waiting in epoll) are counted apart and left out of the shares.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from perf import targets, wrk
from perf.procs import Procs

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
PYSPY = Path(sys.executable).with_name("py-spy")

WORKLOADS = (
    ("non-stream OpenAI → OpenAI, c=16", "/v1/chat/completions",
     {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}, 16),
    ("stream Anthropic → OpenAI, 1000 events, c=8", "/v1/chat/completions",
     {"model": "claude-fake-n1000", "messages": [{"role": "user", "content": "hi"}], "stream": True,
      "max_tokens": 1000}, 8),
    ("stream OpenAI → OpenAI, 1000 events, c=8", "/v1/chat/completions",
     {"model": "fake-n1000", "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 1000},
     8),
)

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^:()]+)(?::(?P<line>\d+))?\)$")
_IDLE = ("epoll", "select", "poll", "_epoll_wait", "get_events", "wait_for_event")


def package_of(path: str) -> str:
    """``site-packages/trio/_core/x.py`` → ``trio``; ``muxtrio/engine/x.py`` → ``muxtrio.engine``; stdlib →
    ``stdlib:<module>``."""
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/muxtrio/" in path:
        rel = path.rsplit("/muxtrio/", 1)[1]
        parts = rel.split("/")
        return "muxtrio." + (parts[0] if len(parts) > 1 else parts[0].removesuffix(".py"))
    if "/lib/python3" in path:
        rel = path.split("/lib/python3", 1)[1].split("/", 1)[1]
        return "stdlib:" + rel.split("/", 1)[0].removesuffix(".py")
    return path


def _frames(stack: str) -> list[tuple[str, str, str]]:
    out = []
    for raw in stack.split(";"):
        m = _FRAME.match(raw.strip())
        if m:
            out.append((m.group("func"), m.group("file"), package_of(m.group("file"))))
        else:
            out.append((raw.strip(), "", raw.strip()))
    return out


def summarize(raw: str, top: int = 25) -> dict[str, Any]:
    """Collapsed stacks (``frame;frame;... count``) → shares per package and function."""
    self_pkg: Counter[str] = Counter()
    self_fn: Counter[str] = Counter()
    incl_fn: Counter[str] = Counter()
    incl_mux: Counter[str] = Counter()
    idle = busy = 0
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in _frames(stack) if not f[0].startswith("<module>") or f[1]]
        if not frames:
            continue
        func, file, pkg = frames[-1]
        if any(word in func for word in _IDLE):
            idle += count
            continue
        busy += count
        self_pkg[pkg] += count
        self_fn[f"{pkg}:{func} ({Path(file).name})"] += count
        seen: set[str] = set()
        for f, fl, p in frames:
            key = f"{p}:{f} ({Path(fl).name})"
            if key not in seen:
                seen.add(key)
                incl_fn[key] += count
                if p.startswith("muxtrio"):
                    incl_mux[key] += count

    def share(counter: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(k, round(100 * v / max(busy, 1), 1)) for k, v in counter.most_common(n)]

    return {"busy_samples": busy, "idle_samples": idle,
            "idle_pct": round(100 * idle / max(idle + busy, 1), 1),
            "self_by_package": share(self_pkg, 20), "self_by_function": share(self_fn, top),
            "inclusive_muxtrio": share(incl_mux, top), "inclusive_all": share(incl_fn, top)}


def to_markdown(label: str, s: dict[str, Any]) -> str:
    lines = [f"#### {label}", "", f"{s['busy_samples']} busy samples, {s['idle_pct']}% of samples idle (epoll).", "",
             "| package (self) | % CPU |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in s["self_by_package"][:12]]
    lines += ["", "| function (self) | % CPU |", "|---|---:|"]
    lines += [f"| `{k}` | {v} |" for k, v in s["self_by_function"][:15]]
    lines += ["", "| muxtrio function (inclusive) | % CPU |", "|---|---:|"]
    lines += [f"| `{k}` | {v} |" for k, v in s["inclusive_muxtrio"][:15]]
    return "\n".join(lines) + "\n"


def main(seconds: float = 8.0) -> int:
    if not PYSPY.exists() and shutil.which("py-spy") is None:
        print(f"py-spy not found next to {sys.executable}: {Path(sys.executable).with_name('pip')} install py-spy")
        return 2
    pyspy = str(PYSPY if PYSPY.exists() else shutil.which("py-spy"))
    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    workdir = RESULTS / "raw" / f"profile-{stamp}"
    procs = Procs(workdir)
    report: dict[str, Any] = {"date": dt.date.today().isoformat(), "host": socket.gethostname(), "workloads": {}}
    md = []
    try:
        targets.start_fake(procs, targets.FAKE_PORT, "1", "fake-provider")
        mux = targets.start_muxtrio(procs, workdir)
        for label, path, body, conns in WORKLOADS:
            print(f"== {label}", flush=True)
            url = mux.base + path
            wrk.run(url, body, conns=conns, seconds=2)  # warm-up
            load: dict[str, Any] = {}
            thread = threading.Thread(
                target=lambda url=url, body=body, conns=conns, load=load: load.update(
                    wrk.run(url, body, conns=conns, seconds=seconds + 3)))
            thread.start()
            out = workdir / (re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") + ".txt")
            subprocess.run([pyspy, "record", "--pid", str(mux.pid), "--rate", "250", "--duration", str(int(seconds)),
                            "--format", "raw", "--full-filenames", "--nonblocking", "-o", str(out)],
                           capture_output=True, timeout=seconds + 60, check=False)
            thread.join()
            summary = summarize(out.read_text() if out.exists() else "")
            summary["load"] = {k: load.get(k) for k in ("rps", "p50_ms", "p99_ms")}
            report["workloads"][label] = summary
            md.append(to_markdown(f"{label} — {load.get('rps', 0):,.0f} req/s under py-spy", summary))
            print(md[-1], flush=True)
    finally:
        procs.stop_all()
    out_json = RESULTS / f"{report['date']}-{report['host']}-profile.json"
    out_json.write_text(json.dumps(report, indent=1) + "\n")
    out_json.with_suffix(".md").write_text("\n".join(md))
    print(f"wrote {out_json.relative_to(targets.ROOT)} and {out_json.with_suffix('.md').relative_to(targets.ROOT)}")
    return 0
