"""The layering rule of docs/design.md: pure layers (ir, wire, codecs, errors) import no IO library and no higher
layer; nothing imports server; the engine never names a client format module."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "muxtrio"
PURE = ("ir", "wire", "codecs")
FORBIDDEN_IN_PURE = {"trio", "httpx", "httpx2", "httpcore", "httpcore2", "socket", "asyncio", "hypercorn",
                     "trio_websocket", "time", "random", "uuid", "secrets", "threading", "muxtrio.engine",
                     "muxtrio.upstream", "muxtrio.server", "muxtrio.config", "muxtrio.cli"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _violations(path: Path, forbidden: set[str]) -> list[str]:
    return sorted(
        name for name in imports_of(path) if any(name == f or name.startswith(f + ".") for f in forbidden)
    )


@pytest.mark.parametrize("layer", PURE)
def test_pure_layers_import_no_io_and_no_higher_layer(layer: str) -> None:
    files = sorted((ROOT / layer).rglob("*.py"))
    assert files, f"no modules in {layer}"
    bad = {str(f.relative_to(ROOT)): v for f in files if (v := _violations(f, FORBIDDEN_IN_PURE))}
    assert bad == {}


def test_the_ir_needs_only_the_standard_library_and_errors() -> None:
    """What ``muxtrio/ir/__init__.py`` promises."""
    allowed = ("muxtrio.ir", "muxtrio.errors")
    bad = {
        str(f.relative_to(ROOT)): names
        for f in sorted((ROOT / "ir").rglob("*.py"))
        if (names := sorted(n for n in imports_of(f) if not _stdlib_or(n, allowed)))
    }
    assert bad == {}


def _stdlib_or(name: str, allowed: tuple[str, ...]) -> bool:
    top = name.partition(".")[0]
    return top in sys.stdlib_module_names or any(name == a or name.startswith(a + ".") for a in allowed)


def test_errors_module_is_pure() -> None:
    assert _violations(ROOT / "errors.py", FORBIDDEN_IN_PURE) == []


def test_redact_module_is_pure() -> None:
    """Codecs, the engine and the server all scrub text with it."""
    assert _violations(ROOT / "redact.py", FORBIDDEN_IN_PURE) == []


def test_nothing_below_server_imports_server() -> None:
    files = [f for f in ROOT.rglob("*.py") if "server" not in f.relative_to(ROOT).parts and f.name != "cli.py"]
    bad = {str(f.relative_to(ROOT)): v for f in files if (v := _violations(f, {"muxtrio.server"}))}
    assert bad == {}


def test_the_server_does_not_import_the_client_library() -> None:
    """Both ends of ``/v1/ws`` share ``codecs/ir_json.py`` and ``wire/mux_protocol.py`` instead."""
    files = list((ROOT / "server").rglob("*.py"))
    bad = {str(f.relative_to(ROOT)): v for f in files if (v := _violations(f, {"muxtrio.client"}))}
    assert bad == {}


def test_engine_and_upstream_do_not_name_client_formats() -> None:
    formats = ("openai_chat", "openai_responses", "anthropic", "gemini", "ollama")
    client_modules = {f"muxtrio.codecs.{m}" for m in formats}
    files = list((ROOT / "engine").rglob("*.py")) + list((ROOT / "upstream").rglob("*.py"))
    bad = {str(f.relative_to(ROOT)): v for f in files if (v := _violations(f, client_modules))}
    assert bad == {}


def test_the_checker_catches_a_violation(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import trio\nfrom muxtrio.server import app\n")
    assert _violations(module, FORBIDDEN_IN_PURE) == ["muxtrio.server", "trio"]
