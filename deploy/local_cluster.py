"""The scale-out topology on loopback: nginx in front of N muxtrio nodes (``--workers 1`` each), one Redis (shared
state) and one Postgres (usage records and client keys), all from one config file (``deploy/muxtrio.yaml`` unless
``--config``), from the Debian packages ``nginx``, ``redis-server`` and ``postgresql``.

``deploy/local-cluster up [--nodes 2] [--dir DIR] [--config FILE]`` starts everything in the background and prints
the URL; ``deploy/local-cluster down [--dir DIR]`` stops what ``up`` started (by the process ids it wrote) and
removes the directory; ``status`` says what runs. Tests and ``perf/`` use :class:`Cluster` directly.

:data:`SERVICES` is the topology — service names and ports — that ``deploy/compose.yaml`` repeats (a test checks it).
Everything listens on 127.0.0.1. Postgres runs as the ``postgres`` system user when this runs as root (it refuses
root); nginx's worker runs as the invoking user.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent
SERVICES: dict[str, int] = {"nginx": 8080, "muxtrio-1": 8401, "muxtrio-2": 8402, "redis": 6380, "postgres": 5433}
"""Service name → port, here and in ``compose.yaml``."""
API_KEY_ENV = "MUXTRIO_API_KEYS"


def _wait_port(port: int, seconds: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process for port {port} exited with status {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds:g} s")


def _wait_healthy(port: int, proc: subprocess.Popen[bytes], seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"muxtrio on port {port} exited with status {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"muxtrio on port {port} did not become healthy")


def _postgres_bin() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("the Debian postgresql package is not installed")
    return os.path.dirname(found[-1])


def render_nginx(**values: str) -> str:
    """``nginx.conf.template`` with its ``@name@`` placeholders filled (nginx's own ``$vars`` untouched)."""
    conf = (DEPLOY / "nginx.conf.template").read_text()
    for name, value in values.items():
        conf = conf.replace(f"@{name}@", value)
    return conf


def compose_nginx() -> str:
    """The nginx.conf of ``compose.yaml``: the same template, the nodes by service name."""
    servers = "\n".join(f"        server {name}:{port} max_fails=1 fail_timeout=2s;"
                        for name, port in SERVICES.items() if name.startswith("muxtrio-"))
    return render_nginx(run_dir="/tmp", servers=servers, listen=str(SERVICES["nginx"]), user_line="",
                        error_log="/dev/stderr")


@dataclass
class Cluster:
    """One local cluster in ``run_dir``. ``ports`` defaults to :data:`SERVICES` with ``muxtrio-N`` for N nodes."""

    run_dir: Path
    config: Path = DEPLOY / "muxtrio.yaml"
    nodes: int = 2
    ports: dict[str, int] = field(default_factory=dict)
    api_key: str = "sk-local-cluster"
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the muxtrio nodes
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        base = dict(SERVICES)
        for name in [n for n in base if n.startswith("muxtrio-")]:
            del base[name]
        for i in range(1, self.nodes + 1):
            base[f"muxtrio-{i}"] = SERVICES.get(f"muxtrio-{i}", 8400 + i)
        self.ports = base | self.ports

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['nginx']}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports['redis']}/0"

    @property
    def postgres_dsn(self) -> str:
        return f"postgresql://muxtrio@127.0.0.1:{self.ports['postgres']}/postgres"

    def node_names(self) -> list[str]:
        return [f"muxtrio-{i}" for i in range(1, self.nodes + 1)]

    # ------------------------------------------------------------------ services
    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = open(self.run_dir / f"{name}.log", "ab")  # noqa: SIM115 (the child owns it)
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        log.close()
        self.procs[name] = proc
        (self.run_dir / f"{name}.pid").write_text(str(proc.pid))
        return proc

    def _run_as(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def start_redis(self) -> None:
        data = self.run_dir / "redis"
        data.mkdir(exist_ok=True)
        proc = self._spawn("redis", ["redis-server", "--port", str(self.ports["redis"]), "--bind", "127.0.0.1",
                                     "--save", "", "--appendonly", "no", "--dir", str(data)])
        _wait_port(self.ports["redis"], proc=proc)

    def start_postgres(self) -> None:
        bindir = _postgres_bin()
        root = self.run_dir / "postgres"
        root.mkdir(exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(root, "postgres", "postgres")
        data = root / "data"
        if not data.exists():
            subprocess.run([*self._run_as(), f"{bindir}/initdb", "-D", str(data), "-U", "muxtrio", "--auth=trust",
                            "-E", "UTF8"], check=True, capture_output=True, timeout=120)
        subprocess.run([*self._run_as(), f"{bindir}/pg_ctl", "-D", str(data), "-w", "-s", "-l", str(root / "log"),
                        "-o", f"-p {self.ports['postgres']} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off",
                        "start"], check=True, capture_output=True, timeout=60)

    def stop_postgres(self) -> None:
        data = self.run_dir / "postgres" / "data"
        if (data / "postmaster.pid").exists():
            subprocess.run([*self._run_as(), f"{_postgres_bin()}/pg_ctl", "-D", str(data), "-w", "-s", "-m", "fast",
                            "stop"], capture_output=True, timeout=60)

    def node_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MUXTRIO_")}
        env |= {"MUXTRIO_STATE_URL": self.redis_url, "MUXTRIO_USAGE_DSN": self.postgres_dsn,
                API_KEY_ENV: self.api_key, "PYTHONPATH": str(DEPLOY.parent)}
        return env | self.env

    def start_node(self, name: str) -> subprocess.Popen[bytes]:
        port = self.ports[name]
        proc = self._spawn(name, [sys.executable, "-m", "muxtrio", "serve", "--config", str(self.config),
                                  "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], env=self.node_env())
        _wait_healthy(port, proc)
        return proc

    def start_nginx(self, nodes: list[str] | None = None) -> None:
        """(Re)start nginx over ``nodes`` (all by default)."""
        self.stop("nginx")
        servers = "\n".join(f"        server 127.0.0.1:{self.ports[n]} max_fails=1 fail_timeout=2s;"
                            for n in (nodes or self.node_names()))
        user = pwd.getpwuid(os.geteuid()).pw_name
        conf = render_nginx(run_dir=str(self.run_dir), servers=servers, listen=f"127.0.0.1:{self.ports['nginx']}",
                            user_line=f"user {user};" if os.geteuid() == 0 else "",
                            error_log=str(self.run_dir / "nginx.error.log"))
        (self.run_dir / "nginx.conf").write_text(conf)
        proc = self._spawn("nginx", [shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(self.run_dir / "nginx.conf"),
                                     "-p", str(self.run_dir), "-g", "daemon off;"])
        _wait_port(self.ports["nginx"], proc=proc)

    def start(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "cluster.json").write_text(json.dumps({"ports": self.ports, "nodes": self.nodes}))
        try:
            self.start_redis()
            self.start_postgres()
            for name in self.node_names():
                self.start_node(name)
            self.start_nginx()
        except BaseException:
            self.stop_all()
            raise

    # ------------------------------------------------------------------ stopping
    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Stop the process ``up`` started for ``name`` (known by its pid file) and wait for it."""
        pid_file = self.run_dir / f"{name}.pid"
        proc = self.procs.pop(name, None)
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(sig)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        elif pid_file.exists():
            pid = int(pid_file.read_text())
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
            else:
                for _ in range(300):
                    try:
                        os.kill(pid, 0)
                    except ProcessLookupError:
                        break
                    time.sleep(0.1)
        pid_file.unlink(missing_ok=True)

    def stop_all(self) -> None:
        for name in ["nginx", *sorted(n for n in self.ports if n.startswith("muxtrio-")), "redis"]:
            self.stop(name)
        self.stop_postgres()

    def status(self) -> dict[str, bool]:
        out = {}
        for name, port in self.ports.items():
            with socket.socket() as sock:
                out[name] = sock.connect_ex(("127.0.0.1", port)) == 0
        return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deploy/local-cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("up", "down", "status", "nginx-compose"))
    parser.add_argument("--dir", default="/tmp/muxtrio-cluster", help="run directory (logs, data, pid files)")
    parser.add_argument("--config", default=str(DEPLOY / "muxtrio.yaml"), help="the muxtrio config every node reads")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--port-offset", type=int, default=0, help="added to every port (another cluster runs)")
    args = parser.parse_args(argv)
    if args.command == "nginx-compose":
        (DEPLOY / "nginx.compose.conf").write_text(compose_nginx())
        return 0
    run_dir = Path(args.dir)
    saved = run_dir / "cluster.json"
    if args.command != "up" and saved.exists():
        known = json.loads(saved.read_text())
        cluster = Cluster(run_dir, nodes=known["nodes"], ports=known["ports"])
    else:
        cluster = Cluster(run_dir, Path(args.config), args.nodes)
        cluster.ports = {name: port + args.port_offset for name, port in cluster.ports.items()}
    if args.command == "up":
        cluster.start()
        print(f"muxtrio cluster up: {cluster.url} (key {cluster.api_key}); logs in {run_dir}")
    elif args.command == "down":
        cluster.stop_all()
        shutil.rmtree(run_dir, ignore_errors=True)
        print("muxtrio cluster down")
    else:
        for name, up in cluster.status().items():
            print(f"{name:10} {cluster.ports[name]:5} {'up' if up else 'down'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
