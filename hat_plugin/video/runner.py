"""Upscaling chunks on this machine: decoding, inference and encoding overlap in a pipeline.

    decoder thread --(planes)--> inference threads (``streams``) --(planes)--> encoder thread

The calling thread only hands frames around. Inference runs on worker threads even for one stream: on the CPU,
PyTorch run from the main thread next to busy codec threads took 2-4x the CPU time for the same frames on the
2-core machine the benchmarks ran on (``docs/benchmarks.md``), on a worker thread it did not.

Queues between the stages are short, so memory stays the same for a clip or a film. The decoder runs through
consecutive chunks without seeking again; the encoder starts a new segment at each chunk and publishes it when
its last frame is in. A failure or cancel anywhere stops all three; finished segments stay, the unfinished one
is removed.
"""

from __future__ import annotations

import collections
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..frame_upscaler import FrameUpscaler
from ..progress import CancelCheck, raise_if_cancelled
from .colour import ColourConverter
from .decode import SourceReader
from .deinterlace import deinterlaced, output_index, source_range
from .index import FrameIndex
from .probe import VideoInfo
from .segment import Chunk, OutputFormat, SegmentWriter

if TYPE_CHECKING:
    from ..engine import Upscaler

__all__ = ["frame_upscaler", "run_chunks"]

_POLL = 0.2  # seconds between checks for a stopped pipeline while a queue is full or empty
_DONE = object()
Planes = list[np.ndarray]


def frame_upscaler(upscaler: Upscaler, info: VideoInfo, fmt: OutputFormat, streams: int = 1) -> FrameUpscaler:
    """One frame's planes in the source layout -> the upscaled frame's planes in the output layout, for
    ``run_chunks`` with as many ``streams``."""
    device = upscaler.device
    source = ColourConverter(info.layout, info.colour, info.width, info.height, device)
    output = ColourConverter(fmt.layout, fmt.colour, fmt.width, fmt.height, device)
    return FrameUpscaler(upscaler, source, output, streams)


@dataclass(frozen=True)
class _Frame:
    """One frame between stages: its chunk, its number in the source, its planes."""

    chunk: Chunk
    number: int
    planes: Planes


class _Stopped(Exception):
    """The encoder stopped the pipeline (its error is raised by ``run_chunks``)."""


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _put(channel: queue.Queue[object], item: object, stop: threading.Event) -> bool:
    """Put ``item``, waiting while the queue is full; False (not put) once ``stop`` is set."""
    while not stop.is_set():
        try:
            channel.put(item, timeout=_POLL)
            return True
        except queue.Full:
            continue
    return False


def _get(channel: queue.Queue[object], stop: threading.Event) -> object:
    """The next item, waiting while the queue is empty; ``_DONE`` once ``stop`` is set."""
    while not stop.is_set():
        try:
            return channel.get(timeout=_POLL)
        except queue.Empty:
            continue
    return _DONE


def run_chunks(
    info: VideoInfo,
    index: FrameIndex,
    fmt: OutputFormat,
    chunks: Sequence[Chunk],
    segment: Callable[[Chunk], Path],
    job: str,
    upscale: Callable[[Planes], Planes],
    *,
    streams: int = 1,
    on_frame: Callable[[Chunk, int], None] | None = None,
    on_chunk: Callable[[Chunk], None] | None = None,
    cancel: CancelCheck = None,
) -> None:
    """Upscale ``chunks`` (in order) into their segments; ``index`` is the source's (``fmt.deinterlace`` says how
    its frames become the chunks' frames). ``on_frame(chunk, frames done in it)`` after each frame
    is upscaled, ``on_chunk(chunk)`` once its segment is published. Raises what stopped the work (``Cancelled``,
    ``DamagedVideoError``, an engine or disk error) after the pipeline is down."""
    if not chunks:
        return
    times = output_index(index, fmt.deinterlace).pts
    stop = threading.Event()
    decoded: queue.Queue[object] = queue.Queue(maxsize=2 + streams)
    encoded: queue.Queue[object] = queue.Queue(maxsize=2 + streams)
    failures: list[BaseException] = []

    def decode() -> None:
        try:
            with SourceReader(info, index) as reader:
                for chunk in chunks:
                    for number, planes in _frames(reader, fmt, chunk):
                        if not _put(decoded, _Frame(chunk, number, planes), stop):
                            return
            _put(decoded, _DONE, stop)
        except BaseException as exc:  # handed to the inference loop, which raises it
            _put(decoded, _Failed(exc), stop)

    def encode() -> None:
        writer: SegmentWriter | None = None
        try:
            while True:
                item = _get(encoded, stop)
                if not isinstance(item, _Frame):
                    return
                if writer is None:
                    writer = SegmentWriter(segment(item.chunk), fmt, item.chunk, job)
                writer.add(item.planes, times[item.number])
                if item.number == item.chunk.stop - 1:
                    done, writer = writer, None
                    done.finish()
                    if on_chunk is not None:
                        on_chunk(item.chunk)
        except BaseException as exc:
            failures.append(exc)
            stop.set()
        finally:
            if writer is not None:
                writer.abort()

    threads = [threading.Thread(target=decode, name="hat-decode"), threading.Thread(target=encode, name="hat-encode")]
    for thread in threads:
        thread.start()
    pool = ThreadPoolExecutor(max_workers=streams, thread_name_prefix="hat-infer")
    finished = False
    try:
        _infer(decoded, encoded, upscale, pool, streams, stop, on_frame, cancel)
        finished = _put(encoded, _DONE, stop)
    finally:
        if not finished:
            stop.set()
        threads[1].join()
        stop.set()
        threads[0].join()
        pool.shutdown(wait=True, cancel_futures=True)
    if failures:
        raise failures[0]


def _frames(reader: SourceReader, fmt: OutputFormat, chunk: Chunk) -> Iterator[tuple[int, Planes]]:
    """The frames of ``chunk``: decoded, or made by the deinterlacer from the source frames around them."""
    if fmt.deinterlace is None:
        yield from reader.frames(chunk.start, chunk.stop)
        return
    total = len(reader.index)
    first, last = source_range(fmt.deinterlace, chunk.start, chunk.stop, total)
    frames = reader.frames(first, last)
    yield from deinterlaced(reader.info, fmt.deinterlace, frames, first, total, chunk.start, chunk.stop)


def _infer(
    decoded: queue.Queue[object],
    encoded: queue.Queue[object],
    upscale: Callable[[Planes], Planes],
    pool: ThreadPoolExecutor,
    streams: int,
    stop: threading.Event,
    on_frame: Callable[[Chunk, int], None] | None,
    cancel: CancelCheck,
) -> None:
    """The middle stage: upscale decoded frames in order, ``streams`` at a time, and hand them to the encoder."""
    pending: collections.deque[tuple[_Frame, Future[Planes]]] = collections.deque()

    def hand_over(frame: _Frame, planes: Planes) -> None:
        if not _put(encoded, _Frame(frame.chunk, frame.number, planes), stop):
            raise _Stopped
        if on_frame is not None:
            on_frame(frame.chunk, frame.number - frame.chunk.start + 1)

    try:
        while True:
            raise_if_cancelled(cancel, "upscaling")
            item = _get(decoded, stop)
            if isinstance(item, _Failed):
                raise item.error
            if not isinstance(item, _Frame):
                break
            pending.append((item, pool.submit(upscale, item.planes)))
            if len(pending) >= streams:
                frame, future = pending.popleft()
                hand_over(frame, future.result())
        while pending:
            frame, future = pending.popleft()
            hand_over(frame, future.result())
    except _Stopped:
        return  # the encoder failed: run_chunks raises its error
