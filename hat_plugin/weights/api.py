"""The weights API the engine and front ends use: list models, look one up, and get its verified file.

``resolve`` is the one rule that turns what a user typed (a manifest name or a weights file) into a local file;
``model_label`` the one short name for messages and output suffixes; ``default_model`` the one default.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..errors import (
    CheckpointError,
    DownloadError,
    HATError,
    ModelNotFoundError,
    OptionError,
    UnsafeURLError,
    UnverifiedError,
)
from ..files import require_regular_file
from ..progress import CancelCheck, ProgressFn
from .cache import STATE_DIR, Settings, file_matches, locked, remember, remembered
from .download import download
from .manifest import ModelEntry, default_manifest
from .urls import check_url

__all__ = [
    "BUNDLED_DIR",
    "WEIGHTS_SUFFIXES",
    "default_model",
    "entry_for_file",
    "fetch",
    "get_entry",
    "is_cached",
    "list_models",
    "local_path",
    "model_label",
    "resolve",
]

WEIGHTS_SUFFIXES = (".pth", ".pt", ".ckpt", ".safetensors")
"""File extensions read as weights files."""
WEIGHTS_FILE = "a weights file (.pth or .safetensors)"
"""What a weights path must be, for messages."""

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "bundled"
"""Where models shipped inside the package live (entries marked ``"bundled": true``)."""


def list_models() -> list[ModelEntry]:
    """Every model of the manifest, in manifest order."""
    return list(default_manifest().entries)


def get_entry(name: str) -> ModelEntry:
    """The entry for ``name`` (case ignored; the file name works too); ``ModelNotFoundError`` says "did you mean"."""
    return default_manifest().get(name)


def local_path(entry: ModelEntry) -> Path:
    """Where ``entry``'s file is or will be: in the package for bundled models, where the user keeps it for a
    model added from a file, else in the cache."""
    if entry.bundled:
        return BUNDLED_DIR / entry.filename
    if entry.path is not None:
        return Path(entry.path)
    return Settings.from_env().cache_dir / entry.filename


def entry_for_file(path: str | os.PathLike[str]) -> ModelEntry | None:
    """The manifest entry whose local file ``path`` is (bundled, cached or added by the user; the user's first),
    else None. Compares paths only: what the file holds is checked when it is fetched."""
    try:
        target = Path(path).resolve()
        entries = list_models()
    except (OSError, HATError):
        return None
    for entry in reversed(entries):  # the user's entries (merged last) first: theirs is the mean they chose
        try:
            if local_path(entry).resolve() == target:
                return entry
        except OSError:
            continue
    return None


def _memo_dir(entry: ModelEntry, path: Path) -> Path | None:
    if entry.bundled:
        return None
    return Settings.from_env().cache_dir / STATE_DIR if entry.path is not None else path.parent / STATE_DIR


def _matches(entry: ModelEntry, path: Path) -> bool:
    memo = _memo_dir(entry, path)
    if entry.sha256 is None:  # unattested: only a file this program downloaded (and hashed) and nobody changed
        return remembered(path, memo) is not None
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


def _added(entry: ModelEntry) -> Path:
    """The file of a model the user added from a file, checked against the sha256 recorded when it was added."""
    path = local_path(entry)
    if not path.is_file():
        raise ModelNotFoundError(f"{entry.name}: its file {path} is gone (moved or deleted?); add the model again")
    if not _matches(entry, path):
        raise CheckpointError(
            f"{entry.name}: {path} changed since the model was added (not the recorded sha256); add it again"
        )
    return path


def fetch(
    name: str,
    progress: ProgressFn | None = None,
    cancel: CancelCheck = None,
    announce: Callable[[ModelEntry], None] | None = None,
    *,
    trust_unverified: bool = False,
) -> Path:
    """The verified local file of model ``name``, downloaded into the cache first if needed.

    ``progress(done_bytes, total_bytes_or_None)`` is called as bytes arrive; ``cancel`` (an Event or a callable)
    stops the download with ``Cancelled``, keeping the partial file for the next call to resume. ``announce`` is
    called once just before bytes are requested from the network (never when cached or offline). A model whose
    hash no public record states raises ``UnverifiedError`` unless ``trust_unverified`` (the caller then shows
    the hash the file has: ``cache.sha256_file``).
    """
    entry = get_entry(name)
    if entry.bundled:
        return _bundled(entry)
    if entry.path is not None:
        return _added(entry)
    settings = Settings.from_env()
    dest = settings.cache_dir / entry.filename
    if _matches(entry, dest):
        return dest
    if settings.offline:
        state = f"it is not in the cache ({dest})"
        if dest.exists() and entry.sha256 is None:  # nothing to check it against: left alone
            state = f"the cached {dest} was not downloaded by hat-plugin (hash unattested: add it as your own model)"
        elif dest.exists():
            with locked(settings.cache_dir, entry.filename, cancel):
                if not _matches(entry, dest):
                    aside = _move_aside(dest)
                    state = f"the cached {dest} is not the expected file (wrong sha256 or size); moved to {aside}"
        raise ModelNotFoundError(
            f"{entry.name}: {state}, and HAT_PLUGIN_OFFLINE is set, so nothing is downloaded. "
            f"Unset HAT_PLUGIN_OFFLINE, or copy {entry.filename}{_hash_note(entry)} into {settings.cache_dir}."
        )
    if entry.sha256 is None and not entry.urls:
        raise ModelNotFoundError(
            f"{entry.name}: no public record states a download URL or sha256 for its file; get it from its author "
            f"({entry.source or entry.description}) and add it as your own model"
        )
    if entry.sha256 is None and not trust_unverified:
        raise UnverifiedError(
            f"{entry.name}: hash unattested: no public record states the sha256 of its file, so it is downloaded "
            "only if you choose to trust the source",
            entry.name,
        )
    sources = _sources(entry, settings)
    with locked(settings.cache_dir, entry.filename, cancel):
        if _matches(entry, dest):
            return dest
        dest.unlink(missing_ok=True)
        if announce is not None:
            announce(entry)
        got = download(sources, dest, sha256=entry.sha256, size=entry.size, progress=progress, cancel=cancel)
        remember(dest, got, settings.cache_dir / STATE_DIR)
    return dest


def _hash_note(entry: ModelEntry) -> str:
    return f" (sha256 {entry.sha256})" if entry.sha256 else ""


def _move_aside(path: Path) -> Path:
    """Rename a cached file that failed verification to ``NAME.damaged`` (replacing an older one) rather than
    delete it: offline it cannot be replaced, and it may be a user's own copy. Returns the new name."""
    aside = path.with_name(path.name + ".damaged")
    try:
        os.replace(path, aside)
    except OSError as exc:
        raise DownloadError(f"cannot move the damaged {path} aside to {aside}: {exc.strerror or exc}") from None
    return aside


def _looks_like_path(text: str) -> bool:
    return text.lower().endswith(WEIGHTS_SUFFIXES) or "/" in text or os.sep in text or text.startswith("~")


def resolve(
    spec: str | os.PathLike[str],
    *,
    progress: ProgressFn | None = None,
    cancel: CancelCheck = None,
    announce: Callable[[ModelEntry], None] | None = None,
    trust_unverified: bool = False,
) -> Path:
    """The local weights file for ``spec``: a path to a weights file as is, a manifest name through the cache
    (downloaded and verified if needed, see ``fetch``).

    Raises ``OptionError`` for an empty spec, ``CheckpointError`` for a path that is missing or not a regular file,
    ``ModelNotFoundError`` for an unknown name (with "did you mean"), ``DownloadError`` when fetching fails.
    """
    if not isinstance(spec, str | os.PathLike):
        raise OptionError(f"a model is a name or a weights file path, not {type(spec).__name__}")
    text = os.fspath(spec).strip()
    if not text:
        raise OptionError("no model given: name one with {model} or give a weights file", option="model")
    path = Path(text).expanduser()
    if path.exists():
        require_regular_file(path, WEIGHTS_FILE, CheckpointError)
        return path
    if isinstance(spec, os.PathLike) or _looks_like_path(text):
        raise CheckpointError(f"{path}: weights file not found")
    return fetch(text, progress=progress, cancel=cancel, announce=announce, trust_unverified=trust_unverified)


def model_label(spec: str | os.PathLike[str]) -> str:
    """The short name of a model for messages and the ``{model}`` of output suffixes: the manifest name, or the
    weights file's name without its extension."""
    text = os.fspath(spec).strip()
    if isinstance(spec, os.PathLike) or _looks_like_path(text) or Path(text).is_file():
        name = Path(text).name
        for suffix in WEIGHTS_SUFFIXES:
            name = name.removesuffix(suffix)
        return name
    try:
        return get_entry(text).name
    except ModelNotFoundError:
        return text


_VARIANT_RANK = {"HAT-L": 3, "HAT": 2, "HAT-S": 1}
DEFAULT_SCALE = 4


def default_model(scale: int | None = None) -> tuple[ModelEntry, str]:
    """The model a front end uses when the user names none, and why (a sentence to show).

    The best model available without the network (bundled, or verified in the cache) for ``scale`` (default x4);
    when none is, the recommended download for that scale. GAN, community and the user's own models are chosen
    only when asked for by name.
    """
    wanted = scale or DEFAULT_SCALE
    entries = [
        e for e in list_models() if e.scale == wanted and "GAN" not in e.name and e.origin in ("official", "project")
    ]
    if not entries:
        raise ModelNotFoundError(f"no model in the manifest upscales x{wanted}; choose a model by name")

    def rank(entry: ModelEntry) -> tuple[int, bool]:
        return (_VARIANT_RANK.get(entry.variant, 0), "pretrain" not in entry.name.lower())

    ready = [e for e in entries if is_cached(e.name)]
    if ready:
        best = max(ready, key=rank)
        why = "bundled, works offline" if best.bundled else "already downloaded"
        return best, f"{best.name} ({why}; the best x{wanted} model available without downloading)"
    best = max((e for e in entries if not e.bundled), key=rank, default=entries[0])
    return best, f"{best.name} (the recommended x{wanted} model; it is downloaded on first use)"
