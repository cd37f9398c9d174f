"""The live set of subscription accounts: loaded from ``auth-dir``, kept in step with it by polling, and their access
tokens kept fresh.

- One :class:`Account` per token file, or per project for a Gemini CLI file that lists several (they share the file
  and its refresh). Labels are ``<type>:<email or account id>[/<project>]``, never a token.
- Refresh: an access token that expires within ``refresh_lead`` seconds is refreshed before use, and the watcher
  refreshes due accounts in the background. One refresh per file at a time: a per-file trio lock inside the process,
  and an ``flock`` on ``.<file>.lock`` across processes (``--workers N``). Under the lock the file is read again, and
  a token another process (another worker, or llm-mux sharing the directory) already refreshed is adopted instead
  of refreshing again (refresh tokens rotate: a second refresh with the old one would fail). The result is written
  back atomically. A failed refresh marks the file *out* with its reason and retries after a backoff (5 s doubling
  to 5 min); while the old token is still valid it keeps serving. A revoked refresh token (``invalid_grant``)
  disables the account until its file changes (log in again).
- Copilot: the GitHub token is exchanged for a Copilot API token, cached until ``refresh_lead`` before it expires,
  re-exchanged under the same per-file lock.
- Watching: every ``watch_interval`` seconds the directory is listed and each ``*.json`` file's (inode, size, mtime)
  compared with the last scan; new, changed and removed files become added, updated and removed accounts, reported
  to the listeners. Polling was chosen over inotify (``watchfiles``): no new dependency, works on every filesystem
  (network mounts, containers), and the cost is one ``scandir`` plus one ``stat`` per file per interval — measured
  in docs/accounts.md.

Invariants: wall-clock times (token expiry is a wall-clock fact); nothing here raises into the watcher loop; tokens
are never logged.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import httpx2
import trio

from muxtrio.accounts import oauth
from muxtrio.accounts.files import TokenFile, TokenFileError, read_token_file, write_token_file
from muxtrio.errors import ErrorKind, UpstreamError
from muxtrio.redact import scrub

log = logging.getLogger("muxtrio.accounts")

ACCOUNT_UNUSABLE = "account_unusable"
"""``UpstreamError.provider_type`` of the errors an account raises before any request (revoked, out)."""
BACKOFF_FIRST = 5.0
BACKOFF_MAX = 300.0
DEFAULT_REFRESH_LEAD = 300.0
DEFAULT_WATCH_INTERVAL = 2.0

Stamp = tuple[int, int, int]


class AccountFile:
    """One token file and its refresh state, shared by the accounts it holds."""

    def __init__(self, token: TokenFile, stamp: Stamp) -> None:
        self.token = token
        self.stamp = stamp
        self.lock = trio.Lock()
        self.generation = 0  # bumped by every refresh, so waiters on the lock see that one happened
        self.revoked = False
        self.reason = ""  # why the file is out (refresh failed, revoked)
        self.retry_at = 0.0  # wall clock: no refresh attempt before this
        self.failures = 0
        self.copilot: oauth.CopilotToken | None = None
        self.lifetime: float | None = None  # seconds the last token we obtained was valid for

    @property
    def provider(self) -> str:
        return self.token.provider


@dataclass(eq=False)
class Account:
    key: str  # path, plus "#project" for one project of a multi-project Gemini CLI file
    label: str
    file: AccountFile
    project: str = ""
    extras: dict[str, str] = field(default_factory=dict)

    @property
    def provider(self) -> str:
        return self.file.provider

    def secrets(self) -> tuple[str, ...]:
        """Every token of this account (for scrubbing provider error text that might echo one)."""
        token = self.file.token
        copilot = self.file.copilot.token if self.file.copilot is not None else ""
        return tuple(t for t in (token.access_token, token.refresh_token, token.id_token, copilot) if t)

    def status(self, now: float) -> dict[str, object]:
        """What the management side shows: provider, label, email, plan, file, expiry, state and reason (no token)."""
        token = self.file.token
        state = "revoked" if self.file.revoked else "out" if self.file.retry_at > now and self.file.reason else "ok"
        return {
            "provider": self.provider,
            "label": self.label,
            "email": token.email or None,
            "plan": token.plan or None,
            "file": os.path.basename(token.path),
            "expires_at": token.expires_at,
            "state": state,
            "reason": self.file.reason or None,
        }


@dataclass(frozen=True, slots=True)
class Changes:
    added: tuple[Account, ...] = ()
    updated: tuple[Account, ...] = ()
    removed: tuple[Account, ...] = ()
    skipped: tuple[str, ...] = ()  # files that are not usable accounts, with the reason


Listener = Callable[[Changes], None]


def _label(token: TokenFile, project: str) -> str:
    who = token.email or token.account_id or os.path.splitext(os.path.basename(token.path))[0]
    return f"{token.provider}:{who}" + (f"/{project}" if project else "")


def _accounts_of(file: AccountFile) -> list[Account]:
    token = file.token
    if token.provider == "gemini-cli":
        projects = token.projects or ("",)
        if len(projects) == 1:
            return [Account(token.path, _label(token, ""), file, projects[0])]
        return [Account(f"{token.path}#{p}", _label(token, p), file, p) for p in projects]
    return [Account(token.path, _label(token, ""), file)]


class AccountStore:
    """``store.scan()`` once, then ``nursery.start_soon(store.watch)``; ``await store.access(account)`` before each
    request. ``http`` makes the OAuth calls (tests pass one bound to loopback fakes); ``clock`` is the wall clock."""

    def __init__(
        self,
        directory: str,
        *,
        endpoints: Mapping[str, Mapping[str, str]] | None = None,
        refresh_lead: float = DEFAULT_REFRESH_LEAD,
        watch_interval: float = DEFAULT_WATCH_INTERVAL,
        http: httpx2.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.refresh_lead = refresh_lead
        self.watch_interval = watch_interval
        self._overrides = endpoints or {}
        self._http = http
        self._own_http = http is None
        self._clock = clock
        self.files: dict[str, AccountFile] = {}
        self.accounts: dict[str, Account] = {}
        self._skipped: dict[str, Stamp] = {}  # unusable files, not read again until they change
        self.listeners: list[Listener] = []

    def endpoints(self, provider: str) -> oauth.Endpoints:
        return oauth.endpoints_for(provider, self._overrides)

    @property
    def http(self) -> httpx2.AsyncClient:
        if self._http is None:
            self._http = httpx2.AsyncClient(timeout=httpx2.Timeout(30.0), trust_env=False, follow_redirects=False)
        return self._http

    async def aclose(self) -> None:
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    # ------------------------------------------------------------------ directory
    def _listing(self) -> dict[str, Stamp]:
        found: dict[str, Stamp] = {}
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return found
        for entry in entries:
            if not entry.name.endswith(".json") or entry.name.startswith("."):
                continue
            try:
                st = entry.stat()
            except OSError:
                continue
            if entry.is_file():
                found[entry.path] = (st.st_ino, st.st_size, st.st_mtime_ns)
        return found

    def scan(self) -> Changes:
        """Compare the directory with the last scan; apply and report the differences."""
        listing = self._listing()
        added: list[Account] = []
        updated: list[Account] = []
        removed: list[Account] = []
        skipped: list[str] = []
        for path in [p for p in self.files if p not in listing]:
            removed.extend(self._drop(path))
        for path in [p for p in self._skipped if p not in listing]:
            del self._skipped[path]
        for path, stamp in listing.items():
            known = self.files.get(path)
            if (known is not None and known.stamp == stamp) or self._skipped.get(path) == stamp:
                continue
            try:
                token = read_token_file(path)
                if token.disabled:
                    raise TokenFileError(f"{os.path.basename(path)}: disabled")
            except TokenFileError as exc:
                skipped.append(str(exc))
                self._skipped[path] = stamp
                if known is not None:
                    removed.extend(self._drop(path))
                continue
            self._skipped.pop(path, None)
            file = AccountFile(token, stamp)
            new_accounts = {a.key: a for a in _accounts_of(file)}
            old_keys = {k for k, a in self.accounts.items() if a.file is known} if known is not None else set()
            for key in old_keys - set(new_accounts):
                removed.append(self.accounts.pop(key))
            for key, account in new_accounts.items():
                (updated if key in old_keys else added).append(account)
                self.accounts[key] = account
            self.files[path] = file
            self._set_extras(file)
        changes = Changes(tuple(added), tuple(updated), tuple(removed), tuple(skipped))
        for account in added:
            log.info("account %s loaded from %s", account.label, os.path.basename(account.file.token.path))
        for account in removed:
            log.info("account %s removed", account.label)
        for reason in skipped:
            log.info("auth-dir file skipped: %s", reason)
        if added or updated or removed:
            for listener in self.listeners:
                listener(changes)
        return changes

    def _drop(self, path: str) -> list[Account]:
        file = self.files.pop(path)
        gone = [k for k, a in self.accounts.items() if a.file is file]
        return [self.accounts.pop(k) for k in gone]

    def _set_extras(self, file: AccountFile) -> None:
        token = file.token
        for account in self.accounts.values():
            if account.file is not file:
                continue
            extras: dict[str, str] = {}
            if file.provider == "codex" and token.account_id:
                extras["account_id"] = token.account_id
            elif file.provider == "gemini-cli":
                extras["project"] = account.project or (token.projects[0] if token.projects else "")
            elif file.provider == "qwen" and token.resource_url:
                url = token.resource_url
                url = url if url.startswith(("https://", "http://")) else f"https://{url}"
                extras["base_url"] = url if url.rstrip("/").endswith("/v1") else url.rstrip("/") + "/v1"
            elif file.provider == "github-copilot" and file.copilot is not None and file.copilot.api_url:
                extras["base_url"] = file.copilot.api_url
            account.extras = extras

    async def watch(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Poll the directory and refresh due accounts, forever."""
        task_status.started()
        async with trio.open_nursery() as nursery:
            while True:
                try:
                    self.scan()
                except Exception:  # a watcher that dies silently serves stale accounts: log and keep polling
                    log.exception("scanning auth-dir failed")
                now = self._clock()
                for file in list(self.files.values()):
                    if self._due(file, now) and not file.lock.locked() and file.retry_at <= now and not file.revoked:
                        nursery.start_soon(self._background_refresh, file)
                await trio.sleep(self.watch_interval)

    async def _background_refresh(self, file: AccountFile) -> None:
        with contextlib.suppress(UpstreamError):  # recorded on the file (reason, retry time); requests see it
            await self._refresh(file, file.generation)

    # ------------------------------------------------------------------ tokens
    def _lead(self, file: AccountFile) -> float:
        """The refresh lead, at most half the token's lifetime (a token shorter-lived than the lead would otherwise
        be due the moment it arrives, and refreshed in a loop)."""
        return self.refresh_lead if file.lifetime is None else min(self.refresh_lead, file.lifetime / 2)

    def _due(self, file: AccountFile, now: float) -> bool:
        if file.provider == "github-copilot":
            return file.copilot is None or file.copilot.expires_at - self._lead(file) <= now
        expires = file.token.expires_at
        return expires is not None and expires - self._lead(file) <= now

    def _usable(self, file: AccountFile, now: float) -> bool:
        if file.provider == "github-copilot":
            return file.copilot is not None and file.copilot.expires_at > now
        expires = file.token.expires_at
        return bool(file.token.access_token) and (expires is None or expires > now)

    def _token(self, file: AccountFile) -> str:
        if file.provider == "github-copilot":
            assert file.copilot is not None
            return file.copilot.token
        return file.token.access_token

    async def access(self, account: Account, *, force: bool = False) -> tuple[str, tuple[tuple[str, str], ...]]:
        """The account's access token and its request extras, refreshed first when due (or ``force``: the
        provider refused the token). Raises :class:`UpstreamError` when the account cannot be used now:
        ``AUTHENTICATION`` when revoked, ``UNAVAILABLE`` (with ``retry_after``) while a failed refresh backs off."""
        file = account.file
        now = self._clock()
        generation = file.generation
        if file.revoked:
            raise self._revoked_error(account)
        if force or self._due(file, now):
            if file.retry_at > now and (force or not self._usable(file, now)):
                raise self._out_error(account, now)
            if file.retry_at <= now:
                try:
                    await self._refresh(file, generation)
                except UpstreamError:
                    if force or file.revoked or not self._usable(file, self._clock()):
                        raise  # after a 401 the old token is known to be refused
                    # the old token still works: keep serving while the refresh backs off
        elif not self._usable(file, now):
            raise self._out_error(account, now)
        return self._token(file), tuple(account.extras.items())

    async def _refresh(self, file: AccountFile, seen_generation: int) -> None:
        async with file.lock:
            if file.generation != seen_generation:
                return  # someone refreshed while we waited: use theirs
            provider = file.provider
            endpoints = self.endpoints(provider)
            try:
                if provider != "github-copilot":
                    async with _ProcessLock(file.token.path):
                        if await self._adopt(file):
                            return
                        await self._refresh_oauth(file, provider, endpoints)
                else:
                    file.copilot = await oauth.copilot_token(self.http, endpoints, file.token.access_token)
                    file.lifetime = max(file.copilot.expires_at - self._clock(), 0.0)
                    self._set_extras(file)
            except oauth.OAuthError as exc:
                file.failures += 1
                file.reason = scrub(exc.message, (file.token.access_token, file.token.refresh_token))
                if exc.revoked:
                    file.revoked = True
                    log.warning("account %s: %s; run `muxtrio login %s` again", _label(file.token, ""), exc.message,
                                provider)  # fmt: skip
                else:
                    delay = min(BACKOFF_FIRST * 2 ** (file.failures - 1), BACKOFF_MAX)
                    file.retry_at = self._clock() + delay
                    log.warning("account %s: %s (next try in %.0f s)", _label(file.token, ""), exc.message, delay)
                raise self._file_error(file) from None
            file.generation += 1
            file.failures = 0
            file.reason = ""
            file.retry_at = 0.0

    async def _adopt(self, file: AccountFile) -> bool:
        """Under the process lock: take the file's current tokens if another process changed them; True when they
        are fresh enough that no refresh is needed."""
        try:
            current = await trio.to_thread.run_sync(read_token_file, file.token.path)
        except TokenFileError:
            return False
        if current.access_token == file.token.access_token:
            return False
        file.token = current
        file.stamp = _stamp(current.path) or file.stamp
        if self._due(file, self._clock()):
            return False
        file.generation += 1
        file.failures, file.reason, file.retry_at = 0, "", 0.0
        log.info("account %s: using the token another process refreshed", _label(current, ""))
        return True

    async def _refresh_oauth(self, file: AccountFile, provider: str, endpoints: oauth.Endpoints) -> None:
        if not file.token.refresh_token:
            raise oauth.OAuthError("the token file has no refresh_token", revoked=True)
        grant = await oauth.refresh(self.http, provider, endpoints, file.token.refresh_token)
        now = self._clock()
        expires = now + grant.expires_in if grant.expires_in is not None else None
        file.lifetime = grant.expires_in
        token = file.token.with_tokens(
            grant.access_token, expires, grant.refresh_token or None, grant.id_token or None, now
        )
        await trio.to_thread.run_sync(write_token_file, token)
        file.token = token
        file.stamp = _stamp(token.path) or file.stamp

    def _file_error(self, file: AccountFile) -> UpstreamError:
        label = _label(file.token, "")
        if file.revoked:
            return UpstreamError(
                ErrorKind.AUTHENTICATION,
                f"account {label} is disabled: {file.reason}; run `muxtrio login {file.provider}` again",
                provider_status=401,
                provider_type=ACCOUNT_UNUSABLE,
                status=502,  # a gateway credential problem, not the client's key (errors.client_status)
            )
        return UpstreamError(
            ErrorKind.UNAVAILABLE,
            f"account {label} is out: {file.reason}",
            provider_type=ACCOUNT_UNUSABLE,
            retry_after=max(file.retry_at - self._clock(), 0.0),
        )

    def _revoked_error(self, account: Account) -> UpstreamError:
        return self._file_error(account.file)

    def _out_error(self, account: Account, now: float) -> UpstreamError:
        file = account.file
        if not file.reason:
            file.reason = "access token expired"
        return self._file_error(file)


class _ProcessLock:
    """An exclusive ``flock`` on ``.<token file>.lock`` next to the token file, taken in a worker thread (the wait
    is bounded by the other holder's refresh, itself bounded by the HTTP timeout)."""

    def __init__(self, path: str) -> None:
        directory, name = os.path.split(path)
        self.path = os.path.join(directory, f".{name}.lock")
        self.fd = -1

    async def __aenter__(self) -> None:
        self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            await trio.to_thread.run_sync(fcntl.flock, self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise

    async def __aexit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _stamp(path: str) -> Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)
