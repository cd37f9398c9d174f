"""``muxtrio keys create|list|get|update|rotate|revoke``: a thin client of ``/v1/management/client-keys``.

Where and how: ``--url`` (default ``$MUXTRIO_URL``, else ``http://127.0.0.1:8317``) and ``--management-key``
(default ``$MUXTRIO_MANAGEMENT_KEY``, else ``$LLM_MUX_MANAGEMENT_KEY``). Each subcommand is one request; the answer
is printed as an aligned table (``list``) or ``field: value`` lines. ``create`` and ``rotate`` print the new key
once, on its own line at the end, and say so.

Invariants: one line on stderr and exit status 1 for an unreachable server, a refused management key or an error
answer (its message as the server wrote it); never a traceback; the management key is never printed.
"""

from __future__ import annotations

import argparse
import time
from typing import Any
from urllib.parse import quote

from muxtrio.cli_control import DEFAULT_URL, Client, ControlError, command_handler, table

PATH = "/client-keys"  # under /v1/management


def add_commands(commands: Any) -> None:
    """Register ``keys`` and its subcommands on ``muxtrio``'s subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", help=f"the gateway's base URL (default: $MUXTRIO_URL, else {DEFAULT_URL})")
    common.add_argument(
        "--management-key", metavar="KEY", help="default: $MUXTRIO_MANAGEMENT_KEY, else $LLM_MUX_MANAGEMENT_KEY"
    )
    limits = argparse.ArgumentParser(add_help=False)
    limits.add_argument("--models", help="allowed models: names, aliases, * wildcards, comma-separated")
    limits.add_argument("--rpm", help="requests per minute")
    limits.add_argument("--tpm", help="tokens per minute (input + output), e.g. 200000 or 200k")
    limits.add_argument("--max-concurrency", help="requests in flight at once")
    limits.add_argument("--budget-tokens-day", help="tokens per UTC day, e.g. 2M")
    limits.add_argument("--budget-tokens-month", help="tokens per UTC calendar month, e.g. 50M")
    limits.add_argument("--budget-cost-day", help="cost per UTC day, in the currency of prices:")
    limits.add_argument("--budget-cost-month", help="cost per UTC calendar month")
    limits.add_argument("--expires", metavar="DURATION", help="expire after 12h, 30d, 4w ('never' on update)")
    limits.add_argument("--owner", help="who owns the key")
    limits.add_argument("--team", help="the team it belongs to")

    keys = commands.add_parser("keys", help="a running gateway's client keys (mx-…, with limits and budgets)")
    actions = keys.add_subparsers(dest="keys_command", metavar="{create,list,get,update,rotate,revoke}", required=True)
    create = actions.add_parser("create", parents=[common, limits], help="make a key (printed once)")
    create.add_argument("--name", required=True, help="a name for the key (team, tool, person)")
    create.set_defaults(handler=command_handler(_create))
    listing = actions.add_parser("list", parents=[common], help="every key, without secrets")
    listing.set_defaults(handler=command_handler(_list))
    get = actions.add_parser("get", parents=[common], help="one key and its usage in the current windows")
    get.add_argument("key", help="the key's id or name")
    get.set_defaults(handler=command_handler(_get))
    update = actions.add_parser("update", parents=[common, limits], help="change a key's models, limits, expiry")
    update.add_argument("key", help="the key's id or name")
    update.add_argument("--name", help="a new name")
    update.add_argument("--disable", action="store_true", help="refuse requests with it until --enable")
    update.add_argument("--enable", action="store_true", help="accept requests with it again")
    update.set_defaults(handler=command_handler(_update))
    rotate = actions.add_parser("rotate", parents=[common], help="a new secret for the key (printed once)")
    rotate.add_argument("key", help="the key's id or name")
    rotate.set_defaults(handler=command_handler(_rotate))
    revoke = actions.add_parser("revoke", parents=[common], help="revoke a key for good")
    revoke.add_argument("key", help="the key's id or name")
    revoke.set_defaults(handler=command_handler(_revoke))


def _body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    for name in ("rpm", "tpm", "max_concurrency", "budget_tokens_day", "budget_tokens_month", "budget_cost_day",
                 "budget_cost_month"):
        value = getattr(args, name)
        if value is not None:
            limits[name.replace("_", "-")] = None if value in ("none", "off") else value
    if limits:
        body["limits"] = limits
    if args.models is not None:
        body["models"] = args.models
    if args.expires is not None:
        body["expires-in"] = None if args.expires == "never" else args.expires
    for name in ("owner", "team", "name"):
        if getattr(args, name, None) is not None:
            body[name] = getattr(args, name)
    return body


def _when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


def _limits_text(limits: dict[str, Any]) -> str:
    return " ".join(f"{name}={value:g}" for name, value in limits.items() if value is not None) or "-"


def _details(key: dict[str, Any]) -> list[str]:
    lines = [
        f"id:          {key['id']}",
        f"name:        {key['name']}",
        f"key:         {key['hint']}",
        f"state:       {key['state']}",
        f"models:      {', '.join(key['models']) or 'all'}",
        f"limits:      {_limits_text(key['limits'])}",
        f"owner/team:  {key['owner'] or '-'} / {key['team'] or '-'}",
        f"created:     {_when(key['created_at'])}",
        f"expires:     {_when(key['expires_at'])}",
        f"last used:   {_when(key['last_used_at'])}",
    ]
    if key.get("usage"):
        lines.append("usage now:   " + " ".join(f"{k}={v:g}" for k, v in sorted(key["usage"].items())))
    return lines


def _with_secret(data: dict[str, Any], verb: str) -> list[str]:
    return [*_details(data["key"]), "", f"The key ({verb}; shown only now, store it safely):", data["secret"]]


def _create(client: Client, args: argparse.Namespace) -> list[str]:
    return _with_secret(client.call("POST", PATH, json=_body(args)), "new")


def _list(client: Client, args: argparse.Namespace) -> list[str]:
    keys = client.call("GET", PATH)
    rows = [
        (k["id"], k["name"], k["hint"], k["state"], ",".join(k["models"]) or "all", _limits_text(k["limits"]),
         _when(k["expires_at"]), _when(k["last_used_at"]))
        for k in keys
    ]  # fmt: skip
    return table(("ID", "NAME", "KEY", "STATE", "MODELS", "LIMITS", "EXPIRES", "LAST USED"), rows)


def _get(client: Client, args: argparse.Namespace) -> list[str]:
    return _details(client.call("GET", f"{PATH}/{_segment(args.key)}"))


def _update(client: Client, args: argparse.Namespace) -> list[str]:
    if args.enable and args.disable:
        raise ControlError("--enable and --disable contradict each other")
    body = _body(args)
    if args.enable or args.disable:
        body["enabled"] = bool(args.enable)
    if not body:
        raise ControlError("nothing to change: pass --models, a limit, --expires, --name, --enable or --disable")
    return _details(client.call("PATCH", f"{PATH}/{_segment(args.key)}", json=body))


def _rotate(client: Client, args: argparse.Namespace) -> list[str]:
    rotated = client.call("POST", f"{PATH}/{_segment(args.key)}/rotate")
    return _with_secret(rotated, "rotated; the old one no longer works")


def _revoke(client: Client, args: argparse.Namespace) -> list[str]:
    return _details(client.call("POST", f"{PATH}/{_segment(args.key)}/revoke"))


def _segment(key: str) -> str:
    """A key id or name as one URL path segment."""
    return quote(key, safe="")
