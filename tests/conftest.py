"""Suite-wide test setup: the gateway's data directory (usage database, request logs, log files) goes to a temporary
directory for the whole run, so tests (and the servers they start as subprocesses) never write into the home
directory or the checkout."""

from __future__ import annotations

import os
import tempfile

os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="muxtrio-test-data-")
