"""One chunk's encoded frames in its own file (a Matroska segment): written atomically, checked before reuse.

A segment starts with a fresh encoder, so its first frame is a keyframe and nothing in it refers to another
chunk; its tags name the job and the frame range, so a file from another run or another chunk size is never
mistaken for this one. Timestamps inside are only used for their order: the exact ones come from the frame index
when the segments are joined.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import av.error
import numpy as np

from ..errors import Cancelled
from ..files import atomic_path
from .codecs import CODECS, EncoderSettings, configure_encoder
from .colour import Colour, PixelLayout
from .ffmpeg_log import error_log
from .frames import new_frame

if TYPE_CHECKING:
    from .deinterlace import Deinterlace

__all__ = ["Chunk", "OutputFormat", "SegmentWriter", "check_segment"]

SEGMENT_FORMAT = "matroska"
_REORDER_FROM = 3  # frames an encoder needs before it can reorder any (an I or P frame and a B between them)
TAG_JOB, TAG_FRAMES = "HAT_JOB", "HAT_FRAMES"


@dataclass(frozen=True)
class Chunk:
    """Frames ``[start, stop)`` of the source, encoded as segment number ``number``."""

    number: int
    start: int
    stop: int

    @property
    def frames(self) -> int:
        """How many frames the chunk holds."""
        return self.stop - self.start

    @property
    def key(self) -> int:
        """The chunk's number: it tells chunks apart as units of work (``hat_plugin.workers``)."""
        return self.number

    @property
    def size(self) -> int:
        """The chunk's frames: what progress counts in it as a unit of work."""
        return self.frames

    @property
    def tag(self) -> str:
        """The frame range as written into the segment (``120-240``)."""
        return f"{self.start}-{self.stop}"


@dataclass(frozen=True)
class OutputFormat:
    """What every segment of a job is encoded as."""

    settings: EncoderSettings
    layout: PixelLayout
    colour: Colour
    width: int
    height: int
    time_base: Fraction
    frame_rate: Fraction | None
    sample_aspect_ratio: Fraction | None
    deinterlace: Deinterlace | None = None
    """How source frames become the frames upscaled (None: as decoded)."""


class SegmentWriter:
    """Encodes one chunk into ``path``: ``add`` each frame's planes in order, then ``finish`` (publishes the
    file) or ``abort`` (removes it). Until ``finish`` the segment exists only under a temporary name."""

    def __init__(self, path: Path, fmt: OutputFormat, chunk: Chunk, job: str) -> None:
        self.fmt, self.chunk = fmt, chunk
        self.added = 0
        self._stack = contextlib.ExitStack()
        temp = self._stack.enter_context(atomic_path(path))
        self._container = av.open(str(temp), "w", format=SEGMENT_FORMAT, container_options={"fflags": "+bitexact"})
        self._stack.callback(self._container.close)
        self._container.metadata.update({TAG_JOB: job, TAG_FRAMES: chunk.tag})
        stream = self._container.add_stream(CODECS[fmt.settings.codec].encoder, rate=fmt.frame_rate or 25)
        assert isinstance(stream, av.video.stream.VideoStream)
        stream.width, stream.height, stream.pix_fmt = fmt.width, fmt.height, fmt.layout.pix_fmt
        context = stream.codec_context
        context.time_base = fmt.time_base
        context.colorspace = fmt.colour.matrix
        context.color_range = 2 if fmt.colour.full_range else 1
        context.color_primaries = fmt.colour.primaries
        context.color_trc = fmt.colour.transfer
        if fmt.layout.family == "yuv" and (fmt.layout.sub_x or fmt.layout.sub_y):
            context.chroma_sample_location = fmt.colour.chroma_location
        if fmt.sample_aspect_ratio:
            context.sample_aspect_ratio = fmt.sample_aspect_ratio
        configure_encoder(stream, fmt.settings)
        self._stream = stream

    def add(self, planes: list[np.ndarray], pts: int) -> None:
        """Encode the next frame (``pts`` in the source's time base)."""
        frame = new_frame(planes, self.fmt.layout, self.fmt.width, self.fmt.height)
        frame.pts, frame.time_base = pts, self.fmt.time_base
        frame.colorspace = self.fmt.colour.matrix
        frame.color_range = 2 if self.fmt.colour.full_range else 1
        self._mux(self._stream.encode(frame))
        self.added += 1

    def finish(self) -> None:
        """Flush the encoder and publish the segment under its final name."""
        if self.added != self.chunk.frames:
            raise RuntimeError(f"segment {self.chunk.number} got {self.added} of {self.chunk.frames} frames")
        self._mux(self._stream.encode(None))
        self._stack.close()

    def _mux(self, packets: list[av.Packet[av.video.stream.VideoStream]]) -> None:
        """Write the encoder's packets. In a segment too short for any reordering, decode order is display order,
        so each packet's dts is its pts: x265 (before its fix #936) leaves the dts of sessions under three frames
        uninitialised (heap garbage, which the muxer refuses), and the last chunk of a video can be that short."""
        if self.chunk.frames < _REORDER_FROM:
            for packet in packets:
                if packet.pts is not None:
                    packet.dts = packet.pts
        self._container.mux(packets)

    def abort(self) -> None:
        """Drop the unfinished segment (its temporary file is removed)."""
        with contextlib.suppress(Exception):  # already failing or cancelled: the first error is the one to report
            self._stack.__exit__(Cancelled, Cancelled("segment aborted"), None)


def check_segment(path: Path, chunk: Chunk, job: str) -> str | None:
    """Why the segment at ``path`` cannot be trusted for ``chunk`` of ``job``, or None when it holds exactly the
    chunk's frames, all decodable. Decodes every frame (FFmpeg's decoders are far faster than the upscaling)."""
    errors = error_log()
    try:
        with av.open(str(path)) as container:
            tags = {key.upper(): value for key, value in container.metadata.items()}
            if tags.get(TAG_JOB) != job:
                return "made by another job"
            if tags.get(TAG_FRAMES) != chunk.tag:
                return f"holds frames {tags.get(TAG_FRAMES)}, not {chunk.tag}"
            if not container.streams.video:
                return "has no video stream"
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            before = errors.count(stream.codec_context.name)
            frames = sum(1 for _ in container.decode(stream))
            if errors.count(stream.codec_context.name) != before:
                return f"does not decode cleanly ({errors.last(stream.codec_context.name)})"
    except (av.error.FFmpegError, OSError) as exc:
        return f"cannot be read ({exc})"
    if frames != chunk.frames:
        return f"decodes to {frames} frames, not {chunk.frames}"
    return None
