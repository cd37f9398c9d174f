"""Processes under test: start them pinned to a CPU, wait until they answer, sample their CPU and RSS, stop them.

Layout on the 2-core box (as in the stack measurements): the server under test on cpu0; the load generator and the
fake provider on cpu1. Servers that are not being measured are paused (SIGSTOP) so their background work cannot
steal cpu0 from the one that is; they are resumed (SIGCONT) for their own turn.

Every process is started in its own session and stopped by its process group, so nothing outlives the suite.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

CLK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    out = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = f.read().split()
    except OSError:
        kids = []
    for kid in kids:
        out += tree(int(kid))
    return out


def cpu_ticks(pid: int) -> int:
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total


def rss_kb(pid: int) -> int:
    """Resident memory of the process tree, in KiB (from /proc/PID/statm: cheap enough to sample often)."""
    total = 0
    for p in tree(pid):
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * PAGE_KB
        except OSError:
            pass
    return total


def machine_busy_ticks() -> int:
    """CPU ticks spent busy on all cores since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq + steal


def foreign_ticks() -> int:
    """Busy ticks of processes that are not this suite's (this process and everything it started)."""
    return machine_busy_ticks() - cpu_ticks(os.getpid())


def wait_quiet(max_wait: float, threshold_pct: float = 15.0, window: float = 0.5) -> float:
    """Wait (up to ``max_wait`` s) until other people's processes use less than ``threshold_pct`` of one core over
    ``window``; returns the last reading. This box is shared with other work (tests, builds): measuring while it is
    busy only makes every target look slower, and not by the same amount."""
    deadline = time.monotonic() + max_wait
    while True:
        f0, t0 = foreign_ticks(), time.monotonic()
        time.sleep(window)
        pct = 100.0 * (foreign_ticks() - f0) / CLK / (time.monotonic() - t0)
        if pct < threshold_pct or time.monotonic() >= deadline:
            return round(pct, 1)


def wait_http(url: str, timeout: float = 60.0, data: bytes | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
            with urllib.request.urlopen(req, timeout=5) as r:
                r.read()
            return
        except Exception as exc:  # any failure means "not up yet"
            last = exc
            time.sleep(0.25)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s: {last}")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    paused: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def pause(self) -> None:
        if not self.paused and self.popen.poll() is None:
            os.killpg(self.pid, signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.paused:
            os.killpg(self.pid, signal.SIGCONT)
            self.paused = False

    def stop(self, grace: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        self.resume()
        try:
            os.killpg(self.pid, signal.SIGTERM)
            self.popen.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.popen.wait()
        except ProcessLookupError:
            pass


@dataclass
class Procs:
    """All processes of one suite run, stopped together at the end."""

    logdir: Path
    procs: list[Proc] = field(default_factory=list)

    def start(self, name: str, cmd: Sequence[str], cpus: str, env: dict[str, str] | None = None,
              cwd: str | None = None) -> Proc:
        self.logdir.mkdir(parents=True, exist_ok=True)
        log = self.logdir / f"{name}.log"
        full_env = dict(os.environ)
        full_env.update(env or {})
        with open(log, "ab") as lf:
            popen = subprocess.Popen(
                ["taskset", "-c", cpus, *cmd], env=full_env, stdout=lf, stderr=lf, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=cwd, preexec_fn=_raise_fd_limit,
            )
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc) -> None:
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()

    @contextmanager
    def only(self, active: Proc | None) -> Iterator[None]:
        """Pause every server except ``active`` (and the fake providers, which are never paused)."""
        paused = [p for p in self.procs if p is not active and not p.name.startswith("fake")]
        for p in paused:
            p.pause()
        if active is not None:
            active.resume()
        try:
            yield
        finally:
            for p in paused:
                p.resume()


@dataclass
class Usage:
    """CPU and memory of a process tree while something ran."""

    cpu_pct: float
    rss_start_mb: float
    rss_max_mb: float
    seconds: float
    foreign_cpu_pct: float  # CPU used meanwhile by processes outside the suite (100 = one core)


def measured(pid: int, fn: Callable[[], T], interval: float = 0.2) -> tuple[T, Usage]:
    """Run ``fn`` while sampling the CPU and peak RSS of ``pid``'s process tree."""
    samples: list[int] = []
    stop = threading.Event()

    def sampler() -> None:
        while not stop.is_set():
            samples.append(rss_kb(pid))
            stop.wait(interval)

    rss0 = rss_kb(pid)
    c0, t0, f0 = cpu_ticks(pid), time.monotonic(), foreign_ticks()
    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    try:
        result = fn()
    finally:
        stop.set()
        thread.join()
    c1, t1, f1 = cpu_ticks(pid), time.monotonic(), foreign_ticks()
    usage = Usage(
        cpu_pct=round(100.0 * (c1 - c0) / CLK / max(t1 - t0, 1e-9), 1),
        rss_start_mb=round(rss0 / 1024, 1),
        rss_max_mb=round(max([*samples, rss0]) / 1024, 1),
        seconds=round(t1 - t0, 2),
        foreign_cpu_pct=round(100.0 * (f1 - f0) / CLK / max(t1 - t0, 1e-9), 1),
    )
    return result, usage
