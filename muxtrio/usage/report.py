"""The usage report in llm-mux's ``/v1/management/usage`` shape, computed by the database (GROUP BY), not in Python.

Shape: ``{"summary": {...}, "by_provider": [...], "by_model": [...], "by_key": [...], "by_account": [...],
"timeline": {"by_day": [...], "by_hour": [...]}, "period": {"from", "to", "retention_days"}}``; ``by_account`` is
llm-mux's name for the same per-key rows. ``group_by`` limits the report to the summary and that one grouping.

Invariants: token sums are ``None`` when no record in the group reported that kind (never a silent 0).
"""

from __future__ import annotations

import time
from typing import Any

from muxtrio.usage.store import GROUP_KEYS, Store

GROUPS = tuple(GROUP_KEYS)
_TOKENS = ("input", "output", "reasoning", "cache_read", "cache_write", "total")


def _figures(row: dict[str, Any]) -> dict[str, Any]:
    requests = int(row["requests"] or 0)
    success = int(row["success"] or 0)
    tokens = {name: (None if row[f"{name}_tokens"] is None else int(row[f"{name}_tokens"])) for name in _TOKENS}
    return {
        "requests": requests,
        "success_count": success,
        "failure_count": requests - success,
        "tokens": tokens,
        "cost": None if row["cost"] is None else round(float(row["cost"]), 6),
        "avg_duration_ms": None if row["avg_duration_ms"] is None else round(float(row["avg_duration_ms"]), 1),
        "avg_ttft_ms": None if row["avg_ttft_ms"] is None else round(float(row["avg_ttft_ms"]), 1),
    }


def _grouped(store: Store, group: str, since: float, until: float) -> list[dict[str, Any]]:
    return [{group: row["grp"], **_figures(row)} for row in store.aggregate(group, since, until)]


def build_report(
    store: Store, *, since: float, until: float | None = None, group_by: str | None = None, retention_days: float = 0
) -> dict[str, Any]:
    """Blocking (runs queries): call from a worker thread. ``group_by`` is one of :data:`GROUPS` or None for all."""
    if group_by is not None and group_by not in GROUP_KEYS:
        raise ValueError(f"group-by must be one of {', '.join(GROUPS)}")
    until = time.time() if until is None else until
    total = store.aggregate(None, since, until)
    empty = {"requests": 0, "success": 0, "cost": None, "avg_duration_ms": None, "avg_ttft_ms": None,
             **{f"{name}_tokens": None for name in _TOKENS}}
    summary = _figures(total[0] if total else empty)
    summary["total_requests"] = summary["requests"]
    report: dict[str, Any] = {"summary": summary}
    wanted = GROUPS if group_by is None else (group_by,)
    timeline: dict[str, Any] = {}
    for group in wanted:
        rows = _grouped(store, group, since, until)
        if group in ("day", "hour"):
            timeline[f"by_{group}"] = rows
        else:
            report[f"by_{group}"] = rows
    if "by_key" in report:
        report["by_account"] = report["by_key"]
    if timeline:
        report["timeline"] = timeline
    report["period"] = {
        "from": _iso(since),
        "to": _iso(until),
        "retention_days": retention_days,
    }
    return report


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
