"""Deinterlacing before the upscale, with FFmpeg's own filters (``bwdif``, ``yadif``) through PyAV's filter graph.

HAT on interlaced pictures would upscale the combing, so an interlaced source is deinterlaced first: ``auto``
(the default) does it when the stream or its frames say interlaced, ``bwdif``/``yadif`` always, ``off`` never.
At ``frame`` rate every frame becomes one progressive frame; at ``field`` rate every field does (twice the frames,
the motion of 50i kept as 50p). Both filters look at the previous, the current and the next frame only, so a
range of output frames is made exactly by filtering from two source frames before it: chunks and resumed runs
give the frames a single pass gives. Output frame ``k`` is source frame ``k`` (``k // 2`` at field rate, its
first field when even).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import av.error
import av.filter
import numpy as np

from ..errors import OptionError
from .frames import new_frame, read_planes
from .index import FrameIndex
from .probe import VideoInfo

__all__ = ["MODES", "RATES", "Deinterlace", "choose", "looks_telecined", "output_index"]

MODES = ("auto", "off", "bwdif", "yadif")
RATES = ("frame", "field")
_CONTEXT = 2  # source frames filtered before a range (the filters look one frame back; one more for safety)
_TELECINE_FRAMES = 120  # frames idet looks at
_PULLDOWN = (0.25, 0.55)  # share of frames with a repeated field that 3:2 pulldown gives (2 in 5)


@dataclass(frozen=True)
class Deinterlace:
    """Which filter, at which rate, with which field first (``tff`` or ``bff``)."""

    filter: str
    rate: str
    parity: str

    @property
    def factor(self) -> int:
        """Output frames per source frame."""
        return 2 if self.rate == "field" else 1

    def describe(self) -> str:
        """E.g. ``bwdif, field rate, top field first``."""
        first = "top" if self.parity == "tff" else "bottom"
        return f"{self.filter}, {self.rate} rate, {first} field first"


def choose(info: VideoInfo, mode: str, rate: str) -> Deinterlace | None:
    """The deinterlacing a job does for ``info`` with the options ``deinterlace`` and ``deinterlace_rate``."""
    if mode not in MODES:
        raise OptionError(f"{{deinterlace}} {mode!r}: choose one of {', '.join(MODES)}", option="deinterlace")
    if rate not in RATES:
        raise OptionError(f"{{deinterlace_rate}} {rate!r}: choose one of {', '.join(RATES)}", option="deinterlace_rate")
    if mode == "off" or (mode == "auto" and not info.field_order):
        return None
    return Deinterlace("bwdif" if mode == "auto" else mode, rate, "bff" if "bottom" in info.field_order else "tff")


def looks_telecined(info: VideoInfo) -> bool:
    """Whether the interlaced video ``info`` is telecined film (3:2 pulldown: 24 film frames spread over 30
    interlaced frames, 2 in 5 holding a repeated field), by FFmpeg's ``idet`` over its first frames."""
    graph = _graph(info, info.pix_fmt, "idet")
    last: av.VideoFrame | None = None
    try:
        with av.open(str(info.path)) as container:
            for number, frame in enumerate(container.decode(container.streams[info.stream_index])):
                if number >= _TELECINE_FRAMES:
                    break
                assert isinstance(frame, av.VideoFrame)
                frame.pts = number
                graph.push(frame)
                for out in _pulled(graph):
                    last = out
    except (av.error.FFmpegError, ValueError):
        return False
    if last is None:
        return False
    counts = {kind: float(last.metadata.get(f"lavfi.idet.repeated.{kind}", 0)) for kind in ("neither", "top", "bottom")}
    total = sum(counts.values())
    return total >= 20 and _PULLDOWN[0] <= (counts["top"] + counts["bottom"]) / total <= _PULLDOWN[1]


def output_index(index: FrameIndex, deinterlace: Deinterlace | None) -> FrameIndex:
    """The frames a job writes: the source's, or at field rate two per source frame, the second shown half-way
    (in a time base twice as fine, so the times stay exact)."""
    if deinterlace is None or deinterlace.factor == 1:
        return index
    pts: list[int] = []
    for number, stamp in enumerate(index.pts):
        pts += [2 * stamp, 2 * stamp + index.duration(number)]
    return FrameIndex(
        index.time_base / 2,
        tuple(pts),
        tuple(2 * k for k in index.keyframes),
        last_duration=index.last_duration,
        declared_seconds=index.declared_seconds,
        timing=index.timing,
    )


def deinterlaced(
    info: VideoInfo,
    deinterlace: Deinterlace,
    frames: Iterator[tuple[int, list[np.ndarray]]],
    first: int,
    total: int,
    start: int,
    stop: int,
) -> Iterator[tuple[int, list[np.ndarray]]]:
    """Output frames ``[start, stop)`` from the source frames ``frames`` (numbered, in order, from ``first``; the
    last is the source's frame ``total - 1`` or one past what ``stop`` needs)."""
    mode = "send_field" if deinterlace.rate == "field" else "send_frame"
    graph = _graph(info, info.layout.pix_fmt, deinterlace.filter, f"mode={mode}:parity={deinterlace.parity}:deint=all")
    outputs = _filtered(graph, info, frames)
    for produced, planes in enumerate(outputs, start=first * deinterlace.factor):
        if produced >= stop:
            outputs.close()  # no more source frames are read or filtered
            return
        if produced >= start:
            yield produced, planes


def _graph(info: VideoInfo, pix_fmt: str, name: str, args: str | None = None) -> av.filter.Graph:
    """A configured filter graph: ``info``'s pictures in ``pix_fmt`` (timestamps counted in frames) -> the FFmpeg
    filter ``name`` with ``args`` -> out."""
    graph = av.filter.Graph()
    source = graph.add_buffer(width=info.width, height=info.height, format=pix_fmt, time_base=Fraction(1, 1))
    node = graph.add(name, args)
    sink = graph.add("buffersink")
    source.link_to(node)
    node.link_to(sink)
    graph.configure()
    return graph


def _filtered(
    graph: av.filter.Graph, info: VideoInfo, frames: Iterator[tuple[int, list[np.ndarray]]]
) -> Generator[list[np.ndarray]]:
    """The planes of every frame ``graph`` gives while ``frames`` (numbered) go in, then of those it still held."""
    for number, planes in frames:
        picture = new_frame(planes, info.layout, info.width, info.height)
        picture.pts = number
        graph.push(picture)
        yield from (read_planes(out, info.layout) for out in _pulled(graph))
    graph.push(None)
    yield from (read_planes(out, info.layout) for out in _pulled(graph))


def _pulled(graph: av.filter.Graph) -> Iterator[av.VideoFrame]:
    """The frames ``graph`` has ready now (after ``push(None)``: all it still holds)."""
    while True:
        try:
            frame = graph.pull()
        except (av.error.BlockingIOError, av.error.EOFError):
            return
        assert isinstance(frame, av.VideoFrame)
        yield frame


def source_range(deinterlace: Deinterlace, start: int, stop: int, total: int) -> tuple[int, int]:
    """The source frames to filter for output frames ``[start, stop)``."""
    first = max(0, start // deinterlace.factor - _CONTEXT)
    last = min(total, -(-stop // deinterlace.factor) + 1)
    return first, last
