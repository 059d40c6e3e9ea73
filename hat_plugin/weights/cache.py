"""The local weights cache: where it lives, the settings read from the environment, and which files in it
can be trusted (size + sha256, the hash remembered per file size and mtime so it is computed once)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import platformdirs
from filelock import FileLock, Timeout

from ..errors import DownloadError
from ..files import atomic_write, sha256_file
from ..options import env, env_flag
from ..progress import CancelCheck, raise_if_cancelled

__all__ = [
    "STATE_DIR",
    "Settings",
    "cache_dir",
    "file_matches",
    "is_offline",
    "locked",
    "partial_path",
    "remember",
    "remembered",
    "sha256_file",
]

ENV_CACHE = "HAT_PLUGIN_CACHE"
ENV_OFFLINE = "HAT_PLUGIN_OFFLINE"
ENV_MIRROR = "HAT_PLUGIN_MIRROR"
STATE_DIR = ".state"
"""Sub-folder of the cache for bookkeeping only (locks, remembered hashes); never holds weights."""

_MEMO_SIZE = 64
_memo: dict[str, tuple[tuple[int, int, int], str]] = {}
"""Hashes verified in this process, by path (a few recent ones; the on-disk memo holds the rest)."""


def _memorise(path: Path, ident: tuple[int, int, int], digest: str) -> None:
    _memo.pop(str(path), None)
    _memo[str(path)] = (ident, digest)
    while len(_memo) > _MEMO_SIZE:
        _memo.pop(next(iter(_memo)))


@dataclass(frozen=True)
class Settings:
    """Cache folder, offline switch and mirror, as set by the environment when the call is made."""

    cache_dir: Path
    offline: bool
    mirror: str | None

    @classmethod
    def from_env(cls) -> Settings:
        """Read ``HAT_PLUGIN_CACHE``, ``HAT_PLUGIN_OFFLINE`` and ``HAT_PLUGIN_MIRROR``."""
        folder = env(ENV_CACHE)
        return cls(
            cache_dir=Path(folder).expanduser() if folder else Path(platformdirs.user_cache_dir("hat-plugin")),
            offline=env_flag(ENV_OFFLINE),
            mirror=env(ENV_MIRROR) or None,
        )

    def mirror_url(self, filename: str) -> str | None:
        """Where the mirror keeps ``filename`` (mirrors hold the official file names), if one is set; the caller
        checks it with ``urls.check_url`` like any other source."""
        return f"{self.mirror.rstrip('/')}/{filename}" if self.mirror else None


def cache_dir() -> Path:
    """The folder downloaded weights are kept in (it may not exist yet)."""
    return Settings.from_env().cache_dir


def is_offline() -> bool:
    """True when ``HAT_PLUGIN_OFFLINE`` is set: nothing is downloaded, only bundled and cached models work."""
    return Settings.from_env().offline


def partial_path(dest: Path) -> Path:
    """The temporary file a download of ``dest`` streams into, beside it so the final rename is atomic."""
    return dest.with_name(dest.name + ".part")


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _memo_file(path: Path, memo_dir: Path) -> Path:
    return memo_dir / f"{path.name}.sha256.json"


def _recall(path: Path, ident: tuple[int, int, int], memo_dir: Path | None) -> str | None:
    known = _memo.get(str(path))
    if known and known[0] == ident:
        return known[1]
    if memo_dir is None:
        return None
    try:
        record = json.loads(_memo_file(path, memo_dir).read_text(encoding="utf-8"))
        if tuple(record["identity"]) == ident:
            digest = str(record["sha256"])
            _memorise(path, ident, digest)
            return digest
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def remember(path: Path, sha256: str, memo_dir: Path | None) -> None:
    """Record that ``path`` as it is now (size, mtime, inode) hashes to ``sha256``; best effort on disk."""
    ident = _identity(path.stat())
    _memorise(path, ident, sha256)
    if memo_dir is None:
        return
    with contextlib.suppress(OSError):  # best effort: the hash is only recomputed next time
        atomic_write(_memo_file(path, memo_dir), json.dumps({"identity": list(ident), "sha256": sha256}).encode())


def file_matches(path: Path, sha256: str, size: int | None, memo_dir: Path | None) -> bool:
    """True when ``path`` is a regular file of the expected size and sha256 (hashing only if it changed)."""
    try:
        st = path.stat()
    except OSError:
        return False
    if not path.is_file() or (size is not None and st.st_size != size):
        return False
    ident = _identity(st)
    actual = _recall(path, ident, memo_dir)
    if actual is None:
        actual = sha256_file(path)
        if _identity(path.stat()) == ident:
            remember(path, actual, memo_dir)
    return actual == sha256


def remembered(path: Path, memo_dir: Path | None) -> str | None:
    """The sha256 hashed for ``path`` before, if the file has not changed since (size and mtime); else None."""
    try:
        st = path.stat()
    except OSError:
        return None
    return _recall(path, _identity(st), memo_dir) if path.is_file() else None


@contextlib.contextmanager
def locked(folder: Path, filename: str, cancel: CancelCheck = None) -> Iterator[None]:
    """Hold the cross-process lock for one cache entry; waiting for it can be cancelled."""
    state = folder / STATE_DIR
    try:
        state.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(
            f"cannot use the weights cache {folder}: {exc.strerror or exc}; set {ENV_CACHE} to a writable folder"
        ) from None
    lock = FileLock(state / f"{filename}.lock")
    while True:
        raise_if_cancelled(cancel, f"waiting for another download of {filename}")
        try:
            lock.acquire(timeout=0.2)
            break
        except Timeout:
            continue
    try:
        yield
    finally:
        lock.release()
