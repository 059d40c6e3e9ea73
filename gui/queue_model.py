"""Qt-free state of the processing queue: the items, their states, what is added, names shown, and the saved queue.

The Qt table model (``queue_view.py``) only reads it; the window changes it through ``batch_run.RunTracker`` and
the methods here, so every rule can be tested without a display.
"""

from __future__ import annotations

import itertools
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from hat_plugin import batch, images
from hat_plugin.files import NOT_REGULAR
from hat_plugin.video.names import is_video_name

__all__ = ["AddResult", "ItemState", "JobQueue", "QueueItem", "describe_items", "distinct_names", "is_media_name"]


def is_media_name(path: str | os.PathLike[str]) -> bool:
    """Whether the app takes ``path`` by its name: an image, or a video (by extension; nothing is opened)."""
    return images.is_image_name(path) or is_video_name(path)


class ItemState(StrEnum):
    """Where one queue item stands; the value is what the queue shows."""

    QUEUED = "queued"
    DOWNLOADING = "downloading model"
    LOADING = "loading model"
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True once the item will not change again unless it is started or retried."""
        return self in (ItemState.DONE, ItemState.SKIPPED, ItemState.FAILED, ItemState.CANCELLED)

    @property
    def busy(self) -> bool:
        """True while the worker is on this item (fetching or loading the model, or upscaling it)."""
        return self in (ItemState.DOWNLOADING, ItemState.LOADING, ItemState.RUNNING)

    @property
    def completed(self) -> bool:
        """True when nothing is left to do for the item: its output was written, or it needs none."""
        return self in (ItemState.DONE, ItemState.SKIPPED)


@dataclass
class QueueItem:
    """One input (an image or a video) and what happened to it."""

    id: int
    source: Path
    root: Path | None = None
    """The folder the user added that contained ``source`` (outputs keep the sub-folders below it); None when the
    file itself was added, which makes it an explicit input for the batch planner."""
    state: ItemState = ItemState.QUEUED
    done: int = 0
    total: int = 0
    """Progress of the current step: tiles (frames for a video) while running, bytes while downloading the model
    (0: not known yet)."""
    message: str = ""
    output: Path | None = None
    seconds: float | None = None
    model: Path | None = None
    """The weights file that made ``output`` (None when not known: no output, or a queue saved by an older
    version)."""
    retry: bool = True
    """Whether Retry is offered when it failed (False when the input itself cannot be upscaled)."""

    @property
    def is_video(self) -> bool:
        """True for a video file (upscaled frame by frame in resumable chunks)."""
        return is_video_name(self.source)

    @property
    def kind(self) -> str:
        """``video`` or ``image``."""
        return "video" if self.is_video else "image"

    @property
    def subfolder(self) -> Path:
        """The folder of ``source`` below the added folder (``Path()`` for a file added by itself)."""
        return self.source.parent.relative_to(self.root) if self.root is not None else Path()


def describe_items(items: Iterable[QueueItem]) -> str:
    """``3 images``, ``1 video``, ``2 images and 1 video``."""
    kinds = [item.is_video for item in items]
    videos = sum(kinds)
    parts = [(len(kinds) - videos, "image"), (videos, "video")]
    shown = [f"{n} {word}{'s' if n != 1 else ''}" for n, word in parts if n]
    return " and ".join(shown) or "nothing"


@dataclass
class AddResult:
    """What ``JobQueue.add_paths`` did with the paths it was given."""

    added: list[QueueItem] = field(default_factory=list)
    rejected: list[Path] = field(default_factory=list)
    """Paths given that are neither images nor videos (or do not exist); nothing was added for them."""
    reasons: dict[Path, str] = field(default_factory=dict)
    """Why each rejected path was not added."""
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    """Image or video names found inside added folders that cannot be read as files (pipes, devices), with the
    reason."""
    duplicates: list[Path] = field(default_factory=list)
    """Files already waiting in the queue."""


def _kind(path: Path) -> int | None:
    """The file type bits of ``path`` (never opening it), or None when it does not exist."""
    try:
        return stat.S_IFMT(path.stat().st_mode)
    except (OSError, ValueError):
        return None


class JobQueue:
    """The ordered list of queue items, owned by the UI thread."""

    def __init__(self, accepts: Callable[[Path], bool] = is_media_name) -> None:
        self._accepts = accepts
        self.items: list[QueueItem] = []
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        return len(self.items)

    def _why_not(self, path: Path) -> str | None:
        """Why ``path`` cannot be queued as an image or video file, or None when it can. Only ``stat`` is used: a
        named pipe called ``x.png`` is refused without being opened (opening it would block)."""
        kind = _kind(path)
        if kind is None:
            return "not found"
        if kind != stat.S_IFREG:
            return NOT_REGULAR
        if not self._accepts(path):
            return "not an image or video file"
        return None

    def add_paths(self, paths: Iterable[Path], recursive: bool = True) -> AddResult:
        """Add image and video files, and those inside folders (sub-folders too when ``recursive``; the work
        folders of interrupted videos are never entered)."""
        result = AddResult()
        waiting = {_key(item.source) for item in self.items if not item.state.finished}
        for given in paths:
            path = Path(given)
            candidates: list[tuple[Path, Path | None]]
            if _kind(path) == stat.S_IFDIR:
                found = list(
                    batch.find_files(
                        path, recursive, lambda name: self._accepts(Path(name)), on_skipped=self._on_skipped(result)
                    )
                )
                candidates = [(p, path) for p, _sub in found if self._accepts(p)]
                if not candidates:
                    result.rejected.append(path)
                    result.reasons[path] = "a folder with no images or videos"
            else:
                why = self._why_not(path)
                if why is not None:
                    result.rejected.append(path)
                    result.reasons[path] = why
                    continue
                candidates = [(path, None)]
            for source, root in candidates:
                key = _key(source)
                if key in waiting:
                    result.duplicates.append(source)
                    continue
                waiting.add(key)
                result.added.append(self._append(source, root))
        return result

    def _on_skipped(self, result: AddResult) -> Callable[[Path, str], None]:
        def note(path: Path, why: str) -> None:
            if self._accepts(path):  # an image or video name that is not a file: tell the user; others are ignored
                result.skipped.append((path, why))

        return note

    def _append(self, source: Path, root: Path | None) -> QueueItem:
        item = QueueItem(id=next(self._ids), source=source, root=root)
        self.items.append(item)
        return item

    def get(self, item_id: int) -> QueueItem:
        """The item with this id (KeyError when it was removed)."""
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    def find(self, item_id: int) -> QueueItem | None:
        """The item with this id, or None when it was removed."""
        try:
            return self.get(item_id)
        except KeyError:
            return None

    def row_of(self, item_id: int) -> int:
        """Index of the item in ``items`` (KeyError when it was removed)."""
        for row, item in enumerate(self.items):
            if item.id == item_id:
                return row
        raise KeyError(item_id)

    def queued(self) -> list[QueueItem]:
        """Items waiting to run, in queue order."""
        return [item for item in self.items if item.state is ItemState.QUEUED]

    def startable(self) -> list[QueueItem]:
        """What Start processes: queued items and cancelled ones (a cancel is not a failure), in queue order."""
        return [item for item in self.items if item.state in (ItemState.QUEUED, ItemState.CANCELLED)]

    def requeue(self, items: Iterable[QueueItem]) -> list[QueueItem]:
        """Put the given finished items back in the queue, clearing their progress and message."""
        again = []
        for item in items:
            if item.state.finished:
                item.state, item.done, item.total, item.message = ItemState.QUEUED, 0, 0, ""
                item.output, item.seconds, item.model = None, None, None
                again.append(item)
        return again

    def retry(self, item_ids: Iterable[int] | None = None) -> list[QueueItem]:
        """Put failed and cancelled items (all of them, or those given) back in the queue."""
        wanted = None if item_ids is None else set(item_ids)
        return self.requeue(
            item
            for item in self.items
            if item.state in (ItemState.FAILED, ItemState.CANCELLED) and (wanted is None or item.id in wanted)
        )

    def remove(self, item_ids: Iterable[int]) -> list[int]:
        """Remove the given items that are not being processed; returns the ids removed."""
        wanted = set(item_ids)
        removed = [i.id for i in self.items if i.id in wanted and not i.state.busy]
        self.items = [i for i in self.items if i.id not in removed]
        return removed

    def remove_finished(self) -> list[int]:
        """Remove done and skipped items; returns the ids removed."""
        return self.remove(i.id for i in self.items if i.state.completed)

    def shown_names(self) -> dict[int, str]:
        """The name each item is shown under: the file name, or a longer tail of its path where names repeat."""
        return dict(zip((i.id for i in self.items), distinct_names([i.source for i in self.items]), strict=True))

    # ------------------------------------------------------------------------------------------- saving

    def to_records(self) -> list[dict[str, Any]]:
        """The queue as JSON-ready records, so the next start can show it again (with finished states)."""
        return [
            {
                "source": str(item.source),
                "root": str(item.root) if item.root is not None else None,
                "state": item.state.value,
                "message": item.message,
                "output": str(item.output) if item.output is not None else None,
                "seconds": item.seconds,
                "model": str(item.model) if item.model is not None else None,
            }
            for item in self.items
        ]

    def restore(self, records: Iterable[Any]) -> tuple[int, int]:
        """Append the items of ``to_records``; an item that was in progress comes back queued. Records whose input
        file is gone, or that are malformed, are dropped. Returns (restored, dropped)."""
        restored = dropped = 0
        for record in records:
            try:
                source = Path(record["source"])
                root = Path(record["root"]) if record.get("root") else None
                state = ItemState(record.get("state", "queued"))
                output = Path(record["output"]) if record.get("output") else None
                seconds = record.get("seconds")
                model = Path(record["model"]) if record.get("model") else None
                message = str(record.get("message") or "")
            except (KeyError, TypeError, ValueError):
                dropped += 1
                continue
            if _kind(source) != stat.S_IFREG or (root is not None and not source.is_relative_to(root)):
                dropped += 1
                continue
            item = self._append(source, root)
            if state.busy:
                state, message = ItemState.QUEUED, ""
            if state is ItemState.DONE and (output is None or _kind(output) != stat.S_IFREG):
                state, message, output = ItemState.QUEUED, "", None  # its output is gone: do it again
            item.state, item.message, item.output = state, message, output
            item.model = model if output is not None else None
            item.seconds = float(seconds) if isinstance(seconds, int | float) else None
            restored += 1
        return restored, dropped


def _key(path: Path) -> Path:
    """A path's identity for duplicate checks (resolved when possible)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return path.absolute()


def distinct_names(paths: list[Path]) -> list[str]:
    """A short name per path: the file name, extended by parent folders (``2023/rose.png``) only where the same
    name would otherwise appear for different files."""
    depth = [1] * len(paths)
    parts = [p.parts for p in paths]
    while True:
        shown = [os.path.join(*part[-d:]) if part else "" for part, d in zip(parts, depth, strict=True)]
        groups: dict[str, list[int]] = {}
        for index, name in enumerate(shown):
            groups.setdefault(name, []).append(index)
        grew = False
        for members in groups.values():
            if len({parts[i] for i in members}) < 2:
                continue  # one file (or the same one twice): no need for more
            for i in members:
                if depth[i] < len(parts[i]):
                    depth[i] += 1
                    grew = True
        if not grew:
            return shown
