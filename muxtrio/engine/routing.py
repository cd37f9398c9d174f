"""The model registry: what a client's model name means, as an ordered list of deployments to try.

Resolution of a requested name, in order:
0. The name is checked (:func:`check_model_name`): a name that could steer a provider URL (control characters,
   ``.``/``..`` segments, ``?``, ``#``, a backslash, or ``%``-escapes that decode to any of these) is a 400 naming
   the ``model`` field. Codecs also percent-encode names they put into a URL (``codecs.base.path_segment``).
1. ``aliases`` (llm-mux ``routing.aliases``) rename it once.
2. ``provider-name://model`` or ``provider-name/model`` forces one provider (only when the prefix is a configured
   provider's name, so model ids that contain ``/`` keep working). Forcing chooses among what the provider serves,
   it never widens it: a provider with a ``models`` list serves only the entries of its list (by alias or by name);
   a provider without one passes the name through.
3. Every provider whose ``models`` list has that alias serves it (the same alias on several providers pools them,
   in config order); the upstream receives the entry's ``name``.
4. Otherwise providers without a model list whose type patterns match (see ``upstream/providers.py``: the official
   OpenAI, Anthropic and Gemini endpoints serve their own model families, other base URLs and Ollama any name).
``excluded-models`` patterns (``*`` anywhere, case-insensitive) remove a provider from any of these.
``fallbacks`` give the next model names to try, in order, once a model's deployments are exhausted.

Candidates: :class:`Candidates` hands out one model's (deployment, credential) pairs for one request, each once,
least in-flight first, and waits out a rate-limit cooldown when every credential is cooling down (see its docstring);
:class:`Router` says *what* may serve a name, :class:`Candidates` *which credential next*, the engine *what happened*.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote

import trio

from muxtrio.config import Config, ModelConfig, ProviderConfig, Timeouts
from muxtrio.engine.pool import CredentialPool, CredentialState, Outage, OutageReason
from muxtrio.errors import ClientError, ErrorKind
from muxtrio.upstream.providers import default_patterns, kind_of
from muxtrio.wildcard import wildcard_match

log = logging.getLogger("muxtrio.engine")

MAX_MODEL_NAME_LENGTH = 256
_MAX_ESCAPE_LEVELS = 4  # a name still changing after this many percent-decodings is refused outright
# The names of real models (``gpt-4o``, ``llama3:8b``, ``org/model``, ``models/gemini-2.5-pro``): segments of safe
# characters that never start with a dot. These skip the full check (a request's only per-name cost).
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_\-:@+][A-Za-z0-9._\-:@+]*(?:/[A-Za-z0-9_\-:@+][A-Za-z0-9._\-:@+]*)*")


def _is_control(char: str) -> bool:
    code = ord(char)
    return code < 0x20 or 0x7F <= code < 0xA0


def _unsafe_in(text: str) -> str | None:
    if any(_is_control(c) for c in text):
        return "contains a control character"
    if "?" in text or "#" in text:
        return "contains '?' or '#'"
    if "\\" in text:
        return "contains a backslash"
    if any(segment in (".", "..") for segment in text.split("/")):
        return "contains a '.' or '..' path segment"
    return None


def check_model_name(model: str) -> None:
    """Refuse a model name that could change which provider URL is called (a 400 naming the ``model`` field).

    Checked on the name and on each of its percent-decodings, so ``%2F..%2F`` or ``%3F`` are refused like the
    characters they stand for. Model names never need these; ``/`` alone is fine (``provider/model``,
    ``org/model`` on OpenAI-compatible providers)."""
    if len(model) <= MAX_MODEL_NAME_LENGTH and _PLAIN_NAME.fullmatch(model):
        return
    problem = None
    if len(model) > MAX_MODEL_NAME_LENGTH:
        problem = f"longer than {MAX_MODEL_NAME_LENGTH} characters"
    text = model
    for level in range(_MAX_ESCAPE_LEVELS + 1):
        if problem is not None:
            break
        problem = _unsafe_in(text)
        decoded = unquote(text)
        if decoded == text:
            break
        if level == _MAX_ESCAPE_LEVELS:
            problem = "has too many levels of percent-escapes"
        text = decoded
    if problem is not None:
        shown = model if len(model) <= 80 else model[:77] + "..."
        raise ClientError(ErrorKind.INVALID_REQUEST, f"invalid model name {shown!r}: {problem}", param="model")


@dataclass(frozen=True, slots=True)
class Deployment:
    """One way to serve a model: a provider and the name the upstream knows the model by."""

    provider: ProviderConfig
    alias: str
    upstream_model: str
    prefill: bool
    timeouts: Timeouts


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """One row of the router's listing. ``pattern``: ``id`` is a name pattern a provider without a model list
    serves (``*`` wildcards), which no model listing can show; ``alias_of``: ``id`` is a routing alias of that name
    (``provider`` is then the provider that serves it first, ``provider_type`` ``"alias"``)."""

    id: str
    provider: str
    provider_type: str
    pattern: bool = False
    alias_of: str | None = None


class Router:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.providers = {p.name: p for p in config.providers if p.enabled}

    def _deployment(self, provider: ProviderConfig, alias: str, entry: ModelConfig | None) -> Deployment:
        upstream = entry.name if entry is not None else alias
        prefill = kind_of(provider.type).prefill
        if entry is not None and entry.prefill is not None:
            prefill = entry.prefill
        timeouts = self.config.timeouts.merged(provider.timeouts)
        if entry is not None:
            timeouts = timeouts.merged(entry.timeouts)
        return Deployment(provider, alias, upstream, prefill, timeouts)

    def _on_provider(self, provider: ProviderConfig, model: str) -> Deployment | None:
        if provider.is_excluded(model):
            return None
        for entry in provider.models:
            if (entry.alias or entry.name) == model:
                return self._deployment(provider, model, entry)
        if not provider.models and any(
            wildcard_match(p, model) for p in default_patterns(provider.type, provider.base_url)
        ):
            return self._deployment(provider, model, None)
        return None

    def _listed(self, provider: ProviderConfig, name: str) -> ModelConfig | None:
        """The entry of ``provider``'s model list that ``name`` means: by alias (the client name) first, then by the
        upstream name."""
        entry = next((e for e in provider.models if (e.alias or e.name) == name), None)
        return entry or next((e for e in provider.models if e.name == name), None)

    def _forced(self, model: str) -> tuple[ProviderConfig, str] | None:
        for sep in ("://", "/"):
            name, found, rest = model.partition(sep)
            if found and rest and name in self.providers:
                return self.providers[name], rest
        return None

    def resolve(self, model: str) -> list[Deployment]:
        """The deployments of ``model`` in the order to try them (empty if none)."""
        model = self.config.aliases.get(model, model)
        forced = self._forced(model)
        if forced is not None:
            provider, name = forced
            if provider.is_excluded(name):
                return []
            entry = self._listed(provider, name)
            if entry is None and provider.models:
                return []  # a provider with a list serves only its list: forcing never widens it
            return [self._deployment(provider, name, entry)]
        explicit = [
            d
            for p in self.providers.values()
            if p.models
            for d in [self._on_provider(p, model)]
            if d is not None
        ]
        if explicit:
            return explicit
        return [
            d
            for p in self.providers.values()
            if not p.models
            for d in [self._on_provider(p, model)]
            if d is not None
        ]

    def chain(self, model: str) -> list[str]:
        """The model and its fallbacks, in order, without repeats."""
        seen: list[str] = []
        for name in (model, *self.config.fallbacks.get(model, ())):
            if name not in seen:
                seen.append(name)
        return seen

    def require(self, model: str) -> None:
        """Raise the client-facing 404 when no deployment or fallback can serve ``model``."""
        if not model:
            raise ClientError(ErrorKind.INVALID_REQUEST, "a model name is required", param="model")
        check_model_name(model)
        if not any(self.resolve(name) for name in self.chain(model)):
            raise ClientError(ErrorKind.NOT_FOUND, self._not_served(model), param="model")

    def _not_served(self, model: str) -> str:
        """Why nothing serves ``model``, in words a client can act on."""
        message = f"model {model!r} is not served by this gateway"
        forced = self._forced(self.config.aliases.get(model, model))
        if forced is not None:
            provider, name = forced
            if provider.models and not provider.is_excluded(name):
                return f"{message}: provider {provider.name!r} serves only the models in its list"
            return f"{message}: provider {provider.name!r} excludes it"
        listless = [p for p in self.providers.values() if not p.models and default_patterns(p.type, p.base_url)]
        if listless:
            # Official endpoints serve their own families only (upstream/providers.py); say so, and how to force.
            families = "; ".join(f"{p.name} ({', '.join(default_patterns(p.type, p.base_url))})" for p in listless)
            return (
                f"{message}: no provider lists it, and the providers without a model list serve these names: "
                f"{families}; to send it to one anyway, name it: '{listless[0].name}/{model}'"
            )
        return message

    def listing(self) -> list[ModelEntry]:
        """Every name a client can send, one row per provider that serves it: listed models (minus excluded ones),
        the name patterns of providers without a list, then the routing aliases that resolve. ``muxtrio models``
        prints this; :meth:`models` (``/v1/models``) is the same rows without patterns and repeats."""
        out: list[ModelEntry] = []
        for provider in self.providers.values():
            if not provider.models:
                patterns = default_patterns(provider.type, provider.base_url)
                out.extend(ModelEntry(p, provider.name, str(provider.type), pattern=True) for p in patterns)
            for entry in provider.models:
                alias = entry.alias or entry.name
                if not provider.is_excluded(alias):
                    out.append(ModelEntry(alias, provider.name, str(provider.type)))
        for alias, target in self.config.aliases.items():
            deployments = self.resolve(alias)
            if deployments:
                out.append(ModelEntry(alias, deployments[0].provider.name, "alias", alias_of=target))
        return out

    def models(self) -> list[ModelEntry]:
        """The model ids clients can ask for, each once (pattern-served names cannot be listed)."""
        out: list[ModelEntry] = []
        seen: set[str] = set()
        for entry in self.listing():
            if not entry.pattern and entry.id not in seen:
                seen.add(entry.id)
                out.append(entry)
        return out


# ---------------------------------------------------------------------------------------------------- candidates
Route = tuple[str, int, str]
"""(provider, credential index, upstream model): what a request remembers as tried."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """One attempt's choice: a deployment of the model and one credential of its provider's pool."""

    deployment: Deployment
    pool: CredentialPool
    credential: CredentialState

    @property
    def route(self) -> Route:
        return (self.pool.provider, self.credential.index, self.deployment.upstream_model)


def pick(
    deployments: list[Deployment], pools: Mapping[str, CredentialPool], tried: set[Route], now: float
) -> Candidate | None:
    """The available credential not yet in ``tried`` with the fewest requests in flight, over all ``deployments``."""
    best: Candidate | None = None
    for deployment in deployments:
        pool = pools[deployment.provider.name]
        model = deployment.upstream_model
        exclude = frozenset(i for (p, i, m) in tried if p == deployment.provider.name and m == model)
        cred = pool.pick(model, now, exclude)
        if cred is not None and (best is None or cred.in_flight + cred.in_flight_elsewhere
                                 < best.credential.in_flight + best.credential.in_flight_elsewhere):
            best = Candidate(deployment, pool, cred)
    return best


@dataclass(slots=True)
class Candidates:
    """One model's candidates for one request, as an async iterator (``async for candidate in candidates``).

    Each available credential of the model's deployments comes once (least in flight first); the engine reports a
    failure with :meth:`failed` and a retry delay with :meth:`later` (after which every credential may come again).
    When none is available, a rate-limit cooldown is waited out when it ends within ``max_wait`` and the retry
    budget (``retries`` < ``max_retries``, shared with the engine's retries) allows; otherwise iteration ends, and
    ``outage`` says why: None when every available credential was tried, else the outage back first and its upstream
    model, as of ``ended_at``."""

    deployments: list[Deployment]
    pools: Mapping[str, CredentialPool]
    max_retries: int
    max_wait: float
    retries: int = 0
    tried: set[Route] = field(default_factory=set)
    outage: tuple[Outage, str] | None = None
    ended_at: float = 0.0

    def __aiter__(self) -> Candidates:
        return self

    async def __anext__(self) -> Candidate:
        while True:
            now = trio.current_time()
            candidate = pick(self.deployments, self.pools, self.tried, now)
            if candidate is not None:
                return candidate
            self.outage, self.ended_at = self._outage(now), now
            if self.outage is None:
                raise StopAsyncIteration  # every available credential was tried
            outage = self.outage[0]
            wait = outage.until - now
            waitable = outage.reason is OutageReason.RATE_LIMITED and wait <= self.max_wait
            if not waitable or self.retries >= self.max_retries:
                raise StopAsyncIteration
            self.retries += 1  # waiting for a cooldown to end spends the retry budget too
            log.info("%s: every credential is rate-limited; waiting %.1f s", outage.provider, wait)
            await trio.sleep(wait)
            self.tried.clear()

    def failed(self, candidate: Candidate) -> Candidate | None:
        """Remember ``candidate`` as tried; the candidate that would come next now, if any."""
        self.tried.add(candidate.route)
        return pick(self.deployments, self.pools, self.tried, trio.current_time())

    async def later(self, delay: float) -> None:
        """Wait ``delay`` seconds before the next candidate; every credential may be tried again after it."""
        await trio.sleep(delay)
        self.tried.clear()

    def _outage(self, now: float) -> tuple[Outage, str] | None:
        """Why none of the deployments can be used now (the one back first), or None when some credential is
        available (it was tried already by this request)."""
        best: tuple[Outage, str] | None = None
        for d in self.deployments:
            outage = self.pools[d.provider.name].outage(d.upstream_model, now)
            if outage is None:
                return None
            if best is None or outage.until < best[0].until:
                best = (outage, d.upstream_model)
        return best
