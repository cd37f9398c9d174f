"""An in-memory ring of the most recent log lines, for ``GET /v1/management/logs?after=&limit=``.

Role: a :class:`logging.Handler` that keeps the last ``capacity`` records of this process as small tuples with a
sequence number, so a reader can poll for lines after the last one it saw.

Invariants:
- Bounded: at most ``capacity`` lines are held; older ones are dropped and counted.
- Sequence numbers start at 1 and grow by one per line, so ``after=<last seq>`` never misses or repeats a line that
  is still held.
- A line is one line: the message with control characters escaped; an exception adds its type, never a traceback.
- Thread-safe (``logging.Handler`` serialises ``emit`` with its own lock; readers take the same lock).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

DEFAULT_CAPACITY = 2000


@dataclass(frozen=True, slots=True)
class LogLine:
    seq: int
    created: float
    level: str
    logger: str
    message: str


def _one_line(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\r", "\\r").replace("\n", "\\n") if any(
        c in text for c in "\r\n"
    ) else text


class LogRing(logging.Handler):
    """Keeps the last ``capacity`` log lines; attach it to the root logger."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, level: int = logging.INFO) -> None:
        super().__init__(level)
        self._lines: deque[LogLine] = deque(maxlen=capacity)
        self._seq = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string in a log call must not break logging
            message = str(record.msg)
        if record.exc_info and record.exc_info[0] is not None:
            message = f"{message} [{record.exc_info[0].__name__}]"
        self._seq += 1
        self._lines.append(LogLine(self._seq, record.created, record.levelname, record.name, _one_line(message)))

    def since(self, after: int, limit: int) -> tuple[list[LogLine], int, int]:
        """Up to ``limit`` lines with ``seq > after``, oldest first; the last seq written; how many lines after
        ``after`` were already dropped from the ring."""
        self.acquire()
        try:
            lines = [line for line in self._lines if line.seq > after][:limit]
            first_held = self._lines[0].seq if self._lines else self._seq + 1
            dropped = max(0, first_held - after - 1)
            return lines, self._seq, dropped
        finally:
            self.release()


_RING: LogRing | None = None


def install(capacity: int = DEFAULT_CAPACITY) -> LogRing:
    """The process's ring, attached to the root logger once."""
    global _RING
    if _RING is None:
        _RING = LogRing(capacity)
        logging.getLogger().addHandler(_RING)
    return _RING
