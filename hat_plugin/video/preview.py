"""Frames of a video as RGB pictures, for a front end's compare view (source frame k beside output frame k) and
thumbnails.

Uses the same decoding (frame ``k`` is the ``k``-th picture the decoder outputs) and the same colour conversion as
the upscaling, so the two pictures compare like for like. ``FrameReader`` keeps the file's index and decoder open,
so stepping through frames reads the file once (the next frame continues decoding without seeking again).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from types import TracebackType

import numpy as np
import torch

from ..errors import OptionError
from ..pixels import from_unit_float
from ..progress import CancelCheck
from .colour import ColourConverter
from .decode import SourceReader
from .index import build_index
from .probe import VideoInfo, probe

__all__ = ["FrameReader", "frame_count", "read_frame"]


class FrameReader:
    """Reads frames of one video by number, as ``HxWx3`` RGB (``uint8`` for 8-bit video, ``uint16`` for deeper).

    Opening probes the file and indexes its frames (decoding it once): ``VideoError`` for a file that
    is not a usable video. Safe to use from any thread; calls are served one at a time.
    """

    def __init__(self, path: str | os.PathLike[str], cancel: CancelCheck = None) -> None:
        self.path = Path(path)
        self.info: VideoInfo = probe(self.path)
        self.index = build_index(self.info, cancel)
        self._reader: SourceReader | None = SourceReader(self.info, self.index)
        info = self.info
        self._converter = ColourConverter(info.layout, info.colour, info.width, info.height, torch.device("cpu"))
        self._lock = threading.Lock()

    @property
    def frames(self) -> int:
        """How many frames the video has."""
        return len(self.index)

    def read(self, number: int) -> np.ndarray:
        """Frame ``number`` (0-based) as RGB; ``OptionError`` for a frame the video lacks, ``DamagedVideoError``
        where the data is damaged."""
        if not 0 <= number < len(self.index):
            raise OptionError(f"{self.path} has {len(self.index)} frames; there is no frame {number}")
        with self._lock:
            if self._reader is None:
                raise ValueError(f"the reader of {self.path} is closed")
            # consumed to the end, so the reader knows its decoder is at ``number + 1``: the next frame continues
            # without seeking, and the same frame again seeks back instead of taking the next one
            [(_, planes)] = list(self._reader.frames(number, number + 1))
            rgb = self._converter.to_rgb(planes)[0].permute(1, 2, 0).numpy()
        return from_unit_float(rgb, np.uint8 if self.info.layout.bits == 8 else np.uint16)

    def close(self) -> None:
        """Close the file (waits for a read in progress)."""
        with self._lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def frame_count(path: str | os.PathLike[str]) -> int:
    """How many frames the video at ``path`` decodes to (it is decoded once)."""
    return len(build_index(probe(path)))


def read_frame(path: str | os.PathLike[str], number: int) -> np.ndarray:
    """Frame ``number`` (0-based) of the video at ``path`` as ``HxWx3`` RGB: ``uint8`` for 8-bit video,
    ``uint16`` for deeper. Raises ``VideoError`` for an unreadable file, ``OptionError`` for a frame it lacks."""
    with FrameReader(path) as reader:
        return reader.read(number)
