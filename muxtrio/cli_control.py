"""The ``muxtrio status | reload | api-keys | usage`` commands: thin clients of a running gateway's management API.

Role: add these subcommands to the ``muxtrio`` parser, call ``/v1/management/...`` with the management key, and
print aligned tables.

Where and how: ``--url`` (default ``$MUXTRIO_URL``, else ``http://127.0.0.1:8317``) and ``--management-key``
(default ``$MUXTRIO_MANAGEMENT_KEY``, then ``$LLM_MUX_MANAGEMENT_KEY``).

``api-keys`` works on the gateway's flat ``api-keys`` list: ``list``, ``create [--value KEY]`` (a new key is
generated and printed once when no value is given), ``revoke KEY|INDEX`` and ``rotate KEY|INDEX [--value NEW]``,
the same verbs as ``muxtrio keys`` (per-team client keys, :mod:`muxtrio.keys.cli`); each subcommand is one request.

Invariants: one line on stderr and exit status 1 for every failure (server unreachable, key refused, API not
enabled, bad request), never a traceback; no key is printed except a key this command just generated.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
from collections.abc import Callable, Sequence
from typing import Any

import httpx2

DEFAULT_URL = "http://127.0.0.1:8317"
TIMEOUT_S = 30.0


class ControlError(Exception):
    """A failure to report in one line."""


def add_commands(commands: Any) -> None:
    """Register the management-API subcommands on ``muxtrio``'s subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"the gateway's base URL (default: $MUXTRIO_URL, else {DEFAULT_URL})")
    common.add_argument(
        "--management-key", metavar="KEY", help="default: $MUXTRIO_MANAGEMENT_KEY, else $LLM_MUX_MANAGEMENT_KEY"
    )

    status = commands.add_parser("status", parents=[common], help="a running gateway's state and credentials")
    status.set_defaults(handler=command_handler(_status))

    reload = commands.add_parser("reload", parents=[common], help="make a running gateway reload its config file")
    reload.set_defaults(handler=command_handler(_reload))

    keys = commands.add_parser("api-keys", help="a running gateway's flat api-keys list (see also: keys)")
    actions = keys.add_subparsers(dest="api_keys_command", metavar="{list,create,revoke,rotate}", required=True)
    listing = actions.add_parser("list", parents=[common], help="the keys, masked")
    listing.set_defaults(handler=command_handler(_keys_list))
    create = actions.add_parser("create", parents=[common], help="add a key (generated and printed once if no --value)")
    create.add_argument("--value", help="the key to add")
    create.set_defaults(handler=command_handler(_keys_create))
    revoke = actions.add_parser("revoke", parents=[common], help="remove a key")
    revoke.add_argument("key", help="the key itself, or its index from `keys list`")
    revoke.set_defaults(handler=command_handler(_keys_revoke))
    rotate = actions.add_parser("rotate", parents=[common], help="replace a key (a new one is generated if no --value)")
    rotate.add_argument("key", help="the key itself, or its index from `keys list`")
    rotate.add_argument("--value", help="the new key")
    rotate.set_defaults(handler=command_handler(_keys_rotate))

    usage = commands.add_parser("usage", parents=[common], help="token and request usage from the usage store")
    usage.add_argument("--since", default="24h", help="how far back: 30m, 24h, 7d, or an ISO 8601 time (default 24h)")
    usage.add_argument("--by", choices=("model", "provider", "key"), default="model", help="grouping (default model)")
    usage.set_defaults(handler=command_handler(_usage))


def command_handler(command: Callable[[Client, argparse.Namespace], list[str]]) -> Callable[[argparse.Namespace], int]:
    """The argparse handler running ``command`` against the management API: its lines on stdout, or one line on
    stderr and exit status 1 (shared by :mod:`muxtrio.keys.cli`)."""

    def handler(args: argparse.Namespace) -> int:
        try:
            client = Client(args.url or os.environ.get("MUXTRIO_URL") or DEFAULT_URL, _key(args.management_key))
            lines = command(client, args)
        except ControlError as exc:
            print(f"muxtrio: {exc}", file=sys.stderr)
            return 1
        sys.stdout.write("".join(f"{line}\n" for line in lines))
        return 0

    return handler


def _key(flag: str | None) -> str:
    key = flag or os.environ.get("MUXTRIO_MANAGEMENT_KEY") or os.environ.get("LLM_MUX_MANAGEMENT_KEY")
    if not key:
        raise ControlError("no management key: pass --management-key or set MUXTRIO_MANAGEMENT_KEY")
    return key.strip()


class Client:
    def __init__(self, url: str, key: str) -> None:
        self.url = url.rstrip("/")
        self.key = key

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = httpx2.request(
                method, f"{self.url}/v1/management{path}", headers={"Authorization": f"Bearer {self.key}"},
                timeout=TIMEOUT_S, **kwargs,
            )  # fmt: skip
        except httpx2.TransportError as exc:
            raise ControlError(
                f"cannot reach the gateway at {self.url} ({type(exc).__name__}); is it running? (--url, MUXTRIO_URL)"
            ) from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if 200 <= response.status_code < 300 and isinstance(body, dict) and "data" in body:
            return body["data"]
        error = body.get("error") if isinstance(body, dict) else None
        message = str(error.get("message", "")) if isinstance(error, dict) else ""
        if response.status_code == 401:
            raise ControlError(f"the management key was refused by {self.url} ({message or 'unauthorized'})")
        if response.status_code == 403:
            raise ControlError(f"{self.url} refused this address: {message}")
        if response.status_code == 404 and message.startswith("no route for"):
            raise ControlError(
                f"{self.url} has no management API: set MUXTRIO_MANAGEMENT_KEY (or remote-management.secret-key) "
                "where the gateway runs"
            )
        raise ControlError(f"{method} {path}: {response.status_code} {message or response.text[:200]}")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Columns padded to their widest cell; numbers right-aligned."""
    cells = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(_is_number(row[i]) for row in cells[1:]) and len(cells) > 1 for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = [cell.rjust(w) if num else cell.ljust(w) for cell, w, num in zip(row, widths, numeric, strict=True)]
        lines.append("  ".join(parts).rstrip())
    return lines


def _is_number(text: str) -> bool:
    return text == "-" or text.replace(".", "", 1).isdigit()


def _credential_state(cred: dict[str, Any]) -> str:
    if cred.get("removed"):
        return "removed (finishing open streams)"
    if cred.get("disabled"):
        return f"disabled: {cred.get('disabled_reason') or 'no reason'}"
    if cred.get("breaker") not in (None, "closed"):
        return f"breaker {cred['breaker']}"
    cooling = cred.get("cooling") or []
    if cooling:
        first = min(cooling, key=lambda c: c["seconds_left"])
        return f"cooling {first['seconds_left']:.0f}s ({first['model']}, {first['reason']})"
    return "ok"


def _status(client: Client, args: argparse.Namespace) -> list[str]:
    status = client.call("GET", "/status")
    credentials = client.call("GET", "/credentials")
    last = status["reloads"][-1] if status["reloads"] else None
    lines = [
        f"muxtrio {status['version']} at {client.url}  pid {status['pid']}  up {_duration(status['uptime_seconds'])}"
        f"  workers {status['workers']}",
        f"config: {status['config_file'] or '(none)'}"
        + (f"  last reload: {last['result']} ({last['trigger']}, {last['at']})" if last else ""),
    ]
    if status.get("last_reload_error"):
        lines.append(f"last reload error: {status['last_reload_error']}")
    pending = sorted({key for record in status["reloads"] for key in record.get("needs_restart", [])})
    if pending:
        lines.append(f"needs restart: {', '.join(pending)}")
    lines.append("")
    rows = [
        (c["label"], c["provider"], _credential_state(c), c["in_flight"], c["successes"], c["failures"],
         c.get("last_error_class"))
        for c in credentials
    ]  # fmt: skip
    lines += table(("CREDENTIAL", "PROVIDER", "STATE", "IN-FLIGHT", "OK", "FAILED", "LAST ERROR"), rows)
    return lines


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def _reload(client: Client, args: argparse.Namespace) -> list[str]:
    record = client.call("POST", "/reload")
    if record["result"] == "rejected":
        raise ControlError(f"reload rejected: {record['error']} (the gateway keeps its previous configuration)")
    lines = [f"reload: {record['result']}"]
    if record["changes"]:
        lines.append(f"changed: {', '.join(record['changes'])}")
    if record["needs_restart"]:
        lines.append(f"needs restart: {', '.join(record['needs_restart'])}")
    return lines


def _keys_table(keys: list[dict[str, Any]]) -> list[str]:
    return table(("INDEX", "KEY"), [(k["index"], k["key"]) for k in keys])


def _keys_list(client: Client, args: argparse.Namespace) -> list[str]:
    return _keys_table(client.call("GET", "/api-keys"))


def _keys_create(client: Client, args: argparse.Namespace) -> list[str]:
    change = client.call("POST", "/api-keys", json={"value": args.value} if args.value else {})
    lines = [f"created: {change['created']}  (shown once)"] if change.get("created") else ["added"]
    return lines + _change_notes(change)


def _target(args: argparse.Namespace) -> dict[str, Any]:
    return {"index": int(args.key)} if args.key.isdigit() else {"value": args.key}


def _keys_revoke(client: Client, args: argparse.Namespace) -> list[str]:
    change = client.call("DELETE", "/api-keys", params=_target(args))
    return ["revoked", *_change_notes(change)]


def _keys_rotate(client: Client, args: argparse.Namespace) -> list[str]:
    new = args.value or "sk-mx-" + secrets.token_urlsafe(24)
    target = _target(args)
    body = {"index": target["index"], "value": new} if "index" in target else {"old": target["value"], "new": new}
    change = client.call("PATCH", "/api-keys", json=body)
    lines = [f"rotated: the new key is {new}  (shown once)"] if not args.value else ["rotated"]
    return lines + _change_notes(change)


def _change_notes(change: dict[str, Any]) -> list[str]:
    notes = [f"reload: {change['reload']['result']}"]
    if change.get("warning"):
        notes.append(f"warning: {change['warning']}")
    return notes + _keys_table(change["keys"])


def _usage(client: Client, args: argparse.Namespace) -> list[str]:
    report = client.call("GET", "/usage", params={"from": args.since, "group-by": args.by})
    period = report["period"]
    summary = report["summary"]
    rows = [
        (row[args.by] or "-", row["requests"], row["success_count"], row["failure_count"],
         row["tokens"]["input"], row["tokens"]["output"], row["tokens"]["total"], row["avg_duration_ms"])
        for row in report.get(f"by_{args.by}", [])
    ]  # fmt: skip
    rows.append(
        ("TOTAL", summary["requests"], summary["success_count"], summary["failure_count"], summary["tokens"]["input"],
         summary["tokens"]["output"], summary["tokens"]["total"], summary["avg_duration_ms"])
    )  # fmt: skip
    headers = (args.by.upper(), "REQUESTS", "OK", "FAILED", "INPUT", "OUTPUT", "TOTAL", "AVG MS")
    return [f"usage from {period['from']} to {period['to']}", "", *table(headers, rows)]
