"""The user's own models by name: recorded in the user manifest (``user_manifest_path()``), merged over the shipped
one, so every front end finds them like a shipped model.

A model is added from a weights file (which stays where it is; its sha256 is recorded and checked on every use) or
from a URL (downloaded into the cache, checked against the sha256 the user gives, or, when the user trusts the
source, recorded with the hash it has). Nothing is recorded unless the file is a complete HAT checkpoint.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from filelock import FileLock

from .checkpoint import load_model
from .errors import CheckpointError, ManifestError, ModelNotFoundError, OptionError, UnverifiedError
from .files import atomic_write, require_regular_file
from .progress import CancelCheck, ProgressFn
from .rgb_mean import describe_rgb_mean, parse_rgb_mean
from .weights.api import WEIGHTS_FILE
from .weights.cache import STATE_DIR, Settings, locked, remember, sha256_file
from .weights.download import download
from .weights.manifest import (
    NAME_RE,
    SHA256_RE,
    ModelEntry,
    default_manifest_path,
    entry_from_item,
    load_manifest,
    user_manifest_path,
)
from .weights.urls import check_url

__all__ = ["add_model", "remove_model", "variant_name"]


def variant_name(embed_dim: int, layers: int, compress_ratio: int) -> str:
    """The official variant a configuration matches (``HAT-S``, ``HAT``, ``HAT-L``), else ``HAT (custom)``."""
    if embed_dim == 144 and layers == 6 and compress_ratio == 24:
        return "HAT-S"
    if embed_dim == 180 and compress_ratio == 3:
        return {6: "HAT", 12: "HAT-L"}.get(layers, "HAT (custom)")
    return "HAT (custom)"


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {"format": 1, "models": []}
    load_manifest(path)  # validates, naming every problem
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _write(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def _lock(path: Path) -> FileLock:
    path.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(path) + ".lock", timeout=30)


def _check_name(name: str, own: dict[str, Any]) -> None:
    if not NAME_RE.match(name):
        raise OptionError(
            f"model name {name!r}: use letters, digits, '.', '_' or '-' (starting with a letter or digit)"
        )
    if any(e.name.lower() == name.lower() for e in load_manifest(default_manifest_path()).entries):
        raise OptionError(f"the name {name} is taken by a model that ships with hat-plugin; choose another")
    if any(str(m.get("name", "")).lower() == name.lower() for m in own["models"]):
        raise OptionError(f"{name} is already one of your models; remove it first to add it again")


def _inspect(path: Path, mean: str) -> tuple[int, str]:
    """The scale and variant of a complete HAT checkpoint; ``CheckpointError`` for anything else."""
    model = load_model(path, rgb_mean=mean)
    cfg = model.config
    return cfg.upscale, variant_name(cfg.embed_dim, len(cfg.depths), cfg.compress_ratio)


def _from_url(
    url: str,
    name: str,
    sha256: str | None,
    trust_unverified: bool,
    progress: ProgressFn | None,
    cancel: CancelCheck,
    announce: Callable[[str], None] | None,
) -> tuple[Path, str]:
    check_url(url)
    if sha256 is None and not trust_unverified:
        raise UnverifiedError(
            f"{url}: no sha256 given, so the download cannot be verified; give the hash its publisher states, or "
            "choose to trust the source (the hash it has is then shown and recorded)",
            name,
        )
    suffix = ".safetensors" if urlsplit(url).path.lower().endswith(".safetensors") else ".pth"
    settings = Settings.from_env()
    dest = settings.cache_dir / f"{name}{suffix}"
    with locked(settings.cache_dir, dest.name, cancel):
        dest.unlink(missing_ok=True)
        if announce is not None:
            announce(url)
        digest = download([url], dest, sha256=sha256, progress=progress, cancel=cancel)
        remember(dest, digest, settings.cache_dir / STATE_DIR)
    return dest, digest


def add_model(
    source: str | os.PathLike[str],
    name: str,
    *,
    sha256: str | None = None,
    rgb_mean: str | None = None,
    trust_unverified: bool = False,
    progress: ProgressFn | None = None,
    cancel: CancelCheck = None,
    announce: Callable[[str], None] | None = None,
) -> ModelEntry:
    """Record the weights file or URL ``source`` as model ``name`` in the user manifest and return its entry.

    ``sha256`` is the hash the file must have; a URL without one needs ``trust_unverified`` (the entry then
    records the hash the download has). ``rgb_mean`` (``official``, ``0.5``, ``R,G,B``) is the mean the model was
    trained with. Raises ``OptionError``, ``CheckpointError`` (not HAT, not weights, wrong hash),
    ``UnverifiedError`` or ``DownloadError``; nothing is recorded (and no download kept) when it raises.
    """
    name = name.strip()
    expected = sha256.strip().lower() if sha256 else None
    if expected is not None and not SHA256_RE.match(expected):
        raise OptionError(f"sha256 {sha256!r} is not 64 hexadecimal digits")
    mean = describe_rgb_mean(parse_rgb_mean(rgb_mean)) if rgb_mean is not None else None
    manifest = user_manifest_path()
    text = os.fspath(source).strip()
    is_url = text.lower().startswith(("http://", "https://"))
    with _lock(manifest):
        own = _read(manifest)
        _check_name(name, own)
        if is_url:
            path, digest = _from_url(text, name, expected, trust_unverified, progress, cancel, announce)
        else:
            path = Path(text).expanduser().resolve()
            require_regular_file(path, WEIGHTS_FILE, CheckpointError)
            digest = sha256_file(path)
            if expected is not None and digest != expected:
                raise CheckpointError(f"{path}: sha256 {digest}, not the expected {expected}; not added")
            remember(path, digest, Settings.from_env().cache_dir / STATE_DIR)
        try:
            scale, variant = _inspect(path, mean or "official")
        except CheckpointError as exc:
            if is_url:
                path.unlink(missing_ok=True)
            raise CheckpointError(f"not added: {exc}") from None
        item: dict[str, Any] = {
            "name": name,
            "variant": variant,
            "scale": scale,
            "description": f"your model, added from {text if is_url else path.name}",
            "filename": path.name,
            "size": path.stat().st_size,
            "sha256": digest,
            "urls": [text] if is_url else [],
            "license": "unknown (your model)",
            "origin": "user",
            "source": f"added by you from {text}" + ("" if expected or not is_url else " (hash not verified)"),
        }
        if not is_url:
            item["path"] = str(path)
        if mean is not None:
            item["rgb_mean"] = mean
        own["models"].append(item)
        try:
            _write(manifest, own)
            load_manifest(manifest)
        except (ManifestError, OSError) as exc:
            raise ManifestError(f"cannot record {name} in {manifest}: {exc}") from None
    return entry_from_item(item)


def remove_model(name: str) -> ModelEntry:
    """Forget the user's model ``name`` (a downloaded copy in the cache is deleted; a file added from disk is
    left where it is). ``ModelNotFoundError`` when it is not one of the user's models."""
    manifest = user_manifest_path()
    with _lock(manifest):
        own = _read(manifest)
        found = [m for m in own["models"] if str(m.get("name", "")).lower() == name.strip().lower()]
        if not found:
            shipped = any(
                e.name.lower() == name.strip().lower() for e in load_manifest(default_manifest_path()).entries
            )
            why = "it ships with hat-plugin" if shipped else "no model of yours has that name"
            raise ModelNotFoundError(f"{name} is not one of your models ({why})")
        own["models"] = [m for m in own["models"] if m not in found]
        _write(manifest, own)
    entry = entry_from_item(found[0])
    if entry.path is None:
        (Settings.from_env().cache_dir / entry.filename).unlink(missing_ok=True)
    return entry
