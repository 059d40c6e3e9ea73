"""The work folder of a video job, beside its output: the job's record, the frame index and finished segments.

``film_x4.mkv`` is worked on in ``film_x4.mkv.hat-work/``: ``job.json`` says which source, model, range start,
chunk size and encoder settings the chunks belong to; ``index.json`` caches the frame index; ``chunk-000012.mkv``
is the segment of chunk 12, present only once complete (written atomically). Running the same job again reuses
every segment that still checks out; a job with other settings is refused rather than mixed in.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import OutputError, WorkFolderError
from ..files import atomic_write, describe_os_error
from .index import FrameIndex
from .names import WORK_SUFFIX
from .segment import Chunk, check_segment

__all__ = ["WorkFolder", "plan_chunks"]

_RECORD, _INDEX = "job.json", "index.json"


def plan_chunks(first: int, last: int, size: int) -> list[Chunk]:
    """Chunks of ``size`` frames covering ``[first, last)``, numbered from ``first`` (the last may be shorter).

    Numbering from the range's start (not from the end) keeps every chunk the same when only the end changes, so
    a job stopped by damaged data can be finished up to that frame with the chunks already done.
    """
    return [Chunk(n, start, min(start + size, last)) for n, start in enumerate(range(first, last, size))]


class WorkFolder:
    """One job's folder of chunks."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.job = ""

    @staticmethod
    def for_output(output: Path) -> WorkFolder:
        """The work folder of ``output``: beside it, named after it."""
        return WorkFolder(output.with_name(output.name + WORK_SUFFIX))

    def open(self, record: dict[str, Any]) -> bool:
        """Create the folder for the job ``record``, or check that the existing one belongs to it; returns whether
        it existed. ``WorkFolderError`` when it belongs to another job (it is left as it is)."""
        self.job = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:20]
        existing = self.path / _RECORD
        try:
            if existing.is_file():
                previous = json.loads(existing.read_text(encoding="utf-8"))
                if previous != record:
                    changed = sorted(k for k in set(previous) | set(record) if previous.get(k) != record.get(k))
                    raise WorkFolderError(
                        f"{self.path} holds chunks of another job (different {', '.join(changed)}); use the same "
                        "settings to resume it, or delete the folder to start over"
                    )
                self._remove_temporaries()
                return True
            self.path.mkdir(parents=True, exist_ok=True)
        except json.JSONDecodeError:
            raise WorkFolderError(f"{existing} is damaged; delete {self.path} to start over") from None
        except OSError as exc:
            raise OutputError(f"cannot use the work folder {self.path}: {describe_os_error(exc)}") from exc
        atomic_write(existing, json.dumps(record, indent=1, sort_keys=True).encode())
        return False

    def record(self) -> dict[str, Any] | None:
        """The record of the job this folder belongs to, or None (no folder, or an unreadable record)."""
        try:
            data = json.loads((self.path / _RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def _remove_temporaries(self) -> None:
        """Temporary files of segments that were being written when a run was killed."""
        for leftover in self.path.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                leftover.unlink()

    def segment(self, chunk: Chunk) -> Path:
        """Where chunk ``chunk``'s segment goes."""
        return self.path / f"chunk-{chunk.number:06d}.mkv"

    def load_index(self) -> FrameIndex | None:
        """The cached frame index, or None."""
        try:
            return FrameIndex.from_json((self.path / _INDEX).read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save_index(self, index: FrameIndex) -> None:
        """Cache the frame index for the next run."""
        atomic_write(self.path / _INDEX, index.to_json().encode())

    def finished(self, chunks: Sequence[Chunk], on_rejected: Callable[[Chunk, str], None] | None = None) -> set[int]:
        """Numbers of the chunks whose segments exist and check out (every frame decodes); a segment that does not
        is deleted (and reported to ``on_rejected``), so its chunk is done again."""
        done = set()
        for chunk in chunks:
            path = self.segment(chunk)
            if not path.is_file():
                continue
            problem = check_segment(path, chunk, self.job)
            if problem is None:
                done.add(chunk.number)
                continue
            if on_rejected is not None:
                on_rejected(chunk, problem)
            with contextlib.suppress(OSError):
                path.unlink()
        return done

    def remove(self) -> None:
        """Delete the folder and everything in it."""
        shutil.rmtree(self.path, ignore_errors=True)
