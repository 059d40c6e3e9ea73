"""Qt-free contents of the model picker: the groups of the model box (ready, the user's own, downloadable), each
model's tooltip, the sentence under the box, and a model name for a dropped weights file."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path

from gui.formatting import format_size
from gui.models import alternative_sentence, model_status
from hat_plugin.weights import ModelEntry

__all__ = [
    "DOWNLOAD_GROUP",
    "OTHER_GROUP",
    "READY_GROUP",
    "Ready",
    "WEIGHTS_FILE",
    "YOURS_GROUP",
    "automatic_sentence",
    "model_groups",
    "model_sentence",
    "model_tooltip",
    "suggest_name",
]

WEIGHTS_FILE = "\0weights-file"
"""Name of the model box's entry that switches to a local weights file."""
READY_GROUP, YOURS_GROUP, DOWNLOAD_GROUP, OTHER_GROUP = (
    "Ready to use",
    "Yours",
    "Download (needs the internet)",
    "Other",
)
_ORIGIN = {"official": "the HAT authors", "community": "the community", "project": "hat-plugin", "user": "you"}

Ready = Callable[[ModelEntry], bool | None]
"""Whether a model is ready to use (None while nobody knows yet)."""


def model_groups(entries: Iterable[ModelEntry], ready: Ready) -> list[tuple[str, list[ModelEntry]]]:
    """The model box's non-empty groups in order, each by scale: ready to use, the user's own, downloadable."""
    ordered = sorted(entries, key=lambda e: e.scale)
    yours = [e for e in ordered if e.origin == "user"]
    ready_ones = [e for e in ordered if ready(e) and e.origin != "user"]
    rest = [e for e in ordered if not ready(e) and e.origin != "user"]
    groups = ((READY_GROUP, ready_ones), (YOURS_GROUP, yours), (DOWNLOAD_GROUP, rest))
    return [(title, group) for title, group in groups if group]


def model_tooltip(entry: ModelEntry, ready: bool | None) -> str:
    """One line on a model: name, description, status, licence, who made it, an unusual RGB mean, an unattested
    hash."""
    status = model_status(entry, ready)
    mean = f"; RGB mean {entry.rgb_mean}" if entry.rgb_mean and entry.rgb_mean != "official" else ""
    hashed = "" if entry.attested else "; hash unattested"
    origin = _ORIGIN.get(entry.origin, entry.origin)
    return f"{entry.name}: {entry.description} ({status}; licence {entry.license}; by {origin}{mean}{hashed})"


def automatic_sentence(scale: int, default: tuple[str, str] | None, checked: bool) -> str:
    """The sentence for the engine's default model of ``scale`` (``default``: its name and why; ``checked``:
    whether the availability check has answered)."""
    if default is None and checked:
        return f"No model is picked automatically for ×{scale}: choose one in the model box."
    if default is None:
        return "Checking which models are on this computer…"
    return f"Picked for ×{scale}: {default[1]}."


def model_sentence(entry: ModelEntry, ready: bool | None, offline: bool, alternative: ModelEntry | None) -> str:
    """The sentence for a model chosen by name: what it is and whether it works offline (``alternative``: the
    ready model offered instead when it is not downloaded and offline mode is on)."""
    status = model_status(entry, ready)
    where = {
        "bundled": "Bundled with the app: works offline.",
        "downloaded": "Yours: works offline." if entry.origin == "user" else "Downloaded: works offline.",
        "missing": "Its bundled file is missing: reinstall hat-plugin.",
        "checking": "Checking whether it is on this computer…",
    }.get(status, f"Not downloaded yet ({format_size(entry.size)}): it is fetched when a run starts.")
    if status == "not downloaded" and offline:
        instead = alternative_sentence(alternative, entry.scale) if alternative else "pick a model that is ready."
        where = f"Not downloaded, and offline mode is on: {instead}"
    return f"{entry.description.rstrip('.')}. {where}"


def suggest_name(path: Path, taken: Iterable[str]) -> str:
    """A model name from a file name, not one of ``taken`` in any case (``-2``, ``-3``... appended)."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem).strip("._-") or "model"
    used = {name.lower() for name in taken}
    name, n = base, 1
    while name.lower() in used:
        n += 1
        name = f"{base}-{n}"
    return name
