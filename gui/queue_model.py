"""Qt-free state of the processing queue: items, their states, output naming and the time-left estimate.

The Qt table model (``queue_view.py``) and the worker only read and report; every rule lives here so it can be
tested without a display.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from hat_plugin import batch, images

"""Used for "same as input" when the input's format cannot be written (GIF, PPM, ...)."""


class ItemState(StrEnum):
    """Where one queue item stands; the value is what the queue shows."""

    QUEUED = "queued"
    DOWNLOADING = "downloading model"
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True once the item will not change again unless it is retried."""
        return self in (ItemState.DONE, ItemState.SKIPPED, ItemState.FAILED, ItemState.CANCELLED)


@dataclass
class QueueItem:
    """One input image and what happened to it."""

    id: int
    source: Path
    root: Path | None = None
    """The folder the user added that contained ``source``; outputs keep the sub-folders below it."""
    state: ItemState = ItemState.QUEUED
    done: int = 0
    total: int = 0
    """Progress of the current step: tiles while running, bytes while downloading the model."""
    message: str = ""
    output: Path | None = None
    seconds: float | None = None


@dataclass
class AddResult:
    """What ``JobQueue.add_paths`` did with the paths it was given."""

    added: list[QueueItem] = field(default_factory=list)
    rejected: list[Path] = field(default_factory=list)
    """Paths that are not images (or do not exist); nothing was added for them."""
    duplicates: list[Path] = field(default_factory=list)
    """Images already waiting in the queue."""


class JobQueue:
    """The ordered list of queue items, owned by the UI thread."""

    def __init__(self, accepts: Callable[[Path], bool] = images.is_image_name) -> None:
        self._accepts = accepts
        self.items: list[QueueItem] = []
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self.items)

    def is_image(self, path: Path) -> bool:
        """True when ``path`` is a file with a readable image extension."""
        return self._accepts(path) and path.is_file()

    def add_paths(self, paths: Iterable[Path], recursive: bool = True) -> AddResult:
        """Add image files and the images inside folders (sub-folders too when ``recursive``)."""
        result = AddResult()
        waiting = {item.source.resolve() for item in self.items if not item.state.finished}
        for path in paths:
            path = Path(path)
            if path.is_dir():
                found = [p for p, _sub in batch.find_images(path, recursive) if self._accepts(p)]
                if not found:
                    result.rejected.append(path)
                candidates = [(p, path) for p in found]
            elif self.is_image(path):
                candidates = [(path, None)]
            else:
                result.rejected.append(path)
                continue
            for source, root in candidates:
                key = source.resolve()
                if key in waiting:
                    result.duplicates.append(source)
                    continue
                waiting.add(key)
                item = QueueItem(id=next(self._ids), source=source, root=root)
                self.items.append(item)
                result.added.append(item)
        return result

    def get(self, item_id: int) -> QueueItem:
        """The item with this id (KeyError when it was removed)."""
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    def row_of(self, item_id: int) -> int:
        """Index of the item in ``items`` (KeyError when it was removed)."""
        for row, item in enumerate(self.items):
            if item.id == item_id:
                return row
        raise KeyError(item_id)

    def queued(self) -> list[QueueItem]:
        """Items waiting to run, in queue order."""
        return [item for item in self.items if item.state is ItemState.QUEUED]

    def retry(self, item_ids: Iterable[int] | None = None) -> list[QueueItem]:
        """Put failed and cancelled items (all of them, or those given) back in the queue."""
        wanted = None if item_ids is None else set(item_ids)
        again = []
        for item in self.items:
            if item.state in (ItemState.FAILED, ItemState.CANCELLED) and (wanted is None or item.id in wanted):
                item.state, item.done, item.total, item.message = ItemState.QUEUED, 0, 0, ""
                again.append(item)
        return again

    def remove(self, item_ids: Iterable[int]) -> list[int]:
        """Remove the given items that are not being processed; returns the ids removed."""
        busy = (ItemState.RUNNING, ItemState.DOWNLOADING)
        wanted = set(item_ids)
        removed = [i.id for i in self.items if i.id in wanted and i.state not in busy]
        self.items = [i for i in self.items if i.id not in removed]
        return removed

    def remove_finished(self) -> list[int]:
        """Remove done and skipped items; returns the ids removed."""
        return self.remove(i.id for i in self.items if i.state in (ItemState.DONE, ItemState.SKIPPED))


def output_path(
    source: Path,
    root: Path | None,
    output_dir: Path | None,
    suffix: str,
    fmt: str,
    scale: int,
    model: str,
) -> Path:
    """Where the upscaled ``source`` goes (the same rule as the command line: ``hat_plugin.batch.output_path``).

    ``output_dir`` None writes beside the input; otherwise sub-folders below ``root`` are kept. ``suffix`` may use
    ``{scale}`` and ``{model}``. ``fmt`` is ``"same"`` (keep the input's format when it can be written, else PNG)
    or a format name ``images.write_image`` accepts.
    """
    try:
        tail = suffix.format(scale=scale, model=model)
    except (KeyError, IndexError, ValueError):
        tail = suffix
    subfolder = source.parent.relative_to(root) if root is not None else None
    return batch.output_path(source, subfolder, output_dir, tail, None if fmt == "same" else fmt)


class TimeLeft:
    """Estimates the seconds left in a run from how long finished items and the current item's tiles took."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._durations: list[float] = []
        self._current_start: float | None = None

    def start_item(self) -> None:
        """The worker began computing an item (after any model download)."""
        self._current_start = self._clock()

    def finish_item(self, counted: bool) -> None:
        """The current item ended; ``counted`` is False for skips, failures and cancels, which say little."""
        if counted and self._current_start is not None:
            self._durations.append(self._clock() - self._current_start)
        self._current_start = None

    def estimate(self, done: int, total: int, waiting: int) -> float | None:
        """Seconds left: the rest of the current item (``done`` of ``total`` tiles) plus ``waiting`` more items."""
        current_left = 0.0
        per_item = sum(self._durations) / len(self._durations) if self._durations else None
        if self._current_start is not None:
            elapsed = self._clock() - self._current_start
            if done > 0 and total > 0:
                projected = elapsed * total / done
                current_left = max(projected - elapsed, 0.0)
                per_item = per_item if per_item is not None else projected
            elif per_item is not None:
                current_left = max(per_item - elapsed, 0.0)
            else:
                return None
        if per_item is None:
            return None if waiting else current_left
        return current_left + waiting * per_item


def format_seconds(seconds: float | None) -> str:
    """A short human time such as ``"45 s"``, ``"3 min 05 s"`` or ``"1 h 02 min"``; ``"…"`` when unknown."""
    if seconds is None:
        return "estimating…"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_size(size: int | None) -> str:
    """Bytes as a short human size (``"9.6 MB"``)."""
    if not size:
        return "size unknown"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return ""
