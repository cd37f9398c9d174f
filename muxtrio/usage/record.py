"""One usage record: what one client request cost and how it was served.

Invariants:
- One record per client request (never per attempt), for successes, provider failures and client disconnects alike.
- Never a secret: the client key appears only as its id/name, the credential only as its label.
- Token fields are ``None`` where the provider did not report them; ``tokens_estimated`` marks a local estimate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields


@dataclass(frozen=True, slots=True)
class UsageRecord:
    request_id: str
    client_format: str
    requested_model: str
    status: int
    ts: float = field(default_factory=time.time)
    client_key_id: str | None = None
    client_key_name: str | None = None
    provider: str | None = None
    served_model: str | None = None
    credential: str | None = None
    error_class: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    total_tokens: int | None = None
    tokens_estimated: bool = False
    attempts: int = 0
    failovers: int = 0
    continued: bool = False
    regenerated: bool = False
    ttft_ms: float | None = None
    duration_ms: float = 0.0
    stream: bool = False
    cost: float | None = None

    @property
    def failed(self) -> bool:
        return self.status >= 400 or self.error_class is not None


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(UsageRecord))
