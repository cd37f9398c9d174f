"""The operator dashboard's static files, served at ``/dashboard`` (see ``docs/dashboard.md``).

Role: answer ``GET``/``HEAD`` for the page and its two assets, which ship inside the package
(``muxtrio/dashboard/``). The page itself is a client of the management API; it holds no data, so these routes need
no key (the page asks for the management key and sends it only to ``/v1/management``).

Invariants:
- Only the files named in :data:`ASSETS` are served: no path from the request reaches the filesystem.
- Every answer carries a strict Content-Security-Policy (``default-src 'self'``, no inline script or style, no
  framing), ``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: no-referrer``, so nothing the page shows (a
  provider name, an error text, a config value) can run as code, and nothing is fetched from another origin.
- Files are read once, on first use, and kept as bytes.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from muxtrio.errors import ClientError, ErrorKind
from muxtrio.server.http import Send, send_whole

PREFIX = "/dashboard"

ASSETS: dict[str, tuple[str, bytes]] = {
    "": ("index.html", b"text/html; charset=utf-8"),
    "/": ("index.html", b"text/html; charset=utf-8"),
    "/index.html": ("index.html", b"text/html; charset=utf-8"),
    "/dashboard.js": ("dashboard.js", b"text/javascript; charset=utf-8"),
    "/dashboard.css": ("dashboard.css", b"text/css; charset=utf-8"),
}
"""Request path below :data:`PREFIX` → (file in ``muxtrio/dashboard``, content type)."""

CONTENT_SECURITY_POLICY = (
    b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    b"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-cache"),
)


def is_dashboard(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


@cache
def _read(name: str) -> bytes:
    return resources.files("muxtrio").joinpath("dashboard", name).read_bytes()


async def serve(method: str, path: str, send: Send) -> None:
    """Answer a request whose path :func:`is_dashboard`; unknown files are a 404, other methods a 405."""
    asset = ASSETS.get(path[len(PREFIX) :])
    if asset is None:
        raise ClientError(ErrorKind.NOT_FOUND, f"no route for {method} {path}")
    if method not in ("GET", "HEAD"):
        raise ClientError(ErrorKind.METHOD_NOT_ALLOWED, f"method {method} not allowed on {path}; use GET")
    name, content_type = asset
    await send_whole(send, 200, _read(name), content_type, extra=SECURITY_HEADERS)
