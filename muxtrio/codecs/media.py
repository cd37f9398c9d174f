"""Images and files across formats: ``data:`` URLs and base64 payloads. Pure."""

from __future__ import annotations


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``data:image/png;base64,AAAA`` -> ``("image/png", "AAAA")``; None for any other URL."""
    if not url.startswith("data:"):
        return None
    header, sep, payload = url[5:].partition(",")
    if not sep or not header.endswith(";base64"):
        return None
    mime = header[: -len(";base64")] or "application/octet-stream"
    return mime, payload


def data_url(mime_type: str, data: str) -> str:
    return f"data:{mime_type};base64,{data}"
