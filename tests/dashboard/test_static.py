"""The dashboard's static route through the real server, and what its files may and may not contain."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import httpx2

from muxtrio.config import load_config_text
from muxtrio.server.dashboard import ASSETS, CONTENT_SECURITY_POLICY
from tests.server.harness import serving

ROOT = Path(__file__).resolve().parents[2]
FILES = ROOT / "muxtrio" / "dashboard"
CONFIG = "api-keys: [static-client-key-01]\nusage: {dsn: ''}\n"


async def test_page_and_assets_need_no_key_and_carry_a_strict_csp() -> None:
    async with serving(load_config_text(CONFIG, "<test>")) as base, httpx2.AsyncClient() as client:
        for path, kind in (
            ("/dashboard", "text/html"),
            ("/dashboard/", "text/html"),
            ("/dashboard/dashboard.js", "text/javascript"),
            ("/dashboard/dashboard.css", "text/css"),
        ):
            response = await client.get(base + path)
            assert response.status_code == 200, path
            assert response.headers["content-type"].startswith(kind)
            assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY.decode()
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"
            assert response.content == (FILES / ASSETS[path.removeprefix("/dashboard")][0]).read_bytes()
        head = await client.head(base + "/dashboard")
        assert head.status_code == 200 and head.content == b""
        assert int(head.headers["content-length"]) == len((FILES / "index.html").read_bytes())


async def test_only_the_named_files_are_served() -> None:
    async with serving(load_config_text(CONFIG, "<test>")) as base, httpx2.AsyncClient() as client:
        for path in ("/dashboard/nope.js", "/dashboard/../pyproject.toml", "/dashboard/%2e%2e/muxtrio/config.py",
                     "/dashboard/dashboard.js/", "/dashboardx"):  # fmt: skip
            response = await client.get(base + path)
            assert response.status_code in (401, 404), path  # /dashboardx is not the dashboard: a keyed API path
            assert b"import " not in response.content
        posted = await client.post(base + "/dashboard", content=b"x")
        assert posted.status_code == 405
        assert posted.json()["error"]["message"].startswith("method POST not allowed")


def test_csp_allows_nothing_from_elsewhere_and_nothing_inline() -> None:
    policy = CONTENT_SECURITY_POLICY.decode()
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in policy and "*" not in policy and "http" not in policy


def test_files_fetch_nothing_from_the_internet_and_have_no_inline_code() -> None:
    html = (FILES / "index.html").read_text()
    assert re.findall(r"<script\b[^>]*>", html) == ['<script src="/dashboard/dashboard.js" defer>']
    assert re.search(r"<[^>]*\s(?:style|on[a-z]+)\s*=", html) is None  # no inline style or event handler
    assert "<style" not in html
    for name in ("index.html", "dashboard.js", "dashboard.css"):
        text = (FILES / name).read_text()
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"'`)]*", text))
        assert urls <= {"http://www.w3.org/2000/svg"}, (name, urls)  # a namespace name, never fetched
        assert "@import" not in text and "url(" not in text
    script = (FILES / "dashboard.js").read_text()
    for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                  "localStorage.setItem"):  # fmt: skip
        assert risky not in script, risky


def test_package_data_ships_every_dashboard_file() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["muxtrio"]
    shipped = {p.name for p in FILES.iterdir() if any(fnmatch.fnmatch(f"dashboard/{p.name}", pat) for pat in patterns)}
    assert shipped == {p.name for p in FILES.iterdir()} == {name for name, _ in ASSETS.values()}
