"""Logins: the flows behind ``muxtrio login <type>``, as plain start / status / cancel functions that the CLI (and
later the management API) call.

- ``claude``, ``codex``, ``gemini-cli``: OAuth authorization code with PKCE (S256). A one-shot HTTP listener on the
  redirect URI's loopback port takes the callback: a wrong ``state`` is refused (and the listener keeps waiting for
  the right one), ``error=`` fails the login, the first good callback completes it. Where no browser can reach this
  machine, the URL the browser was sent to can be pasted instead (:meth:`LoginManager.submit_callback`), checked the
  same way. A login not finished in ``timeout`` seconds fails.
- ``github-copilot``, ``qwen``: the device flow (RFC 8628): show the code and URL, poll the token endpoint every
  ``interval`` seconds, ``authorization_pending`` waits, ``slow_down`` adds ``slow_down_step`` seconds to the interval.
- Gemini CLI logins then find the account's Code Assist project (loadCodeAssist / onboardUser, as Gemini CLI does).
- The result is one token file in ``auth-dir`` (llm-mux's layout and ``type``), written atomically with mode 0600;
  a running gateway picks it up at its next directory scan.

Invariants: tokens are never printed or logged; the callback listener binds 127.0.0.1 only and stops when the
login ends; a session's state (``pending``, ``completed``, ``failed``, ``cancelled``) only moves forward.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qs, urlsplit

import httpx2
import trio

from muxtrio.accounts import oauth
from muxtrio.accounts.files import FILE_TYPE, TokenFile, file_name, format_time, write_token_file

log = logging.getLogger("muxtrio.accounts.login")

Status = Literal["pending", "completed", "failed", "cancelled"]
DEFAULT_TIMEOUT = 300.0
SLOW_DOWN_STEP = 5.0  # RFC 8628 section 3.5
MAX_CALLBACK_REQUEST = 16384

SUCCESS_PAGE = b"<!doctype html><title>muxtrio</title><p>Login complete. You can close this window.</p>"


@dataclass(eq=False)
class LoginSession:
    """One login in progress. ``url``: where the user goes (authorization URL, or the device verification URL);
    ``user_code``: the code to type there (device flow). ``files``: the token files written."""

    id: str
    provider: str
    flow: oauth.Flow
    status: Status = "pending"
    url: str = ""
    user_code: str = ""
    error: str = ""
    interval: float = 0.0
    polls: list[str] = field(default_factory=list)  # device flow: what each poll answered (pending codes, "granted")
    files: list[str] = field(default_factory=list)
    redirect_uri: str = ""
    done: trio.Event = field(default_factory=trio.Event)
    _verifier: str = field(default="", repr=False)
    _code: trio.MemorySendChannel[str | LoginError] | None = field(default=None, repr=False)
    _scope: trio.CancelScope = field(default_factory=trio.CancelScope, repr=False)

    def view(self) -> dict[str, object]:
        """What status endpoints show (no verifier, no token)."""
        return {
            "id": self.id, "provider": self.provider, "flow": self.flow, "status": self.status, "url": self.url,
            "user_code": self.user_code or None, "error": self.error or None,
            "files": [os.path.basename(f) for f in self.files],
        }  # fmt: skip


class LoginError(Exception):
    pass


class LoginManager:
    """``session = await manager.start(nursery, "codex")``, then ``manager.status(session.id)`` until it is not
    pending, or ``manager.cancel(session.id)``. ``http``: the client for OAuth calls (tests bind it to fakes)."""

    def __init__(
        self,
        auth_dir: str,
        *,
        endpoints: Mapping[str, Mapping[str, str]] | None = None,
        http: httpx2.AsyncClient | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        slow_down_step: float = SLOW_DOWN_STEP,
        onboard_poll_interval: float = 5.0,
    ) -> None:
        self.auth_dir = auth_dir
        self._overrides = endpoints or {}
        self._http = http
        self.timeout = timeout
        self.slow_down_step = slow_down_step
        self.onboard_poll_interval = onboard_poll_interval
        self.sessions: dict[str, LoginSession] = {}

    @property
    def http(self) -> httpx2.AsyncClient:
        if self._http is None:
            self._http = httpx2.AsyncClient(timeout=httpx2.Timeout(30.0), trust_env=False, follow_redirects=False)
        return self._http

    # ------------------------------------------------------------------ the three plain functions
    async def start(self, nursery: trio.Nursery, provider: str, *, project: str = "") -> LoginSession:
        """Begin a login; returns once the URL (and device code) is known. The flow runs in ``nursery``."""
        if provider not in oauth.DEFAULT_ENDPOINTS:
            raise LoginError(f"unknown account type {provider!r}: one of {', '.join(oauth.DEFAULT_ENDPOINTS)}")
        endpoints = oauth.endpoints_for(provider, self._overrides)
        session = LoginSession(secrets.token_urlsafe(24), provider, endpoints.flow)
        self.sessions[session.id] = session
        runner = self._pkce if endpoints.flow == "pkce" else self._device
        await nursery.start(self._run, session, runner, endpoints, project)
        return session

    def status(self, session_id: str) -> LoginSession | None:
        return self.sessions.get(session_id)

    def cancel(self, session_id: str) -> bool:
        session = self.sessions.get(session_id)
        if session is None or session.status != "pending":
            return False
        session.status = "cancelled"
        session._scope.cancel()
        return True

    def submit_callback(self, session_id: str, url: str) -> None:
        """Complete a PKCE login with the URL the browser was redirected to (pasted by the user)."""
        session = self.sessions.get(session_id)
        if session is None or session.status != "pending" or session._code is None:
            raise LoginError("no pending browser login with that id")
        query = parse_qs(urlsplit(url.strip()).query)
        code, state = _first(query, "code"), _first(query, "state")
        if state != session.id:
            raise LoginError("the pasted URL belongs to another login (state does not match)")
        if not code:
            raise LoginError(_first(query, "error_description") or _first(query, "error") or "no code in the URL")
        session._code.send_nowait(code)

    # ------------------------------------------------------------------ flows
    async def _run(
        self,
        session: LoginSession,
        runner: Callable[..., object],
        endpoints: oauth.Endpoints,
        project: str,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        started = False

        def ready() -> None:
            nonlocal started
            started = True
            task_status.started()

        try:
            with session._scope:
                with trio.fail_after(self.timeout):
                    await runner(session, endpoints, project, ready)  # type: ignore[misc]
                if session.status == "pending":
                    session.status = "completed"
        except trio.TooSlowError:
            session.status, session.error = "failed", f"login not finished within {self.timeout:g} s"
        except (oauth.OAuthError, LoginError, OSError) as exc:
            session.status, session.error = "failed", getattr(exc, "message", None) or str(exc)
        finally:
            if session.status == "pending":
                session.status = "cancelled"
            session.done.set()
            if not started:
                task_status.started()
        if session.status == "failed":
            log.warning("%s login failed: %s", session.provider, session.error)

    async def _pkce(self, session: LoginSession, endpoints: oauth.Endpoints, project: str,
                    ready: Callable[[], None]) -> None:  # fmt: skip
        verifier, challenge = oauth.pkce_pair()
        session._verifier = verifier
        redirect = urlsplit(endpoints.redirect_uri)
        send, receive = trio.open_memory_channel[str | LoginError](1)
        session._code = send
        async with trio.open_nursery() as nursery:
            listeners = await trio.open_tcp_listeners(redirect.port or 80, host="127.0.0.1")
            port = listeners[0].socket.getsockname()[1]
            session.redirect_uri = f"{redirect.scheme}://{redirect.hostname}:{port}{redirect.path}"
            nursery.start_soon(trio.serve_listeners, self._callback_handler(session, redirect.path), listeners)
            session.url = oauth.authorize_url(
                session.provider, endpoints, state=session.id, challenge=challenge, redirect_uri=session.redirect_uri
            )
            ready()
            code = await receive.receive()
            nursery.cancel_scope.cancel()  # one-shot: the listener closes as soon as a callback with our state came
        if isinstance(code, LoginError):
            raise code
        if "#" in code:  # Claude's code comes as "code#state"
            code = code.split("#", 1)[0]
        grant = await oauth.exchange_code(
            self.http, session.provider, endpoints, code=code, verifier=verifier,
            redirect_uri=session.redirect_uri, state=session.id,
        )  # fmt: skip
        await self._save(session, endpoints, grant, project)

    def _callback_handler(self, session: LoginSession, path: str) -> Callable[[trio.SocketStream], Awaitable[None]]:
        async def handle(stream: trio.SocketStream) -> None:
            async with stream:
                request = b""
                with trio.move_on_after(10):
                    while b"\r\n\r\n" not in request and len(request) < MAX_CALLBACK_REQUEST:
                        chunk = await stream.receive_some(4096)
                        if not chunk:
                            break
                        request += chunk
                status, body = self._callback(session, path, request)
                head = (f"HTTP/1.1 {status}\r\ncontent-type: text/html; charset=utf-8\r\n"
                        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")  # fmt: skip
                with contextlib.suppress(trio.BrokenResourceError):
                    await stream.send_all(head.encode() + body)

        return handle

    def _callback(self, session: LoginSession, path: str, request: bytes) -> tuple[str, bytes]:
        line = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
        if len(line) < 2 or line[0] != "GET":
            return "405 Method Not Allowed", b"GET only"
        target = urlsplit(line[1])
        if target.path != path:
            return "404 Not Found", b"not the login callback"
        query = parse_qs(target.query)
        if _first(query, "state") != session.id:
            log.warning("%s login: callback with a wrong state refused", session.provider)
            return "400 Bad Request", b"<p>This callback does not belong to the login in progress (state mismatch).</p>"
        if session._code is None:
            return "400 Bad Request", b"<p>No login in progress.</p>"
        if _first(query, "error"):
            reason = _first(query, "error_description") or _first(query, "error")
            with contextlib.suppress(trio.WouldBlock):
                session._code.send_nowait(LoginError(f"the provider refused the login: {reason}"))
            return "400 Bad Request", f"<p>Login failed: {_first(query, 'error')}</p>".encode()
        code = _first(query, "code")
        if not code:
            return "400 Bad Request", b"<p>No authorization code in the callback.</p>"
        with contextlib.suppress(trio.WouldBlock):  # a second good callback: the first one counts
            session._code.send_nowait(code)
        return "200 OK", SUCCESS_PAGE

    async def _device(self, session: LoginSession, endpoints: oauth.Endpoints, project: str,
                      ready: Callable[[], None]) -> None:  # fmt: skip
        verifier, challenge = oauth.pkce_pair() if session.provider == "qwen" else ("", "")
        device = await oauth.device_start(self.http, session.provider, endpoints, challenge)
        session.url, session.user_code, session.interval = device.verification_uri, device.user_code, device.interval
        ready()
        with trio.fail_after(device.expires_in):
            while True:
                await trio.sleep(session.interval)
                answer = await oauth.device_poll(self.http, session.provider, endpoints, device, verifier)
                if isinstance(answer, str):
                    session.polls.append(answer)
                    if answer == "slow_down":
                        session.interval += self.slow_down_step
                    continue
                session.polls.append("granted")
                await self._save(session, endpoints, answer, project)
                return

    # ------------------------------------------------------------------ token files
    async def _save(self, session: LoginSession, endpoints: oauth.Endpoints, grant: oauth.Grant, project: str) -> None:
        provider = session.provider
        now = time.time()
        expires = format_time(now + grant.expires_in) if grant.expires_in is not None else ""
        stamp = format_time(now)
        data: dict[str, object]
        identity = grant.email
        if provider == "codex":
            email, account_id = oauth.codex_identity(grant)
            identity = email or account_id
            data = {"id_token": grant.id_token, "access_token": grant.access_token,
                    "refresh_token": grant.refresh_token, "account_id": account_id, "last_refresh": stamp,
                    "email": email, "expired": expires}  # fmt: skip
        elif provider == "claude":
            data = {"id_token": grant.id_token, "access_token": grant.access_token,
                    "refresh_token": grant.refresh_token, "last_refresh": stamp, "email": grant.email,
                    "expired": expires}  # fmt: skip
        elif provider == "qwen":
            data = {"access_token": grant.access_token, "refresh_token": grant.refresh_token, "last_refresh": stamp,
                    "resource_url": grant.resource_url, "email": grant.email, "expired": expires}  # fmt: skip
        elif provider == "github-copilot":
            identity = await oauth.user_name(self.http, endpoints, grant.access_token)
            scope = str((grant.raw or {}).get("scope") or endpoints.scope)
            data = {"access_token": grant.access_token, "token_type": "bearer", "scope": scope, "username": identity}
        else:  # gemini-cli: one project (found or created), or each of several requested ("p1,p2")
            identity = grant.email or await oauth.user_name(self.http, endpoints, grant.access_token)
            requested = [p.strip() for p in project.split(",") if p.strip()] or [""]
            found = []
            for wanted in requested:
                onboarded = await oauth.code_assist_project(
                    self.http, endpoints, grant.access_token, wanted, poll_interval=self.onboard_poll_interval
                )
                found.append(wanted or onboarded)  # a requested project is kept, as Gemini CLI does
            data = {"token": {"access_token": grant.access_token, "refresh_token": grant.refresh_token,
                              "token_type": "Bearer", "expiry": expires},
                    "project_id": ",".join(found), "email": identity, "auto": not project,
                    "checked": True}  # fmt: skip
            project = found[0] if len(found) == 1 else "all"  # llm-mux names a multi-project file ...-all.json
        data["type"] = FILE_TYPE[provider]
        path = os.path.join(self.auth_dir, file_name(provider, identity, project if provider == "gemini-cli" else ""))
        await trio.to_thread.run_sync(write_token_file, TokenFile(path, provider, data))
        session.files.append(path)
        log.info("%s login saved to %s", provider, os.path.basename(path))


def _first(query: Mapping[str, list[str]], name: str) -> str:
    values = query.get(name)
    return values[0] if values else ""
