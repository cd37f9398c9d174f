"""The OAuth side of each subscription provider: its endpoints (the real ones as defaults, each overridable with
``accounts.endpoints.<type>.<key>`` in the config), PKCE, and the HTTP calls — code exchange, refresh, device flow,
the Copilot token exchange and Code Assist project discovery. Facts and sources: tests/fixtures/accounts/*.source.txt.

Invariants: errors carry the provider's error code and HTTP status, never a token; a refresh refused with
``invalid_grant`` (or 401 from the token endpoint) is *revoked* (log in again); other failures are retryable.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Final, Literal
from urllib.parse import urlencode

import httpx2

from muxtrio.accounts.files import chatgpt_account_id, jwt_claims

Flow = Literal["pkce", "device"]


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where one provider's OAuth and account calls go. Empty strings: the provider has no such step."""

    flow: Flow
    client_id: str
    scope: str
    authorize_url: str = ""
    token_url: str = ""
    redirect_uri: str = ""
    client_secret: str = ""  # Google's installed-app secret, published in Gemini CLI's sources (not a secret)
    device_code_url: str = ""
    token_exchange_url: str = ""  # Copilot: GitHub token -> Copilot API token
    code_assist_url: str = ""  # Gemini CLI: loadCodeAssist / onboardUser
    user_url: str = ""  # Copilot's GitHub login name, Google's userinfo email: the file name and label
    token_format: Literal["json", "form"] = "form"


DEFAULT_ENDPOINTS: Final[Mapping[str, Endpoints]] = {
    "claude": Endpoints(
        "pkce", "9d1c250a-e61b-44d9-88ed-5944d1962f5e", "org:create_api_key user:profile user:inference",
        authorize_url="https://claude.ai/oauth/authorize", token_url="https://console.anthropic.com/v1/oauth/token",
        redirect_uri="http://localhost:54545/callback", token_format="json",
    ),
    "codex": Endpoints(
        "pkce", "app_EMoamEEZ73f0CkXaXp7hrann", "openid email profile offline_access",
        authorize_url="https://auth.openai.com/oauth/authorize", token_url="https://auth.openai.com/oauth/token",
        redirect_uri="http://localhost:1455/auth/callback",
    ),
    "gemini-cli": Endpoints(
        "pkce", "681255809395-oo8ft2oprdrnp9e3aqf6av3hmdib135j.apps.googleusercontent.com",
        "https://www.googleapis.com/auth/cloud-platform https://www.googleapis.com/auth/userinfo.email "
        "https://www.googleapis.com/auth/userinfo.profile",
        authorize_url="https://accounts.google.com/o/oauth2/v2/auth", token_url="https://oauth2.googleapis.com/token",
        redirect_uri="http://localhost:8085/oauth2callback", client_secret="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",
        code_assist_url="https://cloudcode-pa.googleapis.com/v1internal",
        user_url="https://www.googleapis.com/oauth2/v1/userinfo?alt=json",
    ),
    "github-copilot": Endpoints(
        "device", "Iv1.b507a08c87ecfe98", "read:user",
        token_url="https://github.com/login/oauth/access_token", device_code_url="https://github.com/login/device/code",
        token_exchange_url="https://api.github.com/copilot_internal/v2/token", user_url="https://api.github.com/user",
    ),
    "qwen": Endpoints(
        "device", "f0304373b74a44d2b584a3fb70ca9e56", "openid profile email model.completion",
        token_url="https://chat.qwen.ai/api/v1/oauth2/token",
        device_code_url="https://chat.qwen.ai/api/v1/oauth2/device/code",
    ),
}  # fmt: skip

_FIXED_FIELDS: Final = ("flow", "token_format")
ENDPOINT_KEYS: Final = tuple(f.name.replace("_", "-") for f in fields(Endpoints) if f.name not in _FIXED_FIELDS)
"""Config keys of ``accounts.endpoints.<type>``."""

DEVICE_GRANT: Final = "urn:ietf:params:oauth:grant-type:device_code"
CODE_ASSIST_METADATA: Final = {"ideType": "IDE_UNSPECIFIED", "platform": "PLATFORM_UNSPECIFIED", "pluginType": "GEMINI"}
COPILOT_EXCHANGE_HEADERS: Final = (
    ("editor-version", "vscode/1.104.1"),
    ("editor-plugin-version", "copilot-chat/0.26.7"),
    ("user-agent", "GitHubCopilotChat/0.26.7"),
)


def endpoints_for(provider: str, overrides: Mapping[str, Mapping[str, str]] | None = None) -> Endpoints:
    """The endpoints of ``provider`` with the config's overrides applied."""
    base = DEFAULT_ENDPOINTS[provider]
    changes: dict[str, Any] = {
        key.replace("-", "_"): value
        for key, value in ((overrides or {}).get(provider) or {}).items()
        if key in ENDPOINT_KEYS
    }
    return replace(base, **changes) if changes else base


class OAuthError(Exception):
    """A failed OAuth call. ``revoked``: the refresh token no longer works (log in again). ``code`` is the
    provider's error code (``invalid_grant``, ``authorization_pending``...)."""

    def __init__(self, message: str, *, code: str = "", status: int = 0, revoked: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.revoked = revoked


@dataclass(frozen=True, slots=True)
class Grant:
    """What a token endpoint answered. ``expires_in`` in seconds (None: not said)."""

    access_token: str
    refresh_token: str
    expires_in: float | None
    id_token: str = ""
    email: str = ""
    resource_url: str = ""
    raw: Mapping[str, Any] | None = None


# ------------------------------------------------------------------------------------------------------------ PKCE
def pkce_pair() -> tuple[str, str]:
    """A PKCE ``(verifier, S256 challenge)``: 64 random bytes, base64url without padding (RFC 7636)."""
    verifier = base64.urlsafe_b64encode(secrets.token_bytes(64)).rstrip(b"=").decode()
    return verifier, pkce_challenge(verifier)


def pkce_challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def authorize_url(provider: str, endpoints: Endpoints, *, state: str, challenge: str, redirect_uri: str) -> str:
    params = {
        "client_id": endpoints.client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": endpoints.scope,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": state,
    }
    if provider == "claude":
        params = {"code": "true", **params}
    elif provider == "codex":
        params.update(prompt="login", id_token_add_organizations="true", codex_cli_simplified_flow="true")
    elif provider == "gemini-cli":
        params.update(access_type="offline", prompt="consent")
    return f"{endpoints.authorize_url}?{urlencode(params)}"


# ------------------------------------------------------------------------------------------------------ token calls
def _error_of(status: int, data: object, what: str) -> OAuthError:
    code = ""
    description = ""
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict):
            code = str(err.get("type") or err.get("code") or err.get("status") or "")
            description = str(err.get("message") or "")
        elif isinstance(err, str):
            code = err
            description = str(data.get("error_description") or "")
    revoked = code == "invalid_grant" or (what == "refresh" and status == 401)
    detail = f"{code}: {description}" if code and description else code or description or f"HTTP {status}"
    return OAuthError(f"{what} failed ({detail[:300]})", code=code, status=status, revoked=revoked)


async def _post(client: httpx2.AsyncClient, url: str, body: Mapping[str, str], as_json: bool,
                headers: Mapping[str, str] | None = None) -> tuple[int, Any]:  # fmt: skip
    sent = {"accept": "application/json", **(headers or {})}
    try:
        if as_json:
            response = await client.post(url, json=dict(body), headers=sent)
        else:
            response = await client.post(url, data=dict(body), headers=sent)
    except httpx2.HTTPError as exc:
        raise OAuthError(f"could not reach {url.split('?')[0]} ({type(exc).__name__})") from None
    try:
        data = response.json()
    except ValueError:
        data = None
    return response.status_code, data


def _grant(data: Any, what: str) -> Grant:
    if not isinstance(data, dict) or not isinstance(data.get("access_token"), str) or not data["access_token"]:
        raise OAuthError(f"{what} answered without an access_token")
    expires = data.get("expires_in")
    account = data["account"] if isinstance(data.get("account"), dict) else {}
    id_token = str(data.get("id_token") or "")
    email = str(account.get("email_address") or jwt_claims(id_token).get("email") or data.get("email") or "")
    return Grant(
        access_token=data["access_token"],
        refresh_token=str(data.get("refresh_token") or ""),
        expires_in=float(expires) if isinstance(expires, int | float) and not isinstance(expires, bool) else None,
        id_token=id_token,
        email=email,
        resource_url=str(data.get("resource_url") or ""),
        raw=data,
    )


async def exchange_code(client: httpx2.AsyncClient, provider: str, endpoints: Endpoints, *, code: str,
                        verifier: str, redirect_uri: str, state: str) -> Grant:  # fmt: skip
    """Authorization code + PKCE verifier -> tokens."""
    body = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": endpoints.client_id,
        "code_verifier": verifier,
    }
    if provider == "claude":
        body["state"] = state
    if endpoints.client_secret:
        body["client_secret"] = endpoints.client_secret
    status, data = await _post(client, endpoints.token_url, body, endpoints.token_format == "json")
    if status >= 400:
        raise _error_of(status, data, "code exchange")
    return _grant(data, "the token endpoint")


async def refresh(client: httpx2.AsyncClient, provider: str, endpoints: Endpoints, refresh_token: str) -> Grant:
    """A new access token for ``refresh_token``; :class:`OAuthError` (``revoked`` when it no longer works)."""
    body = {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": endpoints.client_id}
    if endpoints.client_secret:
        body["client_secret"] = endpoints.client_secret
    if provider == "codex":
        body["scope"] = "openid profile email"
    status, data = await _post(client, endpoints.token_url, body, endpoints.token_format == "json")
    if status >= 400:
        raise _error_of(status, data, "refresh")
    return _grant(data, "the token endpoint")


# ------------------------------------------------------------------------------------------------------ device flow
@dataclass(frozen=True, slots=True)
class DeviceCode:
    device_code: str
    user_code: str
    verification_uri: str
    interval: float
    expires_in: float


async def device_start(client: httpx2.AsyncClient, provider: str, endpoints: Endpoints,
                       challenge: str = "") -> DeviceCode:  # fmt: skip
    body = {"client_id": endpoints.client_id, "scope": endpoints.scope}
    if provider == "qwen":
        body.update(code_challenge=challenge, code_challenge_method="S256")
    status, data = await _post(client, endpoints.device_code_url, body, False)
    if status >= 400 or not isinstance(data, dict) or not data.get("device_code"):
        raise _error_of(status, data, "device authorization")
    uri = str(data.get("verification_uri_complete") or data.get("verification_uri") or "")
    return DeviceCode(
        device_code=str(data["device_code"]),
        user_code=str(data.get("user_code") or ""),
        verification_uri=uri,
        interval=float(data.get("interval") or 5),
        expires_in=float(data.get("expires_in") or 900),
    )


async def device_poll(client: httpx2.AsyncClient, provider: str, endpoints: Endpoints, device: DeviceCode,
                      verifier: str = "") -> Grant | str:  # fmt: skip
    """One poll: the grant, or the pending code (``authorization_pending`` / ``slow_down``) to wait on."""
    body = {"grant_type": DEVICE_GRANT, "client_id": endpoints.client_id, "device_code": device.device_code}
    if verifier:
        body["code_verifier"] = verifier
    status, data = await _post(client, endpoints.token_url, body, False)
    code = data.get("error") if isinstance(data, dict) else None
    if code in ("authorization_pending", "slow_down"):
        return str(code)
    if status >= 400 or code:
        raise _error_of(status, data, "device login")
    return _grant(data, "the token endpoint")


# ------------------------------------------------------------------------------------------------------ Copilot
@dataclass(frozen=True, slots=True)
class CopilotToken:
    token: str
    expires_at: float  # unix seconds
    api_url: str


async def copilot_token(client: httpx2.AsyncClient, endpoints: Endpoints, github_token: str) -> CopilotToken:
    """GitHub token -> Copilot API token (``GET copilot_internal/v2/token``)."""
    headers = {"authorization": f"token {github_token}", "accept": "application/json", **dict(COPILOT_EXCHANGE_HEADERS)}
    try:
        response = await client.get(endpoints.token_exchange_url, headers=headers)
    except httpx2.HTTPError as exc:
        raise OAuthError(f"could not reach the Copilot token endpoint ({type(exc).__name__})") from None
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code >= 400 or not isinstance(data, dict) or not data.get("token"):
        error = _error_of(response.status_code, data, "Copilot token exchange")
        error.revoked = response.status_code == 401
        raise error
    api = data.get("endpoints", {}).get("api") if isinstance(data.get("endpoints"), dict) else None
    return CopilotToken(str(data["token"]), float(data.get("expires_at") or 0), str(api or ""))


async def user_name(client: httpx2.AsyncClient, endpoints: Endpoints, token: str) -> str:
    """The account's name at the provider (GitHub ``login``, Google ``email``) for the file name and label; empty
    when it cannot be read."""
    if not endpoints.user_url:
        return ""
    try:
        response = await client.get(endpoints.user_url, headers={"authorization": f"Bearer {token}"})
        data = response.json()
    except (httpx2.HTTPError, ValueError):
        return ""
    return str(data.get("login") or data.get("email") or "") if isinstance(data, dict) else ""


# ------------------------------------------------------------------------------------------------ Gemini Code Assist
async def _code_assist(client: httpx2.AsyncClient, endpoints: Endpoints, method: str, token: str,
                       body: Mapping[str, Any]) -> dict[str, Any]:  # fmt: skip
    url = f"{endpoints.code_assist_url}:{method}"
    try:
        response = await client.post(url, json=dict(body), headers={"authorization": f"Bearer {token}"})
        data = response.json()
    except httpx2.HTTPError as exc:
        raise OAuthError(f"could not reach Code Assist {method} ({type(exc).__name__})") from None
    except ValueError:
        data = None
    if response.status_code >= 400 or not isinstance(data, dict):
        raise _error_of(response.status_code, data, f"Code Assist {method}")
    return data


def _project_id(value: object) -> str:
    if isinstance(value, dict):
        value = value.get("id")
    return value.strip() if isinstance(value, str) else ""


async def code_assist_project(client: httpx2.AsyncClient, endpoints: Endpoints, token: str, requested: str = "",
                              *, poll_interval: float = 5.0, max_polls: int = 60) -> str:  # fmt: skip
    """The Code Assist project of an account, as Gemini CLI finds it: ``loadCodeAssist`` (the project it names, or
    the requested one), then ``onboardUser`` with the default tier until the operation is ``done``."""
    import trio

    load: dict[str, Any] = {"metadata": CODE_ASSIST_METADATA}
    if requested:
        load["cloudaicompanionProject"] = requested
    loaded = await _code_assist(client, endpoints, "loadCodeAssist", token, load)
    project = requested or _project_id(loaded.get("cloudaicompanionProject"))
    if loaded.get("currentTier") and project:
        return project  # already onboarded
    tier = "legacy-tier"
    for entry in loaded.get("allowedTiers") or ():
        if isinstance(entry, dict) and entry.get("isDefault") and isinstance(entry.get("id"), str):
            tier = entry["id"]
            break
    onboard: dict[str, Any] = {"tierId": tier, "metadata": CODE_ASSIST_METADATA}
    if project:
        onboard["cloudaicompanionProject"] = project
    for _ in range(max_polls):
        operation = await _code_assist(client, endpoints, "onboardUser", token, onboard)
        if operation.get("done"):
            response = operation.get("response")
            found = _project_id(response.get("cloudaicompanionProject")) if isinstance(response, dict) else ""
            if found or project:
                return found or project
            raise OAuthError("Code Assist onboarding finished without a project (pass --project)")
        await trio.sleep(poll_interval)
    raise OAuthError("Code Assist onboarding did not finish")


def codex_identity(grant: Grant) -> tuple[str, str]:
    """``(email, chatgpt account id)`` from a Codex grant's id_token."""
    claims = jwt_claims(grant.id_token)
    return str(claims.get("email") or grant.email), chatgpt_account_id(grant.id_token)
