"""Where muxtrio keeps its own files: the data directory (usage database, logs, request logs).

``$XDG_DATA_HOME/muxtrio``, else ``~/.local/share/muxtrio``. Relative paths in ``logging.*`` resolve against it, so
a gateway never writes into whatever directory it happened to be started from.
"""

from __future__ import annotations

import os
from collections.abc import Mapping


def data_dir(env: Mapping[str, str] | None = None) -> str:
    environ = os.environ if env is None else env
    base = environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "muxtrio")


def data_path(path: str) -> str:
    """``path`` with ``~`` expanded; a relative one is taken inside :func:`data_dir`."""
    expanded = os.path.expanduser(path)
    return expanded if os.path.isabs(expanded) else os.path.join(data_dir(), expanded)
