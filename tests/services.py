"""Throwaway real services for tests: a Postgres cluster from the Debian ``postgresql`` package in a temp dir.

The cluster listens on a loopback port and a unix socket inside its own temp dir, runs as the ``postgres`` system
user when the tests run as root (Postgres refuses to run as root), and is stopped and deleted afterwards. Tests that
need it skip with the reason only where the package is missing (``.ci/run`` installs it).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass


def postgres_bin() -> str | None:
    """The newest installed ``/usr/lib/postgresql/N/bin``, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return os.path.dirname(found[-1]) if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Postgres:
    dsn: str
    data_dir: str
    bindir: str
    port: int
    run_as: list[str]

    def ctl(self, *args: str) -> None:
        subprocess.run([*self.run_as, f"{self.bindir}/pg_ctl", "-D", self.data_dir, "-w", "-s", *args],
                       check=True, capture_output=True, timeout=60)

    def stop(self) -> None:
        self.ctl("stop", "-m", "immediate")

    def start(self) -> None:
        self.ctl("start", "-l", os.path.join(self.data_dir, "..", "log"), "-o",
                 f"-p {self.port} -k {os.path.dirname(self.data_dir)} -c listen_addresses=127.0.0.1 -c fsync=off")


@contextmanager
def postgres_cluster() -> Iterator[Postgres]:
    bindir = postgres_bin()
    if bindir is None:
        raise RuntimeError("the Debian postgresql package is not installed")
    root = tempfile.mkdtemp(prefix="muxtrio-pg-")
    run_as: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        run_as = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(root, "data")
    port = free_port()
    subprocess.run([*run_as, f"{bindir}/initdb", "-D", data, "-U", "muxtrio", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True, timeout=120)
    pg = Postgres(f"postgresql://muxtrio@127.0.0.1:{port}/postgres", data, bindir, port, run_as)
    pg.start()
    try:
        yield pg
    finally:
        with suppress(subprocess.SubprocessError):
            pg.stop()
        shutil.rmtree(root, ignore_errors=True)


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"port {port} did not open")


@dataclass
class Redis:
    """A throwaway ``redis-server`` on loopback (no persistence); :meth:`restart` keeps its port."""

    port: int
    dir: str
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", self.dir], stdout=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def redis_server() -> Iterator[Redis]:
    """A ``redis-server`` from the Debian package (``.ci/run`` installs it), stopped and deleted afterwards."""
    if shutil.which("redis-server") is None:
        raise RuntimeError("the Debian redis-server package is not installed")
    server = Redis(free_port(), tempfile.mkdtemp(prefix="muxtrio-redis-"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


def throwaway_dsn(kind: str, tmp_path: object, pg: Postgres | None, tables: tuple[str, ...]) -> str:
    """A DSN for one test: a SQLite file in ``tmp_path``, or the module's Postgres with ``tables`` dropped first."""
    if kind == "sqlite":
        return f"sqlite://{tmp_path}/usage.db"
    assert pg is not None
    import psycopg

    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        for table in tables:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    return pg.dsn
