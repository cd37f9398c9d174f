"""In-memory limit state of one client key in one worker: windowed counters fed by leases from the shared store.

A counter (requests per minute, tokens per minute, tokens or cost per day and month) counts units in a UTC-aligned
window. The store holds, per window, every unit any worker has *leased*; a worker spends its leased units locally
(``held``) and asks the store for more only when they run out. Lease sizes adapt to what is left: a slice is
1/:data:`SLICE_DIVISOR` of the remaining allowance (at least what the request needs), so far from the limit one
database call covers many requests, and near it each lease is a single permit — the sum of all grants never passes
the limit, and at most a few units sit unspent in other workers when it is reached. Units a worker holds but has not
spent for a sync interval go back to the store (:meth:`Counter.idle_return`).

Token counters reserve an estimate at admission and settle with the provider's usage when the response ends: a
higher figure spends more (from ``held`` first, then as an unconditional addition written at the next sync), a lower
one gives units back.

Invariants: pure and synchronous (no IO, no awaits); the gate does the store calls; times are ``time.time()``
seconds (wall clock, since windows are calendar-aligned and shared between processes).
"""

from __future__ import annotations

import calendar
import math
import time
from dataclasses import dataclass, field

from muxtrio.keys.model import Limits

SLICE_DIVISOR = 8

RPM, TPM = "requests-minute", "tokens-minute"
TOKENS_DAY, TOKENS_MONTH = "tokens-day", "tokens-month"
COST_DAY, COST_MONTH = "cost-day", "cost-month"
BUDGETS = (TOKENS_DAY, TOKENS_MONTH, COST_DAY, COST_MONTH)
TOKEN_KINDS = (TPM, TOKENS_DAY, TOKENS_MONTH)
COST_KINDS = (COST_DAY, COST_MONTH)

_LIMIT_OF: dict[str, str] = {
    RPM: "rpm", TPM: "tpm", TOKENS_DAY: "budget_tokens_day", TOKENS_MONTH: "budget_tokens_month",
    COST_DAY: "budget_cost_day", COST_MONTH: "budget_cost_month",
}  # fmt: skip

BUDGET_NAMES: dict[str, str] = {
    TOKENS_DAY: "daily token budget", TOKENS_MONTH: "monthly token budget",
    COST_DAY: "daily cost budget", COST_MONTH: "monthly cost budget",
}  # fmt: skip


def window(kind: str, now: float) -> tuple[int, float]:
    """(start, end) of the UTC window of ``kind`` that contains ``now``."""
    if kind in (RPM, TPM):
        start = int(now // 60) * 60
        return start, start + 60.0
    if kind in (TOKENS_DAY, COST_DAY):
        start = int(now // 86400) * 86400
        return start, start + 86400.0
    moment = time.gmtime(now)
    start = calendar.timegm((moment.tm_year, moment.tm_mon, 1, 0, 0, 0))
    year, month = (moment.tm_year + 1, 1) if moment.tm_mon == 12 else (moment.tm_year, moment.tm_mon + 1)
    return start, float(calendar.timegm((year, month, 1, 0, 0, 0)))


def limit_of(limits: Limits, kind: str) -> float | None:
    value = getattr(limits, _LIMIT_OF[kind])
    return None if value is None else float(value)


@dataclass(slots=True)
class Counter:
    kind: str
    limit: float
    start: int = 0
    end: float = 0.0
    held: float = 0.0  # leased from the store for this window and not spent yet
    used: float = 0.0  # the store's count after this worker's last lease (all workers' leases)
    pending: float = 0.0  # spent beyond the leases (settlements): added to the store at the next sync
    active: float = 0.0  # when this worker last spent from it
    dry_until: float = 0.0  # a lease found nothing left: refuse locally until then (no store call per refusal)

    def roll(self, now: float) -> None:
        """Move to the window containing ``now`` (leases of a past window are worth nothing in the next)."""
        if now < self.end:
            return
        self.start, self.end = window(self.kind, now)
        self.held = 0.0
        self.used = 0.0
        self.dry_until = 0.0

    def spend_local(self, amount: float, now: float) -> bool:
        """Spend ``amount`` from the units held here, if there are enough."""
        if self.held > 0 and self.held + 1e-12 >= amount:
            self.held = max(0.0, self.held - amount)
            self.active = now
            return True
        return False

    def lease_size(self, need: float) -> float:
        remaining = max(0.0, self.limit - self.used)
        slice_ = remaining / SLICE_DIVISOR
        if self.kind not in COST_KINDS:
            slice_ = math.floor(slice_)
        return max(need - self.held, slice_, 0.0)

    def granted(self, amount: float, used_after: float) -> None:
        self.held += amount
        self.used = max(self.used, used_after)

    def settle(self, delta: float) -> None:
        """Apply the difference between what a response used and what was reserved for it."""
        if delta < 0:
            self.held += -delta
            return
        local = min(self.held, delta)
        self.held -= local
        self.pending += delta - local
        self.used += delta - local

    def refund(self, amount: float) -> None:
        """Give back units spent by an admission that was refused by a later check."""
        self.held += amount

    def remaining(self) -> float:
        return max(0.0, self.limit - self.used + self.held)

    def take_sync(self, now: float, idle: float) -> tuple[int, float]:
        """(window, delta) to write to the store now: pending additions, minus held units idle for ``idle``
        seconds (returned so other workers can lease them)."""
        delta = self.pending
        self.pending = 0.0
        if self.held > 0 and now - self.active >= idle:
            delta -= self.held
            self.used = max(0.0, self.used - self.held)
            self.held = 0.0
        return self.start, delta


@dataclass(slots=True)
class Slots:
    """The concurrency cap in one worker: slots leased from the store (this worker's row, refreshed by a heartbeat so
    a dead worker's slots stop counting), some in use by requests, the rest held for the next ones."""

    limit: int
    held: int = 0
    in_use: int = 0
    total: int = 0  # every worker's slots, as of this worker's last lease
    active: float = 0.0
    written: int = -1  # what this worker's row said at the last write (-1: never written)

    def take_local(self, now: float) -> bool:
        if self.held > 0:
            self.held -= 1
            self.in_use += 1
            self.active = now
            return True
        return False

    def lease_size(self) -> int:
        return max(1, (self.limit - self.total) // SLICE_DIVISOR)

    def release(self) -> None:
        if self.in_use > 0:
            self.in_use -= 1
            self.held += 1

    def idle_return(self, now: float, idle: float) -> int:
        """The count this worker's row should say now (held slots idle for ``idle`` seconds given back)."""
        if self.held and now - self.active >= idle:
            self.held = 0
        return self.held + self.in_use


@dataclass(slots=True)
class KeyLimiter:
    """Every counter of one key in this worker, plus its concurrency slots."""

    key_id: str
    counters: dict[str, Counter] = field(default_factory=dict)
    slots: Slots | None = None

    def configure(self, limits: Limits) -> None:
        """Follow the key's current limits (kept counters keep their state; removed limits drop theirs)."""
        if limits.max_concurrency is None:
            self.slots = None
        elif self.slots is None:
            self.slots = Slots(limits.max_concurrency)
        else:
            self.slots.limit = limits.max_concurrency
        for kind in _LIMIT_OF:
            limit = limit_of(limits, kind)
            if limit is None:
                self.counters.pop(kind, None)
            elif kind in self.counters:
                self.counters[kind].limit = limit
            else:
                self.counters[kind] = Counter(kind, limit)


def reset_text(seconds: float) -> str:
    """A reset delay the way OpenAI's ``x-ratelimit-reset-*`` headers write it: ``20ms``, ``1s``, ``6m0s``,
    ``1h2m3s``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"
