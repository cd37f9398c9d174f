"""Fixtures of the agent-CLI tests (defined in ``tests/agents/stack.py``) and the ``agents`` marker."""

from __future__ import annotations

import pytest

from tests.agents.stack import agent_clis

__all__ = ["agent_clis"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "agents: end-to-end tests with the agent CLIs installed from npm")
