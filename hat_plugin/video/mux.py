"""Joining the finished segments into the output file, with every other stream of the source copied as it is.

Video packets are copied from the segments without re-encoding. Each gets the exact timestamp of its source frame
from the index (the segments' own Matroska timestamps are rounded to milliseconds, so they are only used for the
order), and decode timestamps are laid out again for the whole film: packet ``j`` in decode order gets the
presentation time of frame ``j - D``, where ``D`` is the largest reordering delay in any segment. That keeps them
increasing across segment joins and never after the presentation time.

Audio, subtitle and attachment streams, chapters and metadata are copied from the source (trimmed and shifted
when only a range of frames is upscaled). The output is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import contextlib
import heapq
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from ..errors import OutputError, VideoError
from ..files import atomic_path, describe_os_error
from ..progress import CancelCheck, raise_if_cancelled
from .codecs import CODECS, configure_encoder
from .index import FrameIndex
from .probe import VideoInfo, fraction
from .segment import Chunk, OutputFormat

__all__ = ["OUTPUT_FORMATS", "StreamPlan", "assemble", "container_format", "plan_streams"]

OUTPUT_FORMATS = {".mkv": "matroska", ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".webm": "webm"}
_STALE_TAGS = ("DURATION", "BPS", "NUMBER_OF_FRAMES", "NUMBER_OF_BYTES", "_STATISTICS", "ENCODER")
_REQUIRED = ("audio", "subtitle", "attachment", "video")


def container_format(path: Path) -> str:
    """The FFmpeg muxer for an output file name; ``VideoError`` for an extension the video path does not write."""
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        kinds = ", ".join(sorted(set(OUTPUT_FORMATS)))
        raise VideoError(f"{path}: cannot write {path.suffix or 'a file without extension'}; use one of {kinds}")
    return fmt


def _options(fmt: str) -> dict[str, str]:
    options = {"fflags": "+bitexact"}
    if fmt in ("mp4", "mov"):
        options["movflags"] = "+faststart"
    return options


@dataclass(frozen=True)
class StreamPlan:
    """Which source streams go into the output, and what is left out (with the reason, for a warning)."""

    copied: tuple[int, ...]
    dropped: tuple[str, ...]


def plan_streams(output: Path, info: VideoInfo, fmt: OutputFormat) -> StreamPlan:
    """Check before any work that the output container can hold the new video and copies of the other streams.

    Opens the encoder once on an in-memory file (so a size or pixel format it refuses fails now, not after
    hours), and tries each source stream. A stream that cannot be carried is an error naming it, except data
    streams (timecodes and the like), which are dropped with a warning.
    """
    muxer = container_format(output)
    spec = CODECS[fmt.settings.codec]
    odd = (fmt.layout.sub_x and fmt.width % 2) or (fmt.layout.sub_y and fmt.height % 2)
    if odd and spec.name != "ffv1":
        raise VideoError(
            f"{output}: the upscaled size {fmt.width}x{fmt.height} is odd, which {spec.name} cannot encode with "
            f"{fmt.layout.chroma_name} chroma; set {{pix_fmt}} to yuv444p (or use a model with an even scale)",
            option="pix_fmt",
        )
    scratch = av.open(io.BytesIO(), "w", format=muxer)
    copied: list[int] = []
    dropped: list[str] = []
    try:
        video = scratch.add_stream(spec.encoder, rate=fmt.frame_rate or 25)
        assert isinstance(video, av.video.stream.VideoStream)
        video.width, video.height, video.pix_fmt = fmt.width, fmt.height, fmt.layout.pix_fmt
        video.codec_context.time_base = fmt.time_base
        configure_encoder(video, fmt.settings)
    except ValueError:
        raise VideoError(
            f"{output}: {muxer} files cannot hold {spec.description.split(':')[0]}; choose another {{codec}} or "
            "container",
            option="codec",
        ) from None
    with av.open(str(info.path)) as source:
        for stream in source.streams:
            if stream.index == info.stream_index:
                continue
            try:
                scratch.add_stream_from_template(stream)
                copied.append(stream.index)
            except (ValueError, av.error.FFmpegError):
                what = _describe(stream)
                if stream.type not in _REQUIRED:
                    dropped.append(f"{what}: {muxer} cannot hold it")
                    continue
                raise VideoError(
                    f"{output}: a {muxer} file cannot hold the {what} without converting it; write .mkv instead"
                ) from None
    try:
        scratch.start_encoding()
    except (av.error.FFmpegError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise VideoError(
            f"{output}: {spec.name} cannot encode {fmt.width}x{fmt.height} {fmt.layout.pix_fmt} into {muxer} "
            f"({reason}); try another {{pix_fmt}} or {{codec}}",
            option=("pix_fmt", "codec"),
        ) from None
    finally:
        _close_quietly(scratch)
    return StreamPlan(tuple(copied), tuple(dropped))


def _close_quietly(container: av.container.OutputContainer) -> None:
    with contextlib.suppress(av.error.FFmpegError, RuntimeError, OSError):
        container.close()


def _describe(stream: av.stream.Stream) -> str:
    codec = stream.codec_context.name if stream.codec_context is not None else "data"
    return f"{stream.type} stream #{stream.index} ({codec})"


# ------------------------------------------------------------------------------------------------ joining


@dataclass(frozen=True)
class _Window:
    """The part of the source's timeline that goes into the output, and how far it moves to start at zero."""

    start: Fraction
    stop: Fraction | None
    shift: Fraction

    def keeps(self, time: Fraction) -> bool:
        return time >= self.start and (self.stop is None or time < self.stop)


def assemble(
    output: Path,
    info: VideoInfo,
    index: FrameIndex,
    chunks: Sequence[Chunk],
    segment: Callable[[Chunk], Path],
    streams: StreamPlan,
    *,
    overwrite: bool = True,
    cancel: CancelCheck = None,
) -> int:
    """Write ``output`` from the segments of ``chunks`` (in order, covering one frame range) and the source's
    other streams; returns the number of video frames written. Nothing appears under ``output`` unless the whole
    file was written."""
    first, last = chunks[0].start, chunks[-1].stop
    trimmed = first > 0 or last < len(index)
    shift = index.pts[first] if first > 0 else 0
    tb = index.time_base
    window = _Window(
        Fraction(index.pts[first] * tb) if trimmed else Fraction(-(10**12)),
        Fraction(index.pts[last] * tb) if last < len(index) else None,
        Fraction(shift * tb),
    )
    orders = [_presentation_ranks(segment(chunk), chunk) for chunk in chunks]
    delay = max(max((j - rank for j, rank in enumerate(ranks)), default=0) for ranks in orders)
    times = [pts - shift for pts in index.pts[first:last]]
    muxer = container_format(output)
    try:
        with atomic_path(output, overwrite=overwrite, inputs=(info.path,)) as temp:
            target = av.open(str(temp), "w", format=muxer, container_options=_options(muxer))
            try:
                with av.open(str(info.path)) as source:
                    _write(
                        target,
                        source,
                        info,
                        index,
                        chunks,
                        segment,
                        orders,
                        delay,
                        times,
                        streams,
                        window,
                        trimmed,
                        cancel,
                    )
            finally:
                target.close()
    except av.error.FFmpegError as exc:
        if isinstance(exc, OSError) and exc.errno is not None and exc.errno > 0:
            raise OutputError(f"cannot write {output}: {describe_os_error(exc)}") from None
        raise OutputError(f"cannot write {output}: {exc}") from None
    return last - first


def _write(
    target: av.container.OutputContainer,
    source: av.container.InputContainer,
    info: VideoInfo,
    index: FrameIndex,
    chunks: Sequence[Chunk],
    segment: Callable[[Chunk], Path],
    orders: list[list[int]],
    delay: int,
    times: list[int],
    streams: StreamPlan,
    window: _Window,
    trimmed: bool,
    cancel: CancelCheck,
) -> None:
    """Add the streams, metadata and chapters, then interleave the video packets with the copied ones."""
    source_video = source.streams[info.stream_index]
    mapping: dict[int, av.stream.Stream] = {}
    with av.open(str(segment(chunks[0]))) as first_segment:
        template = first_segment.streams.video[0]
        extradata = template.codec_context.extradata
        for number in range(len(source.streams)):
            if number == info.stream_index:
                video = target.add_stream_from_template(template, opaque=True)
                video.time_base = index.time_base
                if info.rotation:
                    video.set_display_rotation(info.rotation)
                _copy_stream_facts(source_video, video, stale=True)
                mapping[number] = video
            elif number in streams.copied:
                original = source.streams[number]
                mapping[number] = target.add_stream_from_template(original)
                _copy_stream_facts(original, mapping[number], stale=trimmed)
    target.metadata.update({k: v for k, v in source.metadata.items() if k.upper() not in ("ENCODER", "DURATION")})
    chapters = _chapters(source, window)
    if chapters:
        target.set_chapters(chapters)
    copied = [source.streams[n] for n in streams.copied if source.streams[n].type != "attachment"]
    video_packets = _video_packets(video, index, chunks, segment, orders, delay, times, extradata, cancel)
    others = _copied_packets(source, copied, mapping, window) if copied else iter(())
    for _, _, packet in heapq.merge(video_packets, others, key=lambda item: (item[0], item[1])):
        target.mux(packet)


def _copy_stream_facts(original: av.stream.Stream, copy: av.stream.Stream, stale: bool) -> None:
    """Language, title and the other tags, and the disposition (default, forced, ...); tags that describe the
    old encoding (durations, bit rates, frame counts) are left for the muxer to write anew."""
    copy.metadata.clear()
    copy.metadata.update(
        {
            key: value
            for key, value in original.metadata.items()
            if not (stale and key.upper().startswith(_STALE_TAGS)) and key.upper() != "DURATION"
        }
    )
    copy.disposition = original.disposition


def _chapters(source: av.container.InputContainer, window: _Window) -> list[Any]:
    """The source's chapters that overlap the window, clipped to it and moved to start with it."""
    chapters = []
    for chapter in source.chapters():
        tb = fraction(chapter["time_base"]) or Fraction(1, 1000)
        start, end = chapter["start"] * tb, chapter["end"] * tb
        low = max(start, window.start) if window.start > 0 else start
        high = min(end, window.stop) if window.stop is not None else end
        if high <= low:
            continue
        moved = dict(chapter)
        moved["start"] = int((low - window.shift) / tb)
        moved["end"] = int((high - window.shift) / tb)
        chapters.append(moved)
    return chapters


def _presentation_ranks(path: Path, chunk: Chunk) -> list[int]:
    """For each packet of a segment in decode order, the rank of its timestamp among the segment's frames."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        found = [packet.pts for packet in container.demux(stream) if packet.size]
    stamps = [p for p in found if p is not None]
    if len(stamps) != chunk.frames or len(found) != chunk.frames:
        raise VideoError(f"{path}: holds {len(found)} packets for a chunk of {chunk.frames} frames")
    order = sorted(range(len(stamps)), key=lambda j: stamps[j])
    ranks = [0] * len(stamps)
    for rank, j in enumerate(order):
        ranks[j] = rank
    if len(set(stamps)) != len(stamps):
        raise VideoError(f"{path}: two frames share a timestamp (frames less than 1 ms apart)")
    return ranks


def _video_packets(
    stream: av.stream.Stream,
    index: FrameIndex,
    chunks: Sequence[Chunk],
    segment: Callable[[Chunk], Path],
    orders: list[list[int]],
    delay: int,
    times: list[int],
    extradata: bytes | None,
    cancel: CancelCheck,
) -> Iterator[tuple[Fraction, int, av.Packet[Any]]]:
    """The segments' packets with exact timestamps, as ``(decode time, 0, packet)`` in decode order."""
    tb = index.time_base
    step = times[1] - times[0] if len(times) > 1 else 1
    offset = chunks[0].start
    decoded = 0
    for chunk, ranks in zip(chunks, orders, strict=True):
        raise_if_cancelled(cancel, "joining")
        with av.open(str(segment(chunk))) as container:
            seg_stream = container.streams.video[0]
            if seg_stream.codec_context.extradata != extradata:
                raise VideoError(f"{segment(chunk)}: encoded with other settings than the first segment")
            packets: Iterator[av.Packet[Any]] = (p for p in container.demux(seg_stream) if p.size)
            for packet, rank in zip(packets, ranks, strict=True):
                frame = chunk.start - offset + rank
                pts = times[frame]
                dts = times[decoded - delay] if decoded >= delay else times[0] - (delay - decoded) * step
                packet.stream = stream
                packet.time_base = tb
                packet.pts, packet.dts = pts, dts
                packet.duration = index.duration(chunk.start + rank)
                yield Fraction(dts * tb), 0, packet
                decoded += 1


def _copied_packets(
    source: av.container.InputContainer,
    streams: list[av.stream.Stream],
    mapping: dict[int, av.stream.Stream],
    window: _Window,
) -> Iterator[tuple[Fraction, int, av.Packet[Any]]]:
    """The other streams' packets inside the window, moved by its shift, as ``(time, 1, packet)``."""
    last = Fraction(0)
    for packet in source.demux(*streams):
        if packet.size == 0:
            continue
        tb = fraction(packet.time_base) or Fraction(1, 1000)
        stamp = packet.pts if packet.pts is not None else packet.dts
        if stamp is not None and not window.keeps(stamp * tb):
            continue
        if window.shift:
            moved = round(window.shift / tb)
            if packet.pts is not None:
                packet.pts -= moved
            if packet.dts is not None:
                packet.dts -= moved
        decode = packet.dts if packet.dts is not None else packet.pts
        last = decode * tb if decode is not None else last
        packet.stream = mapping[packet.stream_index]
        yield last, 1, packet
