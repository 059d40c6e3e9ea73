"""Fetch one file from a list of URLs: stream it into ``NAME.part`` beside the destination, resume a broken
transfer with an HTTP Range request, check size and sha256, and only then rename it into place."""

from __future__ import annotations

import hashlib
import http.client
import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urljoin

import requests
import urllib3

from ..errors import DownloadError, UnsafeURLError
from ..files import sha256_digest, sha256_file
from ..progress import CancelCheck, ProgressFn, raise_if_cancelled
from .cache import partial_path
from .htmlpage import HTML_TYPES, drive_confirm_url, looks_like_html
from .urls import check_url

__all__ = ["CONNECT_TIMEOUT", "READ_TIMEOUT", "download"]

CONNECT_TIMEOUT = 15.0
READ_TIMEOUT = 30.0
CHUNK = 64 * 1024
MAX_RESUMES = 10
MAX_UNKNOWN_SIZE = 4 << 30
"""Bytes accepted when neither the manifest nor the server says how big the file is."""
MAX_PAGE = 1 << 20
_PEEK = 64 * 1024
USER_AGENT = "hat-plugin/0.1 (+weights download)"

_NETWORK_ERRORS = (
    requests.RequestException,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", re.IGNORECASE)


class _SourceFailed(Exception):
    """This URL cannot give the right file; the message says why."""


class _Broken(Exception):
    """The connection broke or stalled mid-transfer; resuming may help."""


class _Restart(Exception):
    """The partial file cannot be continued from this server; start again from byte 0."""


class _Session(requests.Session):
    """A requests session that refuses redirects to URLs weights must not come from."""

    def get_redirect_target(self, resp: requests.Response) -> str | None:
        target = super().get_redirect_target(resp)
        if target:
            check_url(urljoin(resp.url, target))
        return target


def _content_range(value: str | None) -> tuple[int, int | None] | None:
    match = _CONTENT_RANGE.match(value or "")
    if not match:
        return None
    return int(match[1]), None if match[3] == "*" else int(match[3])


def _content_length(resp: requests.Response) -> int | None:
    if resp.headers.get("Content-Encoding", "identity").lower() != "identity":
        return None
    try:
        return int(resp.headers["Content-Length"])
    except (KeyError, ValueError):
        return None


def _chunks(resp: requests.Response) -> Iterator[bytes]:
    """The body as it arrives: ``read1`` hands over every byte received before a connection breaks."""
    read1 = getattr(resp.raw, "read1", None)
    if read1 is None:  # urllib3 < 2.3
        yield from resp.iter_content(CHUNK)
        return
    while chunk := read1(CHUNK):
        yield chunk


class _Transfer:
    """Moves one URL's bytes into the partial file, resuming while each attempt makes progress."""

    def __init__(
        self,
        session: requests.Session,
        part: Path,
        sha256: str | None,
        size: int | None,
        progress: ProgressFn | None,
        cancel: CancelCheck,
        timeout: tuple[float, float],
    ) -> None:
        self.session, self.part, self.sha256, self.size = session, part, sha256, size
        self.progress, self.cancel, self.timeout = progress, cancel, timeout
        self.what = f"download of {part.name.removesuffix('.part')}"
        self.digest = ""

    def _have(self) -> int:
        try:
            return self.part.stat().st_size
        except FileNotFoundError:
            return 0

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, requests.ConnectTimeout):
            return f"connecting timed out after {self.timeout[0]:g} s"
        if isinstance(exc, requests.ReadTimeout) or "timed out" in str(exc).lower():
            return f"no data for {self.timeout[1]:g} s (read timeout)"
        if isinstance(exc, requests.exceptions.ChunkedEncodingError | urllib3.exceptions.ProtocolError):
            return "the server closed the connection early"
        if isinstance(exc, requests.ConnectionError):
            reason = getattr(exc.args[0], "reason", None) if exc.args else None
            return f"cannot connect ({str(reason or exc)[:200]})"
        return f"{type(exc).__name__}: {str(exc)[:200]}"

    def run(self, url: str) -> None:
        """Leave the verified file at ``self.part`` (its sha256 in ``self.digest``) or raise ``_SourceFailed``.
        With no expected sha256 any complete file that is not a web page is taken."""
        try:
            check_url(url)
        except UnsafeURLError as exc:
            raise _SourceFailed(str(exc)) from None
        pieced = self._have() > 0  # bytes kept from an earlier run or another source come first
        clean_retry = True
        resumes = 0
        while True:
            before = self._have()
            try:
                digest = self._attempt(url, allow_form=True)
            except _Restart:
                self.part.unlink(missing_ok=True)
                pieced = False
                continue
            except _Broken as exc:
                if self._have() > before and resumes < MAX_RESUMES:
                    resumes += 1
                    pieced = True
                    continue
                raise _SourceFailed(str(exc)) from None
            if digest == self.sha256 or (self.sha256 is None and not self._is_page()):
                self.digest = digest
                return
            if pieced and clean_retry and self.sha256 is not None:
                # A file joined from several transfers may be bad at a seam: fetch it whole once more.
                self.part.unlink(missing_ok=True)
                pieced = clean_retry = False
                continue
            if self._is_page():
                raise _SourceFailed("the server sent a web page instead of the weights")
            raise _SourceFailed(f"wrong content: sha256 {digest} instead of {self.sha256}")

    def _is_page(self) -> bool:
        with open(self.part, "rb") as f:
            return looks_like_html(f.read(1024))

    def _attempt(self, url: str, allow_form: bool) -> str:
        offset = self._have()
        if self.size is not None and offset >= self.size:
            if offset == self.size:
                return sha256_file(self.part)
            self.part.unlink()
            offset = 0
        raise_if_cancelled(self.cancel, self.what)
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            resp = self.session.get(url, headers=headers, stream=True, timeout=self.timeout)
        except UnsafeURLError as exc:
            raise _SourceFailed(f"redirect refused: {exc}") from None
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise _Broken(self._describe(exc)) from None
        except requests.RequestException as exc:
            raise _SourceFailed(self._describe(exc)) from None
        with resp:
            return self._receive(resp, offset, allow_form)

    def _receive(self, resp: requests.Response, offset: int, allow_form: bool) -> str:
        if resp.status_code == 416 and offset:
            raise _Restart
        if resp.status_code not in (200, 206):
            raise _SourceFailed(f"HTTP {resp.status_code} {resp.reason or ''}".rstrip())
        if resp.status_code == 206:
            parsed = _content_range(resp.headers.get("Content-Range"))
            if parsed is None or parsed[0] != offset:
                if offset:
                    raise _Restart
                raise _SourceFailed("the server sent a byte range that was not asked for")
            total = parsed[1]
        else:
            offset = 0  # a server that ignores Range sends the whole file: start over cleanly
            total = _content_length(resp)
        content_type = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type in HTML_TYPES:
            return self._web_page(resp, offset, allow_form)
        if total == 0:
            raise _SourceFailed("the server sent an empty file")
        if self.size is not None and total is not None and total != self.size:
            if total <= _PEEK and looks_like_html(self._peek(resp)):
                raise _SourceFailed("the server sent a web page instead of the weights")
            raise _SourceFailed(f"the server offers {total:,} bytes but the file has {self.size:,}")
        return self._stream(resp, offset, self.size if self.size is not None else total)

    def _read_page(self, resp: requests.Response) -> bytes:
        try:
            return resp.raw.read(MAX_PAGE, decode_content=True)
        except _NETWORK_ERRORS as exc:
            raise _Broken(self._describe(exc)) from None

    def _peek(self, resp: requests.Response) -> bytes:
        try:
            return self._read_page(resp)
        except _Broken:
            return b""

    def _web_page(self, resp: requests.Response, offset: int, allow_form: bool) -> str:
        if offset:
            raise _Restart
        page = self._read_page(resp).decode("utf-8", "replace")
        confirm = drive_confirm_url(page, resp.url) if allow_form else None
        if confirm is None:
            raise _SourceFailed("the server sent a web page instead of the weights (quota, login or error page?)")
        try:
            check_url(confirm)
        except UnsafeURLError as exc:
            raise _SourceFailed(f"download form refused: {exc}") from None
        return self._attempt(confirm, allow_form=False)

    def _stream(self, resp: requests.Response, offset: int, expected: int | None) -> str:
        limit = expected if expected is not None else MAX_UNKNOWN_SIZE
        digest = sha256_digest(self.part) if offset else hashlib.sha256()
        done = offset
        chunks = _chunks(resp)
        with open(self.part, "ab" if offset else "wb") as f:
            while True:
                raise_if_cancelled(self.cancel, self.what)
                try:
                    chunk = next(chunks, None)
                except _NETWORK_ERRORS as exc:
                    raise _Broken(f"the connection broke after {done:,} bytes: {self._describe(exc)}") from None
                if chunk is None:
                    break
                if done == 0 and looks_like_html(chunk):
                    raise _SourceFailed("the server sent a web page instead of the weights")
                if done + len(chunk) > limit:
                    raise _SourceFailed(f"the server sent more than the {limit:,} bytes expected")
                f.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if self.progress is not None:
                    self.progress(done, expected)
            f.flush()
            os.fsync(f.fileno())
        if done == 0:
            raise _SourceFailed("the server sent an empty file")
        if expected is not None and done < expected:
            raise _Broken(f"the connection closed after {done:,} of {expected:,} bytes")
        return digest.hexdigest()


def download(
    urls: Sequence[str],
    dest: Path,
    *,
    sha256: str | None,
    size: int | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelCheck = None,
    timeout: tuple[float, float] = (CONNECT_TIMEOUT, READ_TIMEOUT),
) -> str:
    """Put the file with this sha256 (and size, when known) at ``dest``, trying ``urls`` in order; returns the
    file's sha256. ``sha256=None`` (a hash no record states, trusted by the user) takes any complete file that is
    not a web page.

    Raises ``DownloadError`` listing every URL tried and why it failed, or ``Cancelled`` (the partial file
    is then kept so the next call resumes). ``dest`` never holds anything but the verified file.
    """
    part = partial_path(dest)
    tried: list[str] = []
    with _Session() as session:
        session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
        transfer = _Transfer(session, part, sha256, size, progress, cancel, timeout)
        for url in urls:
            try:
                transfer.run(url)
            except _SourceFailed as exc:
                tried.append(f"  {len(tried) + 1}. {url}\n     -> {exc}")
                part.unlink(missing_ok=True)
                continue
            except OSError as exc:
                part.unlink(missing_ok=True)
                raise DownloadError(f"cannot write {part}: {exc.strerror or exc}") from exc
            os.replace(part, dest)
            return transfer.digest
    expected = f" (sha256 {sha256[:16]}...)" if sha256 else " (hash unattested)"
    raise DownloadError(
        f"could not download {dest.name}{expected}:\n"
        + ("\n".join(tried) or "  no URL to try")
        + f"\nCheck the network (proxies are read from HTTPS_PROXY / HTTP_PROXY), set HAT_PLUGIN_MIRROR to a "
        f"server that holds {dest.name}, or save the file yourself as {dest} (it is verified before use)."
    )
