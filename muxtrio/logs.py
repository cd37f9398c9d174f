"""Process logging: text or JSON lines on stderr and, optionally, a size-rotated file.

Invariants:
- Configured once per process (each worker configures its own handlers; with several workers, the rotated file is
  shared and rotation is left to the first worker, the others append — see ``configure``).
- JSON lines are single-line by construction (orjson escapes control characters), so a client-supplied newline can
  never forge a line; the text format gets the same guarantee from :class:`OneLineFormatter`, which escapes control
  characters in every message (:mod:`muxtrio.logsafe`), and from the fields' own escaping at the call sites.
- Third-party chatter (httpx2, httpcore2, hpack, hypercorn) stays at WARNING unless ``debug`` is on.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import time

import orjson

from muxtrio.config import Config, LogFormat
from muxtrio.logsafe import escape_controls
from muxtrio.paths import data_path

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
_NOISY = ("httpx2", "httpcore2", "hpack", "hypercorn", "psycopg")


class OneLineFormatter(logging.Formatter):
    """Text lines whose message has its control characters escaped, so client or provider text can never forge a
    line (a traceback, appended after the message, keeps its own lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts`` (ISO 8601 UTC), ``level``, ``logger``, ``msg``, ``pid``; ``exc`` when any."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def _formatter(config: Config) -> logging.Formatter:
    if config.logging.format is LogFormat.JSON:
        return JsonFormatter()
    return OneLineFormatter(TEXT_FORMAT)


def configure(config: Config, *, rotate: bool = True) -> None:
    """Install the handlers for this process. ``rotate`` False appends without rotating (secondary workers)."""
    level = logging.DEBUG if config.debug else getattr(logging, config.logging.level.upper())
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    formatter = _formatter(config)
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(formatter)
    root.addHandler(stream)
    if config.logging.to_file:
        path = data_path(config.logging.file)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        file_handler: logging.Handler
        if rotate:
            file_handler = logging.handlers.RotatingFileHandler(
                path, maxBytes=config.logging.file_max_bytes, backupCount=config.logging.file_backups,
                encoding="utf-8",
            )
        else:
            file_handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8")
        file_handler.setFormatter(formatter)
        root.addHandler(file_handler)
    root.setLevel(level)
    for noisy in _NOISY:
        logging.getLogger(noisy).setLevel(logging.DEBUG if config.debug else logging.WARNING)
