"""What a video file holds, checked before any work: its main video stream, pixel layout and colour, the other
streams to copy, whether it is interlaced, and the refusals (not a video, no video stream, a format the path
cannot carry)."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import av.error

from ..errors import VideoError
from .colour import Colour, PixelLayout, source_colour
from .frames import layout_of

__all__ = ["StreamInfo", "VideoInfo", "fraction", "probe", "source_fingerprint", "video_stream"]

log = logging.getLogger("hat_plugin.video")

# AVFieldOrder: TT, BB, TB (top coded first, bottom shown first), BT; named by the field shown first
_FIELD_ORDERS = {2: "top field first", 3: "bottom field first", 4: "bottom field first", 5: "top field first"}
_HDR_TRANSFERS = {16: "PQ (HDR10)", 18: "HLG"}


@dataclass(frozen=True)
class StreamInfo:
    """A stream other than the one upscaled: copied as it is."""

    index: int
    type: str
    codec: str
    language: str = ""

    def describe(self) -> str:
        """E.g. ``#1 audio aac (eng)``."""
        language = f" ({self.language})" if self.language else ""
        return f"#{self.index} {self.type} {self.codec}{language}"


@dataclass(frozen=True)
class VideoInfo:
    """The facts about a source video that planning, decoding and muxing need."""

    path: Path
    container: str
    stream_index: int
    codec: str
    width: int
    height: int
    pix_fmt: str
    layout: PixelLayout
    colour: Colour
    time_base: Fraction
    frame_rate: Fraction | None
    frames_declared: int
    duration: float | None
    sample_aspect_ratio: Fraction | None
    others: tuple[StreamInfo, ...] = field(default_factory=tuple)
    rotation: int = 0
    """Display rotation in degrees (phone videos), kept as a tag: the pictures are upscaled as stored."""
    field_order: str = ""
    """``top field first``, ``bottom field first`` or ``interlaced`` when the stream or its first frame says it is
    interlaced; empty for progressive video."""

    def describe(self) -> str:
        """One line for the user: size, codec, pixel format, colour, rate and what else is in the file."""
        rate = f", {float(self.frame_rate):.3f} fps" if self.frame_rate else ""
        kinds: dict[str, int] = {}
        for stream in self.others:
            kinds[stream.type] = kinds.get(stream.type, 0) + 1
        extra = "".join(f", {count} {kind}" for kind, count in kinds.items())
        colour = self.colour.describe(self.layout)
        scan = f", interlaced ({self.field_order})" if self.field_order else ""
        return f"{self.width}x{self.height} {self.codec} {self.pix_fmt} ({colour}){scan}{rate}{extra}"


def fraction(value: object, default: Fraction | None = None) -> Fraction | None:
    """An FFmpeg rational (``AVRational``, as PyAV returns it) as a ``Fraction``; ``default`` for 0 or None."""
    numerator = getattr(value, "numerator", None)
    denominator = getattr(value, "denominator", None)
    if not isinstance(numerator, int) or not isinstance(denominator, int) or not numerator or not denominator:
        return default
    return Fraction(numerator, denominator)


def video_stream(container: av.container.InputContainer, index: int) -> av.video.stream.VideoStream:
    """Stream ``index`` of ``container``, which must be a video stream."""
    stream = container.streams[index]
    if not isinstance(stream, av.video.stream.VideoStream):
        raise VideoError(f"{container.name}: stream #{index} is not a video stream")
    return stream


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Open ``path``, pick its main video stream and check that it can be upscaled frame by frame.

    Decodes the first frame (to learn the true pixel format and interlacing). Raises ``VideoError`` with a
    one-line reason a user can act on.
    """
    path = Path(path)
    try:
        container = av.open(str(path))
    except FileNotFoundError:
        raise VideoError(f"{path}: no such file") from None
    except PermissionError:
        raise VideoError(f"{path}: permission denied") from None
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise VideoError(f"{path}: not a video file FFmpeg can read ({_reason(exc)})") from None
    with container:
        stream = _main_video(container, path)
        if stream is None:
            kinds = sorted({s.type for s in container.streams})
            held = f"it holds {' and '.join(kinds)} only" if kinds else "it holds no streams"
            raise VideoError(f"{path}: no video stream ({held})")
        context = stream.codec_context
        first = _first_frame(container, stream, path)
        field_order = int(context.field_order or 0)
        interlaced = bool(first.interlaced_frame) or field_order in _FIELD_ORDERS
        order = _FIELD_ORDERS.get(field_order, "interlaced") if interlaced else ""
        try:
            layout, jpeg_range = layout_of(first.format)
            colour = source_colour(
                layout,
                first.width,
                first.height,
                matrix=_declared(first.colorspace, context.colorspace, 2),
                colour_range=_declared(first.color_range, context.color_range, 0),
                chroma_location=_declared(first.chroma_location, context.chroma_sample_location, 0),
                primaries=_declared(first.color_primaries, context.color_primaries, 2),
                transfer=_declared(first.color_trc, context.color_trc, 2),
                jpeg_range=jpeg_range,
            )
        except VideoError as exc:
            raise VideoError(f"{path}: {exc}") from None
        if colour.transfer in _HDR_TRANSFERS:
            log.warning(
                "%s is HDR (%s): HAT was trained on SDR pictures, so it sees the coded values; the output keeps the "
                "HDR tags",
                path,
                _HDR_TRANSFERS[colour.transfer],
            )
        others = tuple(_other(s) for s in container.streams if s.index != stream.index)
        duration = float(container.duration) / av.time_base if container.duration else None
        sar = stream.sample_aspect_ratio
        return VideoInfo(
            path=path,
            container=container.format.name,
            stream_index=stream.index,
            codec=context.name,
            width=first.width,
            height=first.height,
            pix_fmt=first.format.name,
            layout=layout,
            colour=colour,
            time_base=fraction(stream.time_base, Fraction(1, 1000)) or Fraction(1, 1000),
            frame_rate=fraction(stream.average_rate),
            frames_declared=int(stream.frames or 0),
            duration=duration,
            sample_aspect_ratio=fraction(sar),
            others=others,
            rotation=int(first.rotation or 0),
            field_order=order,
        )


def _main_video(container: av.container.InputContainer, path: Path) -> av.video.stream.VideoStream | None:
    """The video stream to upscale: the default-flagged one, else the first; cover pictures do not count."""
    candidates = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
    if not candidates:
        return None
    chosen = next((s for s in candidates if s.disposition & av.stream.Disposition.default), candidates[0])
    if len(candidates) > 1:
        log.warning("%s has %d video streams: upscaling #%d, copying the others", path, len(candidates), chosen.index)
    return chosen


def _first_frame(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: Path
) -> av.VideoFrame:
    if stream.codec_context is None or not stream.codec_context.codec:
        raise VideoError(f"{path}: the video codec cannot be decoded by this FFmpeg build")
    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as exc:
        raise VideoError(f"{path}: the video stream cannot be decoded ({_reason(exc)})") from None
    raise VideoError(f"{path}: the video stream has no frames")


def _other(stream: av.stream.Stream) -> StreamInfo:
    context = stream.codec_context
    codec = context.name if context is not None else str(stream.metadata.get("mimetype", "data"))
    return StreamInfo(stream.index, stream.type, codec, stream.metadata.get("language", ""))


def _declared(on_frame: object, on_stream: object, unspecified: int) -> int:
    """A colour property as the frame declares it, else as the stream does, else ``unspecified``."""
    for value in (on_frame, on_stream):
        if isinstance(value, int) and value != unspecified:
            return int(value)
    return unspecified


def _reason(exc: BaseException) -> str:
    """FFmpeg's reason without the errno and file name PyAV adds."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).strip().rstrip(".") or type(exc).__name__


def source_fingerprint(path: Path) -> str:
    """A short identity of a file's content (size and hashes of its first and last MiB), stable when the file is
    copied or moved to another machine, so a work folder is resumed only for the same source."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as file:
        digest.update(file.read(1 << 20))
        if size > 2 << 20:
            file.seek(size - (1 << 20))
            digest.update(file.read(1 << 20))
    return digest.hexdigest()[:32]
