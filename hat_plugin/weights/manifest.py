"""The weights manifest: one ``ModelEntry`` per known model, read from JSON and validated before use.

The models in use are the shipped manifest (or ``HAT_PLUGIN_MANIFEST``) with the user's own models
(``user_manifest_path()``, written by ``hat-upscale models add``) merged over it.
"""

from __future__ import annotations

import difflib
import functools
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from ..errors import HATError, ManifestError, UnknownModelError, UnsafeURLError
from ..options import env
from ..rgb_mean import parse_rgb_mean
from .urls import check_url

__all__ = [
    "Manifest",
    "ManifestError",
    "ModelEntry",
    "default_manifest",
    "default_manifest_path",
    "entry_from_item",
    "load_manifest",
    "user_manifest_path",
    "validate_manifest",
]

FORMAT = 1
PACKAGE_MANIFEST = Path(__file__).resolve().parent.parent / "weights_manifest.json"
"""The copy shipped inside the package; the repository root holds the identical canonical file."""

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.(pth|safetensors)$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_REQUIRED = ("name", "variant", "scale", "description", "filename", "sha256", "urls", "license")
_OPTIONAL = ("size", "bundled", "source", "origin", "rgb_mean", "path")
_MAX_SOURCE = 2000
ORIGINS = ("official", "community", "project", "user")
"""Who made a model: the HAT authors, the community (OpenModelDB and others), this project (bundled), the user."""


@dataclass(frozen=True)
class ModelEntry:
    """One model: what it is, the file it lives in, how to check it and where to get it."""

    name: str
    variant: str
    scale: int
    description: str
    filename: str
    size: int | None
    sha256: str | None
    """None: no public record states the hash ("hash unattested"); fetched only when the user trusts it."""
    urls: tuple[str, ...]
    license: str
    bundled: bool = False
    source: str | None = None
    """Where the sha256 and size were confirmed (public records), for people checking the manifest."""
    origin: str = "official"
    rgb_mean: str | None = None
    """The RGB mean the model was trained with (``official``, ``0.5`` or ``R,G,B``); None: the official one."""
    path: str | None = None
    """A user's model added from a file: where that file is (it stays there)."""

    @property
    def attested(self) -> bool:
        """Whether a public record (or the user) states the file's sha256, so downloads are verified."""
        return self.sha256 is not None


def _valid_mean(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parse_rgb_mean(value)
    except HATError:
        return False
    return True


def _entry_problems(item: Any, label: str) -> list[str]:
    if not isinstance(item, dict):
        return [f"{label}: must be an object"]
    problems = [f"{label}: missing {key!r}" for key in _REQUIRED if key not in item]
    problems += [f"{label}: unknown key {key!r}" for key in item if key not in _REQUIRED + _OPTIONAL]
    bundled = item.get("bundled", False)
    origin = item.get("origin", "project" if bundled is True else "official")
    if not isinstance(bundled, bool):
        problems.append(f"{label}: 'bundled' must be true or false")
    if not (isinstance(item.get("name"), str) and NAME_RE.match(item["name"])):
        problems.append(f"{label}: 'name' must be letters, digits, '.', '_' or '-'")
    for key in ("variant", "description", "license"):
        value = item.get(key)
        if not (isinstance(value, str) and value.strip() and "\n" not in value):
            problems.append(f"{label}: {key!r} must be a non-empty single line")
    source = item.get("source")
    if source is not None and not (
        isinstance(source, str) and source.strip() and "\n" not in source and len(source) <= _MAX_SOURCE
    ):
        problems.append(f"{label}: 'source' must be a non-empty single line of at most {_MAX_SOURCE} characters")
    scale = item.get("scale")
    if not (type(scale) is int and 1 <= scale <= 16):
        problems.append(f"{label}: 'scale' must be an integer from 1 to 16")
    if not (isinstance(item.get("filename"), str) and _FILENAME.match(item["filename"])):
        problems.append(f"{label}: 'filename' must be a plain .pth or .safetensors file name")
    if origin not in ORIGINS or (origin == "project") != (bundled is True):
        problems.append(f"{label}: 'origin' must be one of {', '.join(ORIGINS)} ('project' exactly when bundled)")
    mean = item.get("rgb_mean")
    if mean is not None and not _valid_mean(mean):
        problems.append(f"{label}: 'rgb_mean' must be 'official', one number or 'R,G,B' from 0 to 1")
    path = item.get("path")
    if path is not None and not (origin == "user" and isinstance(path, str) and Path(path).is_absolute()):
        problems.append(f"{label}: 'path' is an absolute file path, for models the user added only")
    size = item.get("size")
    if size is not None and not (type(size) is int and size > 0):
        problems.append(f"{label}: 'size' must be a positive integer or null")
    sha = item.get("sha256")
    if not (isinstance(sha, str) and SHA256_RE.match(sha)) and not (sha is None and origin == "community"):
        problems.append(
            f"{label}: 'sha256' must be 64 lowercase hex digits (null only for an unattested community model)"
        )
    urls = item.get("urls")
    if not (isinstance(urls, list) and all(isinstance(u, str) for u in urls)):
        problems.append(f"{label}: 'urls' must be a list of strings")
        urls = []
    for url in urls:
        try:
            check_url(url)
        except UnsafeURLError as exc:
            problems.append(f"{label}: {exc}")
    if bundled is True and urls:
        problems.append(f"{label}: a bundled model ships with the package and has no URLs")
    if bundled is False and not urls and not path and sha is not None:
        problems.append(f"{label}: a downloadable model needs at least one URL")
    if path and urls:
        problems.append(f"{label}: a model added from a file has a 'path' and no URLs")
    return problems


def validate_manifest(data: Any) -> list[str]:
    """Every rule the manifest breaks, as readable lines; an empty list means it is valid."""
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        return ["the top level must be an object with a 'models' list"]
    problems = [] if data.get("format") == FORMAT else [f"'format' must be {FORMAT}"]
    seen: dict[str, dict[str, str]] = {"name": {}, "filename": {}}
    for index, item in enumerate(data["models"]):
        label = f"model {item.get('name', f'#{index}') if isinstance(item, dict) else f'#{index}'}"
        problems += _entry_problems(item, label)
        for key, names in seen.items():
            value = item.get(key) if isinstance(item, dict) else None
            if isinstance(value, str):
                if value.lower() in names:
                    problems.append(f"{label}: {key} {value!r} repeats {names[value.lower()]!r}")
                names[value.lower()] = value
    return problems


def entry_from_item(item: dict[str, Any]) -> ModelEntry:
    """The entry of one validated manifest item."""
    return ModelEntry(
        name=item["name"],
        variant=item["variant"],
        scale=item["scale"],
        description=item["description"],
        filename=item["filename"],
        size=item.get("size"),
        sha256=item["sha256"],
        urls=tuple(item["urls"]),
        license=item["license"],
        bundled=item.get("bundled", False),
        source=item.get("source"),
        origin=item.get("origin", "project" if item.get("bundled", False) else "official"),
        rgb_mean=item.get("rgb_mean"),
        path=item.get("path"),
    )


class Manifest:
    """The validated models of one manifest file, looked up by name or file name, ignoring case."""

    def __init__(self, entries: list[ModelEntry], source: str) -> None:
        self.entries = tuple(entries)
        self.source = source
        self._by_key = {e.filename.lower(): e for e in entries}
        self._by_key.update({e.name.lower(): e for e in entries})

    def get(self, name: str) -> ModelEntry:
        """The entry called ``name`` (or stored as file ``name``); ``ModelNotFoundError`` suggests near names."""
        entry = self._by_key.get(name.strip().lower())
        if entry is not None:
            return entry
        names = {e.name.lower(): e.name for e in self.entries}
        close = difflib.get_close_matches(name.strip().lower(), list(names), n=3, cutoff=0.5)
        hint = " or ".join(repr(names[n]) for n in close)
        suggestion = f" Did you mean {hint}?" if hint else ""
        raise UnknownModelError(f"unknown model {name!r}.{suggestion}")


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate a manifest file; ``ManifestError`` lists every problem at once."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ManifestError(f"cannot read the weights manifest {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ManifestError(f"the weights manifest {path} is not valid JSON: {exc}") from exc
    problems = validate_manifest(data)
    if problems:
        raise ManifestError(f"the weights manifest {path} is invalid:\n  " + "\n  ".join(problems))
    return Manifest([entry_from_item(item) for item in data["models"]], str(path))


@functools.lru_cache(maxsize=8)
def _load_cached(path: str, _mtime_ns: int, _size: int) -> Manifest:
    return load_manifest(path)


def default_manifest_path() -> Path:
    """``HAT_PLUGIN_MANIFEST`` when set (a private list of models), else the manifest shipped in the package."""
    override = env("HAT_PLUGIN_MANIFEST")
    return Path(override).expanduser() if override else PACKAGE_MANIFEST


def user_manifest_path() -> Path:
    """The user's own models (``hat-upscale models add``): ``HAT_PLUGIN_USER_MANIFEST`` when set, else
    ``models.json`` in the user's config folder."""
    override = env("HAT_PLUGIN_USER_MANIFEST")
    if override:
        return Path(override).expanduser()
    return platformdirs.user_config_path("hat-plugin") / "models.json"


def _version(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ManifestError(f"cannot read the weights manifest {path}: {exc.strerror or exc}") from exc
    return stat.st_mtime_ns, stat.st_size


@functools.lru_cache(maxsize=8)
def _merged(path: str, version: tuple[int, int], user: str, user_version: tuple[int, int] | None) -> Manifest:
    shipped = _load_cached(path, *version)
    if user_version is None:
        return shipped
    own = _load_cached(user, *user_version)
    for entry in own.entries:
        if entry.origin != "user":
            raise ManifestError(f"the user manifest {user}: model {entry.name} must have 'origin': 'user'")
    names = {e.name.lower() for e in own.entries}
    kept = [e for e in shipped.entries if e.name.lower() not in names]
    return Manifest([*kept, *own.entries], f"{path} + {user}")


def default_manifest() -> Manifest:
    """The manifest in use with the user's models merged over it, parsed once per file version (re-read only
    when a file changes)."""
    path = default_manifest_path()
    version = _version(path)
    if version is None:
        raise ManifestError(f"cannot read the weights manifest {path}: no such file")
    user = user_manifest_path()
    return _merged(str(path), version, str(user), _version(user))
