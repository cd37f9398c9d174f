"""``python -m perf``: the muxtrio performance suite (issue 8), side by side with LiteLLM and the direct provider.

    python -m perf run [--quick] [--only SCENARIO ...] [--no-litellm]
    python -m perf profile [--seconds N]          # py-spy on muxtrio's hot paths (see perf/profile.py)
    python -m perf codecs [--quick]               # in-process codec benchmark (perf/bench_codecs.py)
    python -m perf fake [--port N]                # just the fake provider

``run`` starts the fake provider (cpu1), a second fake as the direct baseline (cpu0), muxtrio (cpu0) and LiteLLM
(cpu0, from perf/venv-litellm), runs the scenarios, writes ``perf/results/<date>-<host>.json`` and prints a Markdown
table. Logs and generated configs go to ``perf/results/raw/<stamp>/`` (git-ignored). All traffic is loopback, every
run is bounded in time, and every process started is stopped at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any

from perf import targets, wrk
from perf.procs import Procs
from perf.scenarios import SCENARIOS, TABLE_HEAD, Row, Suite, format_row

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = {}
    for pkg in ("trio", "hypercorn", "httpx2", "h11", "orjson"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    litellm = None
    if targets.LITELLM_BIN.exists():
        out = subprocess.run([str(targets.LITELLM_VENV / "bin" / "pip"), "show", "litellm"], capture_output=True,
                             text=True).stdout
        litellm = next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Version")), None)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=targets.ROOT).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "muxtrio"], capture_output=True, text=True,
                           cwd=targets.ROOT).stdout.strip()
    return {"host": socket.gethostname(), "cpus": os.cpu_count(), "cpu_model": cpu, "memory_gb": round(mem_gb, 1),
            "python": platform.python_version(), "kernel": platform.release(), "packages": versions,
            "litellm": litellm, "muxtrio_commit": commit + ("+dirty" if dirty else "")}


def markdown(rows: list[Row], meta: dict[str, Any]) -> str:
    head = (f"Machine: {meta['cpus']} cores ({meta['cpu_model']}), {meta['memory_gb']} GB, Python {meta['python']}; "
            f"LiteLLM {meta['litellm'] or 'not run'}; muxtrio {meta['muxtrio_commit']}; "
            f"{meta['date']}{' (--quick)' if meta['quick'] else ''}.")
    return "\n".join([head, "", TABLE_HEAD, *(format_row(r) for r in rows)]) + "\n"


def cmd_run(args: argparse.Namespace) -> int:
    names = args.only or [*SCENARIOS, "codecs"]
    unknown = [n for n in names if n not in SCENARIOS and n != "codecs"]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join([*SCENARIOS, 'codecs'])}")
        return 2
    if (why := wrk.available()) is not None:
        print(why)
        return 2
    stamp = dt.datetime.now().strftime("%Y-%m-%dT%H%M%S")
    workdir = RESULTS / "raw" / stamp
    workdir.mkdir(parents=True, exist_ok=True)
    meta = {**machine(), "date": dt.date.today().isoformat(), "quick": args.quick, "scenarios": names}
    procs = Procs(workdir)
    rows: list[Row] = []
    raw: dict[str, Any] = {}
    t0 = time.monotonic()
    try:
        server_scenarios = [n for n in names if n != "codecs"]
        if server_scenarios:
            print(f"starting servers (logs in {workdir.relative_to(targets.ROOT)})", flush=True)
            fake = targets.start_fake(procs, targets.FAKE_PORT, "1", "fake-provider")
            direct = targets.start_fake(procs, targets.DIRECT_PORT, "0", "fake-direct")
            mux = targets.start_muxtrio(procs, workdir)
            litellm = None
            why = "--no-litellm" if args.no_litellm else targets.litellm_available()
            if why is None:
                litellm = targets.start_litellm(procs, workdir)
            else:
                print(f"LiteLLM not run: {why}", flush=True)
                meta["litellm"] = None
            suite = Suite(args.quick, procs, workdir, fake, direct, mux, litellm)
            for name in server_scenarios:
                print(f"== {name}", flush=True)
                try:
                    SCENARIOS[name](suite)
                except Exception as exc:  # one broken scenario must not lose the others' numbers
                    print(f"  {name} failed: {exc!r}", flush=True)
                    suite.raw[name] = {"failed": repr(exc)}
            rows += suite.rows
            raw.update(suite.raw)
            procs.stop_all()
        if "codecs" in names:
            print("== codecs", flush=True)
            from perf import bench_codecs

            result = bench_codecs.run_pinned(args.quick)
            raw["codecs"] = result
            rows += bench_codecs.rows(result)
            for row in bench_codecs.rows(result):
                print("  " + format_row(row), flush=True)
    finally:
        procs.stop_all()
    meta["duration_s"] = round(time.monotonic() - t0)
    end = machine()["muxtrio_commit"]
    if end != meta["muxtrio_commit"]:  # servers started mid-run (workers, websocket, codecs) ran the newer code
        meta["muxtrio_commit_at_end"] = end
    table = markdown(rows, meta)
    only = "-only-" + "-".join(args.only) if args.only else ""  # a partial run never overwrites a whole one
    out = RESULTS / f"{meta['date']}-{meta['host']}{'-quick' if args.quick else ''}{only}.json"
    out.write_text(json.dumps({"meta": meta, "rows": [asdict(r) for r in rows], "raw": raw}, indent=1,
                              default=str) + "\n")
    (out.with_suffix(".md")).write_text(table)
    print()
    print(table)
    print(f"wrote {out.relative_to(targets.ROOT)} and {out.with_suffix('.md').relative_to(targets.ROOT)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m perf", description="muxtrio performance suite")
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run", help="run the scenarios, write perf/results/<date>-<host>.json, print a table")
    run.add_argument("--quick", action="store_true", help="short runs, 200 instead of 1,000 streams")
    run.add_argument("--only", action="append", metavar="SCENARIO",
                     help=f"run only these (repeatable): {', '.join([*SCENARIOS, 'codecs'])}")
    run.add_argument("--no-litellm", action="store_true", help="skip LiteLLM (muxtrio and direct only)")
    prof = sub.add_parser("profile", help="py-spy profile of muxtrio under load")
    prof.add_argument("--seconds", type=float, default=8.0)
    codecs = sub.add_parser("codecs", help="in-process codec benchmark")
    codecs.add_argument("--quick", action="store_true")
    observe = sub.add_parser("observe", help="metrics + usage records on vs off, alternating (issue 14's overhead)")
    observe.add_argument("--quick", action="store_true", help="3 s runs instead of 8 s")
    observe.add_argument("--rounds", type=int, default=4, help="rounds of on/off per load (default 4)")
    fake = sub.add_parser("fake", help="run the fake provider in the foreground")
    fake.add_argument("--port", type=int, default=targets.FAKE_PORT)
    args = ap.parse_args(argv)
    if args.cmd == "run":
        return cmd_run(args)
    if args.cmd == "profile":
        from perf import profile

        return profile.main(args.seconds)
    if args.cmd == "observe":
        from perf import observe_overhead

        return observe_overhead.main(args.quick, args.rounds)
    if args.cmd == "codecs":
        from perf import bench_codecs

        return bench_codecs.main(["--quick"] if args.quick else [])
    sys.argv = ["fake_provider", "--port", str(args.port)]
    from perf import fake_provider

    fake_provider.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
