"""Which URLs weights may come from: HTTPS anywhere, plain HTTP only to this machine (for tests)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from ..errors import UnsafeURLError

__all__ = ["check_url"]


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    """Return ``url`` if weights may be fetched from it, else raise ``UnsafeURLError`` saying why."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("https", "http") or (parts.scheme == "http" and host and not _is_loopback(host)):
        raise UnsafeURLError(f"{url!r} is refused: weights are fetched over https only (plain http only to localhost)")
    if not host:
        raise UnsafeURLError(f"{url!r} is not an absolute URL with a host")
    return url
