"""Spotting web pages where weights were expected, and following Google Drive's "download anyway" form."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlencode, urljoin

__all__ = ["HTML_TYPES", "drive_confirm_url", "looks_like_html"]

HTML_TYPES = ("text/html", "application/xhtml+xml")
_MARKUP_STARTS = (b"<!doctype", b"<html", b"<head", b"<body", b"<?xml", b"<!--")


def looks_like_html(prefix: bytes) -> bool:
    """True when the first bytes of a body are markup (a quota, login or error page), never weights."""
    return prefix[:1024].lstrip().lower().startswith(_MARKUP_STARTS)


class _DownloadForm(HTMLParser):
    """Collects the action and hidden fields of ``<form id="download-form">``."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("id") == "download-form" and a.get("method", "get").lower() == "get":
            self.action, self._inside = a.get("action", ""), True
        elif tag == "input" and self._inside and a.get("type") == "hidden" and a.get("name"):
            self.fields[a["name"]] = a.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._inside = False


def drive_confirm_url(page: str, base_url: str) -> str | None:
    """The URL Google Drive's virus-scan warning page submits to get the file, or None if ``page`` has no
    such form (a quota-exceeded or login page, which must be rejected)."""
    form = _DownloadForm()
    form.feed(page)
    if not form.action or not form.fields:
        return None
    return f"{urljoin(base_url, form.action)}?{urlencode(form.fields)}"
