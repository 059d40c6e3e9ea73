"""Source frame k and output frame k of a finished video, for the compare view (no Qt).

Both files are read through ``hat_plugin.video.FrameReader`` (the engine's decoding and colour conversion), opened
on first use, which probes and indexes them: that happens on a worker thread, never on the UI thread.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from hat_plugin.video import FrameReader

__all__ = ["FramePair"]


class FramePair:
    """The two videos of one finished queue item, read frame by frame (one call at a time; any thread)."""

    def __init__(self, source: Path, output: Path) -> None:
        self.source, self.output = source, output
        self._readers: tuple[FrameReader, FrameReader] | None = None
        self._closed = False
        self._lock = threading.Lock()

    def open(self) -> int:
        """Open both files (once) and return the number of frames they share (the output's, for a whole-video
        job); ``VideoError`` for a file that cannot be read."""
        with self._lock:
            return min(reader.frames for reader in self._open())

    def read(self, number: int) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
        """Frame ``number`` of the source and of the output, as RGB arrays."""
        with self._lock:
            source, output = self._open()
            return source.read(number), output.read(number)

    def _open(self) -> tuple[FrameReader, FrameReader]:
        if self._closed:
            raise ValueError("the compared video was closed")
        if self._readers is None:
            source = FrameReader(self.source)
            try:
                self._readers = (source, FrameReader(self.output))
            except BaseException:
                source.close()
                raise
        return self._readers

    def close(self) -> None:
        """Close both files (waits for a read in progress)."""
        with self._lock:
            self._closed = True
            if self._readers is not None:
                for reader in self._readers:
                    reader.close()
                self._readers = None
