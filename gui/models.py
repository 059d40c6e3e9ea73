"""Qt-free facts about the models for the app: friendly names from the manifest, which models are on this computer
(checked off the UI thread, since checking may hash a large file), and the one-sentence "not available" message.

The default-model policy is the engine's (``weights.default_model``); this module only asks it, per scale.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from gui.formatting import format_size
from hat_plugin import weights
from hat_plugin.errors import DownloadError, HATError
from hat_plugin.weights import ModelEntry

__all__ = [
    "Availability",
    "alternative_sentence",
    "check_availability",
    "friendly_name",
    "model_status",
    "ready_alternative",
    "unavailable_sentence",
]

_SCALE_TOKEN = re.compile(r"^(SR)?x\d+$", re.IGNORECASE)
_SEPARATORS = re.compile(r"[_\-\s]+")


def friendly_name(entry: ModelEntry, *, size: bool = True) -> str:
    """A name people read, derived from the manifest entry: the variant, the scale, what else the name says, and
    the download size, e.g. ``"HAT-S ×4 (81 MB)"`` or ``"HAT ×4 Real GAN sharper (170 MB)"``. Community and the
    user's models keep their own names (which carry their scale), e.g. ``"4xNomos8kSCHAT-S (81 MB)"``."""
    if entry.origin in ("community", "user"):
        name = entry.name.replace("_", " ")
        return f"{name} ({format_size(entry.size)})" if size and entry.size else name
    boundary = r"(?<![A-Za-z0-9]){}(?![A-Za-z0-9])"
    rest = re.sub(boundary.format(re.escape(entry.variant)), " ", entry.name, count=1, flags=re.IGNORECASE)
    words = [w for w in _SEPARATORS.split(rest) if w and not _SCALE_TOKEN.match(w)]
    name = " ".join([entry.variant, f"×{entry.scale}", *words])
    return f"{name} ({format_size(entry.size)})" if size else name


def model_status(entry: ModelEntry, ready: bool | None) -> str:
    """One word for where a model stands: "bundled" (ships with the app), "downloaded", "not downloaded",
    "missing" (a bundled file that is gone), or "checking" while not known yet."""
    if ready is None:
        return "checking"
    if entry.bundled:
        return "bundled" if ready else "missing"
    return "downloaded" if ready else "not downloaded"


@dataclass(frozen=True)
class Availability:
    """Which manifest models work without the network, and the engine's default per scale."""

    ready: dict[str, bool] = field(default_factory=dict)
    """Model name -> its verified file is on this computer (bundled or cached)."""
    defaults: dict[int, tuple[str, str]] = field(default_factory=dict)
    """Scale -> (model name, the engine's sentence saying why it is the default)."""
    default_scale: int = 0
    """The scale of the engine's default model when none is asked for (0 when the manifest has none)."""
    offline: bool = False
    """``HAT_PLUGIN_OFFLINE`` is set: nothing is downloaded."""
    problem: str = ""
    """Why the model list could not be read (empty when it could)."""

    def is_ready(self, name: str) -> bool | None:
        """True/False once known, None for a model not checked."""
        return self.ready.get(name)


def check_availability() -> Availability:
    """Check every model's file (hashing it the first time: call it off the UI thread) and ask the engine for its
    default model per scale."""
    try:
        entries = weights.list_models()
    except HATError as exc:
        return Availability(offline=weights.is_offline(), problem=str(exc))
    ready = {entry.name: weights.is_cached(entry.name) for entry in entries}
    defaults: dict[int, tuple[str, str]] = {}
    for scale in sorted({entry.scale for entry in entries}):
        try:
            entry, why = weights.default_model(scale)
        except HATError:
            continue
        defaults[scale] = (entry.name, why)
    try:
        default_scale = weights.default_model()[0].scale
    except HATError:
        default_scale = 0
    return Availability(ready=ready, defaults=defaults, default_scale=default_scale, offline=weights.is_offline())


def unavailable_sentence(entry: ModelEntry, exc: BaseException, offline: bool) -> str:
    """One short sentence for a model that could not be fetched; the engine's full text goes to the details."""
    name = friendly_name(entry, size=False)
    if offline:
        return f"{name} is not downloaded and offline mode is on (HAT_PLUGIN_OFFLINE)."
    text = str(exc)
    tried = [line for line in text.splitlines() if line.strip().startswith("->")]
    if isinstance(exc, DownloadError) and tried and all(_no_connection(line) for line in tried):
        return f"{name} is not downloaded and this computer is offline."
    return f"{name} is not downloaded and could not be downloaded."


def _no_connection(line: str) -> bool:
    """Whether one "tried" line of a ``DownloadError`` says the server could not be reached at all."""
    return "cannot connect" in line or "timed out" in line


def ready_alternative(
    availability: Availability | None, entries: Iterable[ModelEntry], scale: int, unavailable: str
) -> ModelEntry | None:
    """What works without the network instead of ``unavailable`` (a model of ``scale``): the engine's default for
    ``scale`` when it is ready, else the ready bundled model of the nearest scale (the larger on a tie); None while
    the check has not answered or when nothing is ready."""
    if availability is None:
        return None
    listed = {entry.name: entry for entry in entries if entry.name != unavailable}
    default = availability.defaults.get(scale)
    if default is not None and default[0] in listed and availability.is_ready(default[0]):
        return listed[default[0]]
    bundled = [entry for entry in listed.values() if entry.bundled and availability.is_ready(entry.name)]
    return min(bundled, key=lambda entry: (abs(entry.scale - scale), -entry.scale), default=None)


def alternative_sentence(alternative: ModelEntry, scale: int) -> str:
    """What using ``alternative`` instead of a model of ``scale`` gives, e.g. "HAT-tiny ×4 works offline and gives
    ×4 instead of ×3."."""
    name = friendly_name(alternative, size=False)
    if alternative.scale == scale:
        return f"{name} works offline."
    return f"{name} works offline and gives ×{alternative.scale} instead of ×{scale}."
