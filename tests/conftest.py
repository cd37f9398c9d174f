"""Suite-wide test setup: the gateway's data directory (usage database, request logs, log files) goes to a temporary
directory for the whole run, so tests (and the servers they start as subprocesses) never write into the home
directory or the checkout."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import pytest

from tests.services import Postgres, postgres_bin, postgres_cluster

os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="muxtrio-test-data-")

needs_postgres = pytest.mark.skipif(postgres_bin() is None, reason="Debian postgresql package not installed")


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    """A throwaway Postgres cluster (Debian package) for one test module."""
    if postgres_bin() is None:
        pytest.skip("Debian postgresql package not installed")
    with postgres_cluster() as cluster:
        yield cluster
