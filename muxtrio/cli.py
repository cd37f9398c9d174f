"""The ``muxtrio`` command: ``serve`` (the default), ``check``, ``models``, ``login <account type>`` and ``keys``
(:mod:`muxtrio.keys.cli`).
``status``, ``reload``, ``api-keys`` and ``usage`` talk to a running gateway's management API
(:mod:`muxtrio.cli_control`).

Role: parse the command line, load the configuration (CLI flags > ``MUXTRIO_*`` environment > file > defaults), print
its warnings to stderr, and hand over to the server runner or print a summary.

Warnings are the config's own (ignored keys, skipped legacy entries) plus :func:`deployment_warnings`, which need the
whole picture (CLI flags applied, routing resolved): a fallback naming a model nothing serves, a listen address beyond
loopback with no client keys. ``check --strict`` exits 1 when there is any.

Invariants:
- A :class:`~muxtrio.errors.ConfigError` is one line on stderr and exit status 2, never a traceback.
- Nothing printed contains a secret: keys are masked with :func:`muxtrio.errors.mask_secret`, URL user-info and
  credential-like header values are hidden.
- The server is imported only by ``serve`` and only when it runs, so ``check`` and ``models`` stay light; this is the
  one module besides the server itself allowed to import it.
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import socket
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

import attrs

from muxtrio import cli_control, provider_types
from muxtrio.config import Config, ProviderConfig, default_config, load_config, redact_headers, redact_url
from muxtrio.engine.routing import Router
from muxtrio.errors import ConfigError, mask_secret
from muxtrio.keys import cli as keys_cli
from muxtrio.upstream.providers import default_patterns

_COMMANDS = ("serve", "check", "models", "keys", "status", "reload", "api-keys", "usage")


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected an integer between 0 and 65535, got {text!r}")
    return int(text)


def _workers(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="muxtrio",
        description="An LLM API gateway: every wire format in, every provider out. Without a command: serve.",
    )
    commands = parser.add_subparsers(
        dest="command", metavar="{serve,check,models,login,keys,status,reload,api-keys,usage}"
    )
    config_help = (
        "config file (default: $MUXTRIO_CONFIG, ./muxtrio.yaml, ~/.config/muxtrio/config.yaml, else built-in defaults)"
    )

    serve = commands.add_parser("serve", help="run the gateway (the default command)")
    serve.add_argument("--config", metavar="PATH", help=config_help)
    serve.add_argument("--host", help="listen address (overrides MUXTRIO_HOST and the file)")
    serve.add_argument("--port", type=_port, help="listen port (overrides MUXTRIO_PORT and the file)")
    serve.add_argument("--workers", type=_workers, help="worker processes (overrides the file)")
    serve.set_defaults(handler=_serve)

    check = commands.add_parser("check", help="validate the configuration and print the resolved routes")
    check.add_argument("--config", metavar="PATH", help=config_help)
    check.add_argument("--strict", action="store_true", help="exit with status 1 when there are warnings")
    check.set_defaults(handler=_check)

    models = commands.add_parser("models", help="list the model names clients can use, with their provider")
    models.add_argument("--config", metavar="PATH", help=config_help)
    models.set_defaults(handler=_models)

    login = commands.add_parser("login", help="log in to a subscription account and save its token in auth-dir")
    login.add_argument("provider", choices=provider_types.ACCOUNT_TYPES, help="the account type")
    login.add_argument("--no-browser", action="store_true", help="print the URL instead of opening a browser")
    login.add_argument("--project", default="", help="gemini-cli: Google Cloud project(s), comma-separated")
    login.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the login (default 300)")
    login.add_argument("--config", metavar="PATH", help=config_help)
    login.set_defaults(handler=_login)

    keys_cli.add_commands(commands)
    cli_control.add_commands(commands)
    return parser


def detect_local_ollama(host: str = "127.0.0.1", port: int = 11434, timeout: float = 0.3) -> bool:
    """Whether an Ollama server answers ``GET /api/version`` on ``host:port`` within ``timeout`` seconds (in all).

    A plain blocking socket: it runs once, before any event loop, when there is no config file."""
    deadline = time.monotonic() + timeout
    received = b""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(f"GET /api/version HTTP/1.0\r\nHost: {host}:{port}\r\n\r\n".encode("ascii"))
            while len(received) < 65536:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                sock.settimeout(remaining)
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
    except OSError:
        return False
    status_line = received.split(b"\r\n", 1)[0].split()
    return len(status_line) >= 2 and status_line[1] == b"200" and b'"version"' in received


def _with_default_command(argv: Sequence[str]) -> list[str]:
    """``muxtrio`` and ``muxtrio --port 9000`` mean ``muxtrio serve ...``; ``-h`` still shows the overview."""
    args = list(argv)
    if not args or (args[0].startswith("-") and args[0] not in ("-h", "--help")):
        return ["serve", *args]
    return args


def _load(args: argparse.Namespace) -> Config:
    config = load_config(args.config)
    if config.source is None and detect_local_ollama():
        config = default_config(local_ollama=True)  # no config file: serve the local Ollama too
    for warning in config.warnings:
        print(f"muxtrio: warning: {warning}", file=sys.stderr)
    return config


def _is_loopback_host(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def deployment_warnings(config: Config) -> list[str]:
    """Problems of the configuration as a whole, which loading alone cannot see: a fallback that names a model no
    provider serves (it can never answer), and a listen address beyond loopback with neither ``api-keys`` nor
    ``disable-auth`` (every remote client is refused)."""
    warnings: list[str] = []
    if not config.disable_auth and not config.api_keys and not _is_loopback_host(config.host):
        warnings.append(
            f"host: {config.host} accepts remote connections but no api-keys are set, so remote clients will be "
            "refused (only loopback clients are served); set api-keys, or disable-auth: true"
        )
    router = Router(config)
    for model, chain in config.fallbacks.items():
        for name in chain:
            if not any(_may_serve(d.provider) for d in router.resolve(name)):
                warnings.append(
                    f"fallbacks: {model} -> {name}: no provider serves {name!r}; this fallback never answers"
                )
    return warnings


def _may_serve(provider: ProviderConfig) -> bool:
    """Whether a provider can answer at all: it has keys, needs none, or takes its accounts from auth-dir."""
    return bool(provider.credentials) or not provider.requires_key or provider_types.info(provider.type).account


def _warn(warnings: Sequence[str]) -> None:
    for warning in warnings:
        print(f"muxtrio: warning: {warning}", file=sys.stderr)


def _serve(args: argparse.Namespace) -> int:
    config = _load(args)
    flags = {name: getattr(args, name) for name in ("host", "port", "workers") if getattr(args, name) is not None}
    if flags:
        config = attrs.evolve(config, **flags)
    _warn(deployment_warnings(config))
    # Imported here: the server pulls in Hypercorn and the engine, which check and models do not need.
    runner = importlib.import_module("muxtrio.server.runner")
    run: Callable[[Config], int] = runner.run
    return run(config)


def _seconds(value: float | None) -> str:
    return "none" if value is None else f"{value:g}s"


def _auth_line(config: Config) -> str:
    if config.disable_auth:
        return "disabled (disable-auth: true)"
    if not config.api_keys:
        return "no client keys configured"
    masked = ", ".join(mask_secret(key) for key in config.api_keys)
    return f"{len(config.api_keys)} client key(s): {masked}"


def _provider_lines(config: Config, provider: ProviderConfig) -> list[str]:
    state = "" if provider.enabled else "  (disabled)"
    lines = [f"  {provider.name}  type={provider.type.value}  base-url={redact_url(provider.base_url) or '-'}{state}"]
    keys = ", ".join(
        mask_secret(c.key) + (f" via {redact_url(c.proxy_url)}" if c.proxy_url else "") for c in provider.credentials
    )
    credentials = f"{len(provider.credentials)}" + (f" ({keys})" if keys else "")
    if provider_types.info(provider.type).account:
        where = config.auth_dir or "auth-dir (not set: add auth-dir or run muxtrio login first)"
        credentials = f"subscription accounts in {where} (muxtrio login {provider.type.value})"
    elif not provider.credentials and provider.requires_key:
        credentials += "  (needs an api-key: not routed)"
    lines.append(f"    credentials: {credentials}")
    if provider.proxy_url:
        lines.append(f"    proxy: {redact_url(provider.proxy_url)}")
    if provider.headers:
        headers = ", ".join(f"{name}: {value}" for name, value in redact_headers(provider.headers).items())
        lines.append(f"    headers: {headers}")
    if provider.models:
        models = ", ".join(
            m.name if m.client_name == m.name else f"{m.client_name} -> {m.name}" for m in provider.models
        )
        lines.append(f"    models: {models}")
    elif default_patterns(provider.type, provider.base_url) == ("*",):
        lines.append("    models: any (no list: requested names are passed through)")
    else:
        families = ", ".join(default_patterns(provider.type, provider.base_url))
        force = f"'{provider.name}/<model>'"
        lines.append(f"    models: {families} (no list: these names are passed through; others with {force})")
    if provider.excluded_models:
        lines.append(f"    excluded: {', '.join(provider.excluded_models)}")
    if provider.timeouts is not None:
        t = config.timeouts_for(provider)
        lines.append(
            f"    timeouts: connect {_seconds(t.connect)}, first-byte {_seconds(t.first_byte)}, "
            f"idle {_seconds(t.idle)}, total {_seconds(t.total)}"
        )
    return lines


def describe(config: Config) -> list[str]:
    """The resolved configuration as ``muxtrio check`` prints it, secrets masked."""
    t = config.timeouts
    lines = [
        f"config: {config.source or 'none found: built-in defaults (providers detected from the environment)'}",
        f"listen: {'https' if config.tls.enable else 'http'}://{config.host}:{config.port}  workers={config.workers}",
        f"client auth: {_auth_line(config)}",
        f"routing: {config.routing_strategy.value}, request-retry {config.request_retry}, "
        f"max-retry-interval {_seconds(config.max_retry_interval)}",
        f"timeouts: connect {_seconds(t.connect)}, first-byte {_seconds(t.first_byte)}, idle {_seconds(t.idle)}, "
        f"total {_seconds(t.total)}",
    ]
    if config.proxy_url:
        lines.append(f"proxy: {redact_url(config.proxy_url)}")
    lines.append(f"providers ({len(config.providers)}):")
    for provider in config.providers:
        lines.extend(_provider_lines(config, provider))
    if config.legacy_mappings:
        lines.append("legacy keys mapped (CLIProxyAPI / older llm-mux lists; prefer providers:):")
        lines.extend(f"  {mapping}" for mapping in config.legacy_mappings)
    lines.append("aliases:" if config.aliases else "aliases: none")
    lines.extend(f"  {alias} -> {target}" for alias, target in config.aliases.items())
    lines.append("fallbacks:" if config.fallbacks else "fallbacks: none")
    lines.extend(f"  {model} -> {', '.join(chain)}" for model, chain in config.fallbacks.items())
    return lines


def _check(args: argparse.Namespace) -> int:
    config = _load(args)
    extra = deployment_warnings(config)
    _warn(extra)
    _print_lines(describe(config), sys.stdout)
    count = len(config.warnings) + len(extra)
    if count and args.strict:
        print(f"configuration has {count} warning(s): failing (--strict)")
        return 1
    print("configuration OK")
    return 0


def model_names(config: Config) -> list[tuple[str, str]]:
    """``(model, provider)`` for every name a client can send, from the router's listing (the one ``/v1/models``
    shows without its patterns): listed models of enabled providers, the name patterns of a provider without a list
    (``*`` for any name; the official OpenAI, Anthropic and Gemini endpoints serve their own families), and routing
    aliases with ``-> target`` as their provider."""
    from muxtrio.engine.routing import Router

    return [
        (entry.id, entry.provider if entry.alias_of is None else f"-> {entry.alias_of}")
        for entry in Router(config).listing()
    ]


def _models(args: argparse.Namespace) -> int:
    rows = model_names(_load(args))
    width = max((len(model) for model, _ in rows), default=0)
    _print_lines([f"{model:<{width}}  {provider}" for model, provider in rows], sys.stdout)
    return 0


def _login(args: argparse.Namespace) -> int:
    """``muxtrio login <type>``: run the provider's login flow and write the token file (docs/accounts.md)."""
    import os
    import webbrowser

    import trio

    from muxtrio.accounts.files import default_auth_dir
    from muxtrio.accounts.login import LoginManager

    config = _load(args)
    auth_dir = config.auth_dir or default_auth_dir(os.environ)
    manager = LoginManager(auth_dir, endpoints=config.accounts.endpoints, timeout=args.timeout)

    async def run() -> int:
        async with trio.open_nursery() as nursery:
            session = await manager.start(nursery, args.provider, project=args.project)
            if session.flow == "device":
                print(f"Open {session.url} and enter the code {session.user_code}")
            elif args.no_browser or not webbrowser.open(session.url):
                print(f"Open this URL in a browser to log in to {args.provider}:\n\n  {session.url}\n")
                print("If that browser runs on another machine, it ends on a page that does not load: copy that "
                      "page's full address and paste it here, then press Enter.")  # fmt: skip
                nursery.start_soon(_read_pasted_url, manager, session.id)
            else:
                print(f"A browser window opened for the {args.provider} login; waiting for it to finish.")
            await session.done.wait()
            nursery.cancel_scope.cancel()
        if session.status != "completed":
            print(f"muxtrio: {args.provider} login {session.status}: {session.error}", file=sys.stderr)
            return 1
        for path in session.files:
            print(f"Logged in. Token saved to {path} (mode 0600); a running gateway picks it up by itself.")
        return 0

    return trio.run(run)


async def _read_pasted_url(manager: object, session_id: str) -> None:
    import trio

    from muxtrio.accounts.login import LoginError, LoginManager

    assert isinstance(manager, LoginManager)
    while True:
        line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        if not line:
            return
        if not line.strip():
            continue
        try:
            manager.submit_callback(session_id, line)
            return
        except LoginError as exc:
            print(f"muxtrio: {exc}; paste the address again", file=sys.stderr)


def _print_lines(lines: Sequence[str], stream: TextIO) -> None:
    stream.write("".join(f"{line}\n" for line in lines))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``muxtrio`` console script and of ``python -m muxtrio``; returns the exit status."""
    args = _parser().parse_args(_with_default_command(sys.argv[1:] if argv is None else argv))
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except ConfigError as exc:
        print(f"muxtrio: config error: {exc}", file=sys.stderr)
        return 2
