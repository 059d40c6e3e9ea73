"""The weights API the engine and front ends use: list models, look one up, and get its verified file."""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError, DownloadError, ModelNotFoundError
from ..progress import CancelCheck, ProgressFn
from .cache import STATE_DIR, Settings, file_matches, locked, remember
from .download import download
from .manifest import ModelEntry, default_manifest
from .urls import UnsafeURLError, check_url

__all__ = ["BUNDLED_DIR", "fetch", "get_entry", "is_cached", "list_models", "local_path"]

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "bundled"
"""Where models shipped inside the package live (entries marked ``"bundled": true``)."""


def list_models() -> list[ModelEntry]:
    """Every model of the manifest, in manifest order."""
    return list(default_manifest().entries)


def get_entry(name: str) -> ModelEntry:
    """The entry for ``name`` (case ignored; the file name works too); ``ModelNotFoundError`` says "did you mean"."""
    return default_manifest().get(name)


def local_path(entry: ModelEntry) -> Path:
    """Where ``entry``'s file is or will be: in the package for bundled models, else in the cache."""
    return BUNDLED_DIR / entry.filename if entry.bundled else Settings.from_env().cache_dir / entry.filename


def _matches(entry: ModelEntry, path: Path) -> bool:
    memo = None if entry.bundled else path.parent / STATE_DIR
    return file_matches(path, entry.sha256, entry.size, memo)


def is_cached(name: str) -> bool:
    """True when the model's file is on this machine and verified, so ``fetch`` will not download."""
    entry = get_entry(name)
    return _matches(entry, local_path(entry))


def _bundled(entry: ModelEntry) -> Path:
    path = local_path(entry)
    if not path.is_file():
        raise ModelNotFoundError(
            f"the bundled model {entry.name} is missing from this installation ({path}); reinstall hat-plugin"
        )
    if not _matches(entry, path):
        raise CheckpointError(
            f"the bundled model file {path} is damaged (not the manifest's sha256); reinstall hat-plugin"
        )
    return path


def _sources(entry: ModelEntry, settings: Settings) -> list[str]:
    mirror = settings.mirror_url(entry.filename)
    if mirror is None:
        return list(entry.urls)
    try:
        check_url(mirror)
    except UnsafeURLError as exc:
        raise DownloadError(f"HAT_PLUGIN_MIRROR cannot be used: {exc}") from None
    return [mirror, *entry.urls]


def fetch(name: str, progress: ProgressFn | None = None, cancel: CancelCheck = None) -> Path:
    """The verified local file of model ``name``, downloaded into the cache first if needed.

    ``progress(done_bytes, total_bytes_or_None)`` is called as bytes arrive; ``cancel`` (an Event or a callable)
    stops the download with ``Cancelled``, keeping the partial file for the next call to resume.
    """
    entry = get_entry(name)
    if entry.bundled:
        return _bundled(entry)
    settings = Settings.from_env()
    dest = settings.cache_dir / entry.filename
    if _matches(entry, dest):
        return dest
    if settings.offline:
        damaged = dest.exists()
        if damaged:
            with locked(settings.cache_dir, entry.filename, cancel):
                if not _matches(entry, dest):
                    dest.unlink(missing_ok=True)
        state = "its cached copy was damaged and has been removed" if damaged else "it is not in the cache"
        raise ModelNotFoundError(
            f"{entry.name}: {state} ({dest}), and HAT_PLUGIN_OFFLINE is set, so nothing is downloaded. "
            f"Unset HAT_PLUGIN_OFFLINE, or copy {entry.filename} (sha256 {entry.sha256}) into {settings.cache_dir}."
        )
    sources = _sources(entry, settings)
    with locked(settings.cache_dir, entry.filename, cancel):
        if _matches(entry, dest):
            return dest
        dest.unlink(missing_ok=True)
        download(sources, dest, sha256=entry.sha256, size=entry.size, progress=progress, cancel=cancel)
        remember(dest, entry.sha256, settings.cache_dir / STATE_DIR)
    return dest
