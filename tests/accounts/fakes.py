"""A fake of every subscription backend and of its OAuth server, on one loopback port, following each protocol as
documented or observed (sources: tests/fixtures/accounts/*.source.txt). It reuses the e2e fakes' scripts and
renderers (``tests/e2e/fakes.py``), so answers are the same scripted texts in each provider's wire format; what it
adds is the subscription side, checked strictly: a request that lacks what the real backend requires gets the
backend's error, so a gateway that forgets it fails the test.

Paths (each is a provider's ``base-url`` / endpoint override in the tests):
- ``/claude/v1/messages[/count_tokens]``: Anthropic Messages with ``Authorization: Bearer <access token>``, no
  ``x-api-key``, ``anthropic-beta`` containing ``oauth-2025-04-20``, and Claude Code's identity as the first system
  block (else 401 / 400 as Anthropic answers).
- ``/codex/responses``: Responses, ``stream: true``, ``store: false``, ``instructions`` present, none of the refused
  fields, ``chatgpt-account-id`` equal to the account's (else 400). The model ``usagelimit`` answers Codex's
  ``usage_limit_reached`` 429 with ``resets_in_seconds``.
- ``/v1internal:generateContent|streamGenerateContent|countTokens|loadCodeAssist|onboardUser``: Code Assist: the
  ``{model, project, request}`` envelope (project must be the account's), answers wrapped in ``{response}``;
  onboarding answers ``done: false`` once, then the project.
- ``/copilot-api/chat/completions``: OpenAI chat with the Copilot API token and ``editor-version`` /
  ``copilot-integration-id`` headers; ``/copilot/token`` exchanges a GitHub token (``token <gh>``) for an API token
  that expires ``copilot_ttl`` seconds later; ``/user`` gives the GitHub login.
- ``/qwen/v1/chat/completions``: OpenAI chat with the account's access token (the account's ``resource_url``).
- ``/oauth/authorize`` (records the PKCE challenge and redirects with a code), ``/oauth/token`` (authorization_code
  with the PKCE verifier checked, refresh_token with rotation, device_code answering ``authorization_pending`` then
  ``slow_down`` then the tokens), ``/oauth/device/code``, ``/oauth/userinfo``.

Access tokens are valid until :meth:`SubscriptionFake.expire` (the backend then answers 401); refresh tokens in
``revoked`` get ``invalid_grant``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from itertools import count
from typing import Any
from urllib.parse import parse_qsl, urlencode

from tests.e2e.fakes import (
    BEHAVIOURS,
    COUNT_TOKENS,
    FakeProvider,
    Reply,
    Seen,
    Streamed,
    Whole,
    dumps,
)

CLAUDE_IDENTITY = "You are Claude Code, Anthropic's official CLI for Claude."
CODEX_REFUSED = ("max_output_tokens", "temperature", "top_p", "truncation", "user", "previous_response_id")
ACCOUNT_ID = "acct-fake-0001"
PROJECT = "fake-project-1"
GITHUB_LOGIN = "octocat"
SUB_BEHAVIOURS = (*BEHAVIOURS, "usagelimit", "leaktoken")


def fake_jwt(claims: dict[str, Any]) -> str:
    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


def codex_id_token(email: str, account_id: str = ACCOUNT_ID) -> str:
    return fake_jwt({"email": email, "https://api.openai.com/auth": {"chatgpt_account_id": account_id}})


@dataclass
class Device:
    answers: list[str]  # what the next polls answer, then the grant
    polls: int = 0


@dataclass
class OAuthLog:
    token_requests: list[dict[str, str]] = field(default_factory=list)
    refreshes: int = 0
    exchanges: int = 0  # Copilot token exchanges


class SubscriptionFake(FakeProvider):
    def __init__(self) -> None:
        super().__init__("subscription", set())
        self.valid: set[str] = set()  # access tokens the backends accept
        self.refresh_tokens: dict[str, str] = {}  # refresh token -> email
        self.revoked: set[str] = set()
        self.github_tokens: set[str] = set()
        self.copilot_ttl = 1800
        self.expires_in = 3600
        self.codes: dict[str, tuple[str, str]] = {}  # code -> (PKCE challenge, redirect_uri)
        self.devices: dict[str, Device] = {}
        self.device_script = ["authorization_pending", "slow_down"]
        self.onboarding_pending = 1
        self.oauth = OAuthLog()
        self._ids = count(1)

    # ------------------------------------------------------------------ test controls
    def issue(self, email: str = "user@example.com") -> tuple[str, str]:
        """A fresh (access token, refresh token) pair the fake accepts."""
        n = next(self._ids)
        access, refresh = f"at-{n}-{email}", f"rt-{n}-{email}"
        self.valid.add(access)
        self.refresh_tokens[refresh] = email
        return access, refresh

    def expire(self, access_token: str) -> None:
        self.valid.discard(access_token)

    # ------------------------------------------------------------------ HTTP
    def _reply(self, seen: Seen) -> Reply:
        try:
            return self._route(seen)
        except Exception as exc:  # a fake bug must show up in the test, not hang it
            return Whole(599, json.dumps({"fake_error": repr(exc)}).encode())

    def _route(self, seen: Seen) -> Reply:
        path = seen.path
        if path.startswith("/oauth/"):
            return self._oauth(seen)
        if path == "/copilot/token":
            return self._copilot_exchange(seen)
        if path == "/user":
            return Whole(200, dumps({"login": GITHUB_LOGIN}))
        if path.startswith("/claude/"):
            return self._claude(seen)
        if path == "/codex/responses":
            return self._codex(seen)
        if path.startswith("/v1internal:"):
            return self._code_assist(seen)
        if path == "/copilot-api/chat/completions":
            return self._chat(seen, copilot=True)
        if path == "/qwen/v1/chat/completions":
            return self._chat(seen, copilot=False)
        return Whole(404, dumps({"error": {"message": f"no route {path}"}}))

    def _bearer(self, seen: Seen) -> str | None:
        auth = seen.headers.get("authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None

    # ------------------------------------------------------------------ backends
    def _claude(self, seen: Seen) -> Reply:
        seen.api = "anthropic"
        seen.key = self._bearer(seen)
        if "x-api-key" in seen.headers or seen.key not in self.valid:
            return _anthropic_error(401, "authentication_error", "OAuth token is invalid or expired")
        betas = [b.strip() for b in seen.headers.get("anthropic-beta", "").split(",")]
        if "oauth-2025-04-20" not in betas:
            return _anthropic_error(401, "authentication_error", "OAuth authentication is currently not supported.")
        body = seen.body if isinstance(seen.body, dict) else {}
        system = body.get("system")
        first = system[0].get("text") if isinstance(system, list) and system else system
        if first != CLAUDE_IDENTITY:
            return _anthropic_error(400, "invalid_request_error", "This credential is only authorized for Claude Code")
        seen.model = str(body.get("model", ""))
        seen.stream = body.get("stream") is True
        if seen.model == "leaktoken":  # a provider that echoes the credential in its error text
            return _anthropic_error(400, "invalid_request_error", f"bad request for token {seen.key}")
        if seen.path == "/claude/v1/messages/count_tokens":
            return Whole(200, dumps({"input_tokens": COUNT_TOKENS}))
        return self._generate(seen, "anthropic")

    def _codex(self, seen: Seen) -> Reply:
        seen.api = "responses"
        seen.key = self._bearer(seen)
        if seen.key not in self.valid:
            return Whole(401, dumps({"error": {"message": "Provided authentication token is expired.",
                                               "type": "invalid_request_error", "code": "token_expired"}}))
        body = seen.body if isinstance(seen.body, dict) else {}
        problems = [f"Unsupported parameter: {k}" for k in CODEX_REFUSED if k in body]
        if body.get("stream") is not True:
            problems.append("Stream must be set to true")
        if body.get("store") is not False:
            problems.append("Store must be set to false")
        if not isinstance(body.get("instructions"), str):
            problems.append("Instructions are required")
        if seen.headers.get("chatgpt-account-id") != ACCOUNT_ID:
            problems.append("chatgpt-account-id header missing or wrong")
        if problems:
            return Whole(400, dumps({"detail": "; ".join(problems), "error": {"message": "; ".join(problems),
                                                                             "type": "invalid_request_error"}}))
        seen.model = str(body.get("model", ""))
        seen.stream = True
        if seen.model == "usagelimit":
            return Whole(429, dumps({"error": {"type": "usage_limit_reached", "message": "The usage limit has been "
                                               "reached", "plan_type": "plus", "resets_in_seconds": 3600}}),
                         {"date": formatdate(usegmt=True)})
        return self._generate(seen, "openai")

    def _chat(self, seen: Seen, *, copilot: bool) -> Reply:
        seen.api = "openai"
        seen.key = self._bearer(seen)
        if seen.key not in self.valid:
            return Whole(401, dumps({"error": {"message": "unauthorized: token expired",
                                               "type": "invalid_request_error", "code": "invalid_api_key"}}))
        if copilot and not (seen.headers.get("editor-version") and seen.headers.get("copilot-integration-id")):
            return Whole(400, dumps({"error": {"message": "missing Editor-Version or Copilot-Integration-Id header",
                                               "type": "invalid_request_error"}}))
        body = seen.body if isinstance(seen.body, dict) else {}
        seen.model = str(body.get("model", ""))
        seen.stream = body.get("stream") is True
        return self._generate(seen, "openai")

    def _code_assist(self, seen: Seen) -> Reply:
        method = seen.path.removeprefix("/v1internal:")
        token = self._bearer(seen)
        if token not in self.valid:
            return Whole(401, dumps({"error": {"code": 401, "message": "Request had invalid authentication "
                                               "credentials.", "status": "UNAUTHENTICATED"}}))
        body = seen.body if isinstance(seen.body, dict) else {}
        if method == "loadCodeAssist":
            return Whole(200, dumps({"allowedTiers": [{"id": "free-tier", "isDefault": True}]}))
        if method == "onboardUser":
            if body.get("tierId") != "free-tier":
                return Whole(400, dumps({"error": {"code": 400, "message": "unknown tier",
                                                   "status": "INVALID_ARGUMENT"}}))
            if self.onboarding_pending > 0:
                self.onboarding_pending -= 1
                return Whole(200, dumps({"name": "operations/onboard-1", "done": False}))
            return Whole(200, dumps({"done": True, "response": {"cloudaicompanionProject": {"id": PROJECT}}}))
        seen.api = "gemini"
        seen.key = token
        inner = body.get("request")
        if not isinstance(inner, dict):
            return Whole(400, dumps({"error": {"code": 400, "message": "request envelope missing",
                                               "status": "INVALID_ARGUMENT"}}))
        if method == "countTokens":
            return Whole(200, dumps({"totalTokens": COUNT_TOKENS}))
        if body.get("project") != PROJECT:
            return Whole(403, dumps({"error": {"code": 403, "message": "Permission denied on project",
                                               "status": "PERMISSION_DENIED"}}))
        seen.body = inner
        seen.model = str(body.get("model", ""))
        seen.stream = method == "streamGenerateContent"
        if method not in ("generateContent", "streamGenerateContent"):
            return Whole(404, dumps({"error": {"code": 404, "message": "no method", "status": "NOT_FOUND"}}))
        return _wrap(self._generate(seen, "gemini"))

    # ------------------------------------------------------------------ OAuth
    def _form(self, seen: Seen) -> dict[str, str]:
        if isinstance(seen.body, dict):
            return {k: str(v) for k, v in seen.body.items()}
        return dict(parse_qsl(seen.raw.decode()))

    def _oauth(self, seen: Seen) -> Reply:
        if seen.path == "/oauth/authorize":
            query = seen.query
            if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
                return Whole(400, b"PKCE required")
            code = f"code-{next(self._ids)}"
            self.codes[code] = (query["code_challenge"], query["redirect_uri"])
            target = query["redirect_uri"] + "?" + urlencode({"code": code, "state": query.get("state", "")})
            return Whole(302, b"", {"location": target})
        if seen.path == "/oauth/userinfo":
            return Whole(200, dumps({"email": "gemini-user@example.com"}))
        if seen.path == "/oauth/device/code":
            device_code = f"dev-{next(self._ids)}"
            self.devices[device_code] = Device(list(self.device_script))
            return Whole(200, dumps({"device_code": device_code, "user_code": "ABCD-1234",
                                     "verification_uri": "https://example.invalid/device", "interval": 0.01,
                                     "expires_in": 60}))
        form = self._form(seen)
        self.oauth.token_requests.append(form)
        grant = form.get("grant_type")
        if grant == "refresh_token":
            return self._refresh(form)
        if grant == "authorization_code":
            return self._code(form)
        if grant == "urn:ietf:params:oauth:grant-type:device_code":
            return self._device(form)
        return _oauth_error("unsupported_grant_type")

    def _tokens(self, email: str) -> dict[str, Any]:
        access, refresh = self.issue(email)
        return {"access_token": access, "refresh_token": refresh, "expires_in": self.expires_in,
                "token_type": "Bearer", "id_token": codex_id_token(email), "account": {"email_address": email}}

    def _refresh(self, form: dict[str, str]) -> Reply:
        self.oauth.refreshes += 1
        token = form.get("refresh_token", "")
        if token in self.revoked or token not in self.refresh_tokens:
            return _oauth_error("invalid_grant", "Refresh token has been revoked")
        email = self.refresh_tokens.pop(token)  # rotation: the old refresh token is used up
        return Whole(200, dumps(self._tokens(email)))

    def _code(self, form: dict[str, str]) -> Reply:
        code = form.get("code", "")
        if code not in self.codes:
            return _oauth_error("invalid_grant", "unknown code")
        challenge, redirect_uri = self.codes.pop(code)
        verifier = form.get("code_verifier", "")
        computed = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if computed != challenge:
            return _oauth_error("invalid_grant", "PKCE verification failed")
        if form.get("redirect_uri") != redirect_uri:
            return _oauth_error("invalid_grant", "redirect_uri mismatch")
        return Whole(200, dumps(self._tokens("new-user@example.com")))

    def _device(self, form: dict[str, str]) -> Reply:
        device = self.devices.get(form.get("device_code", ""))
        if device is None:
            return _oauth_error("expired_token")
        device.polls += 1
        if device.answers:
            return _oauth_error(device.answers.pop(0))
        github = f"gho_fake{next(self._ids)}"
        self.github_tokens.add(github)
        tokens = self._tokens("device-user@example.com")
        if form.get("client_id", "").startswith("Iv1."):  # GitHub's device flow gives a GitHub token, no expiry
            tokens = {"access_token": github, "token_type": "bearer", "scope": "read:user"}
        else:  # Qwen: the account's API host comes with the tokens
            tokens["resource_url"] = f"{self.url}/qwen"
        return Whole(200, dumps(tokens))

    def _copilot_exchange(self, seen: Seen) -> Reply:
        auth = seen.headers.get("authorization", "")
        github = auth[6:] if auth.startswith("token ") else ""
        if github not in self.github_tokens:
            return Whole(401, dumps({"message": "Bad credentials"}))
        self.oauth.exchanges += 1
        token = f"tid=copilot-{next(self._ids)}"
        self.valid.add(token)
        return Whole(200, dumps({"token": token, "expires_at": int(time.time()) + self.copilot_ttl, "refresh_in": 1500,
                                 "endpoints": {"api": f"{self.url}/copilot-api"}}))


def _anthropic_error(status: int, kind: str, message: str) -> Whole:
    return Whole(status, dumps({"type": "error", "error": {"type": kind, "message": message}}))


def _oauth_error(code: str, description: str = "") -> Whole:
    body: dict[str, str] = {"error": code}
    if description:
        body["error_description"] = description
    return Whole(400, dumps(body))


def _wrap(reply: Reply) -> Reply:
    """A Gemini answer as Code Assist sends it: every payload inside ``{"response": ...}``."""
    if isinstance(reply, Whole):
        if reply.status != 200:
            return reply
        return Whole(200, dumps({"response": json.loads(reply.body)}), reply.headers, reply.content_type)
    if isinstance(reply, Streamed):
        frames: list[Any] = []
        for frame in reply.frames:
            if isinstance(frame, bytes) and frame.startswith(b"data: "):
                payload = json.loads(frame[6:].strip())
                frames.append(b"data: " + dumps({"response": payload}) + b"\r\n\r\n")
            else:
                frames.append(frame)
        return Streamed(frames, reply.content_type)
    return reply

