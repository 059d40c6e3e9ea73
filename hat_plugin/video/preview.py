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

import av
import av.error
import numpy as np
import torch

from ..errors import OptionError, VideoError
from ..pixels import from_unit_float
from ..progress import CancelCheck
from .colour import ColourConverter
from .decode import SourceReader
from .frames import read_planes
from .index import build_index
from .probe import VideoInfo, probe

__all__ = ["FrameReader", "frame_count", "read_frame", "read_poster"]

_POSTER_AT = 0.1  # how far into a video its poster picture is (past a black or titled opening)


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


def read_poster(path: str | os.PathLike[str]) -> np.ndarray:
    """A picture that stands for the video at ``path`` (a thumbnail): the first frame decoded after a seek a tenth
    of the way in (the start when the file does not say how long it is), as RGB like ``FrameReader.read``. Reads
    a few packets, not the whole file; ``VideoError`` when no frame decodes."""
    info = probe(path)
    converter = ColourConverter(info.layout, info.colour, info.width, info.height, torch.device("cpu"))
    for seconds in ((info.duration or 0.0) * _POSTER_AT, 0.0):
        try:
            with av.open(str(info.path)) as container:
                stream = container.streams[info.stream_index]
                if seconds:
                    container.seek(int(seconds * av.time_base), backward=True)
                frame = next(container.decode(stream), None)
        except av.error.FFmpegError:
            frame = None
        if isinstance(frame, av.VideoFrame) and (frame.width, frame.height) == (info.width, info.height):
            rgb = converter.to_rgb(read_planes(frame, info.layout))[0].permute(1, 2, 0).numpy()
            return from_unit_float(rgb, np.uint8 if info.layout.bits == 8 else np.uint16)
    raise VideoError(f"{info.path}: no frame of the video stream can be decoded")


def read_frame(path: str | os.PathLike[str], number: int) -> np.ndarray:
    """Frame ``number`` (0-based) of the video at ``path`` as ``HxWx3`` RGB: ``uint8`` for 8-bit video,
    ``uint16`` for deeper. Raises ``VideoError`` for an unreadable file, ``OptionError`` for a frame it lacks."""
    with FrameReader(path) as reader:
        return reader.read(number)
