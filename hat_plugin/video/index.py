"""The frame index of a video, made by decoding it once: frame ``k`` is the ``k``-th picture the decoder outputs.

That is what a player shows, and the identity the frame-exact VapourSynth sources use (bestsource decodes a file
linearly once and keeps a hash of every frame to verify its seeks). Packet timestamps are not trusted for it: an
AVI with packed B-frames, an MP4 whose stored timestamps are in decode order, AVI null frames and broken muxers
all give packet or decoder timestamps that are out of order, doubled or missing. For each output frame the index
keeps:

- a presentation time, strictly increasing (``timing`` says where it came from): the decoder's timestamps when
  they increase; the same set sorted when only their order is wrong; the container's packet timestamps sorted
  when those are the consistent set; else the decoder's timestamps repaired (a missing or backward one becomes
  the previous one plus a frame), so duration, variable frame rate and A/V sync are kept where the file has them;
  a stream without any timestamps (``.h264``, ``.m2v``) is timed by its frame rate;
- whether decoding may start there (the decoder's keyframes), with the timestamp a seek to it asks for;
- a short hash of the decoded picture, so a seek is verified by content (``decode.py``), never by a timestamp;
- which frames came out of damaged data (concealed by the decoder, or following a picture that was lost), and
  how long the container said the video is, so a truncated file is noticed.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
import av.error
import numpy as np

from ..errors import VideoError
from ..progress import CancelCheck, raise_if_cancelled
from .ffmpeg_log import error_log
from .frames import read_planes
from .probe import VideoInfo, fraction, video_stream

__all__ = ["FrameIndex", "build_index", "frame_hash", "timecode"]

log = logging.getLogger("hat_plugin.video")

_FORMAT = 2
_HASH_BYTES = 8
_DURATION_TAG = re.compile(r"^(\d+):(\d\d):(\d\d(?:\.\d+)?)$")


def frame_hash(planes: list[np.ndarray]) -> str:
    """A short hash of a decoded picture's samples (its planes as ``read_planes`` returns them)."""
    digest = hashlib.blake2b(digest_size=_HASH_BYTES)
    for plane in planes:
        digest.update(np.ascontiguousarray(plane).data)
    return digest.hexdigest()


@dataclass(frozen=True)
class FrameIndex:
    """Every output frame of the decoder, in display order: timestamps (``time_base`` units, increasing),
    keyframes with their seek timestamps, picture hashes, damaged frames, and the declared length."""

    time_base: Fraction
    pts: tuple[int, ...]
    keyframes: tuple[int, ...]
    hashes: tuple[str, ...] = ()
    seek_pts: tuple[int, ...] = ()
    """For each keyframe, the timestamp a seek asks the container for (the file's own, as decoded)."""
    last_duration: int = 1
    damaged: tuple[int, ...] = ()
    """Frames decoded from damaged data (concealed), or the first frame after a picture that could not be decoded."""
    declared_seconds: float | None = None
    """How long the container says the video is (None when it does not say)."""
    timing: str = "decoder"
    """Where ``pts`` came from: ``decoder``, ``reordered``, ``container``, ``repaired`` or ``rate`` (see the module)."""
    _positions: dict[str, list[int]] = field(default_factory=dict, compare=False, repr=False)

    def __len__(self) -> int:
        return len(self.pts)

    def frame_at(self, pts: int) -> int:
        """The number of the first frame whose timestamp is ``pts`` or later."""
        return bisect.bisect_left(self.pts, pts)

    def seek_points(self, frame: int) -> list[int]:
        """Keyframes to try starting the decoder from to reach ``frame``, best first: the last keyframe at or
        before it, then earlier ones (a margin for open GOPs and imprecise demuxers). Frame 0 is never in it:
        starting from the beginning needs no seek."""
        position = bisect.bisect_right(self.keyframes, frame) - 1
        points = [self.keyframes[p] for p in (position, position - 1, position - 3) if p >= 0]
        return [p for p in dict.fromkeys(points) if p > 0]

    def seek_timestamp(self, keyframe: int) -> int:
        """The timestamp to seek to for keyframe ``keyframe`` (a frame number listed in ``keyframes``)."""
        return self.seek_pts[bisect.bisect_left(self.keyframes, keyframe)]

    def frames_with_hash(self, value: str) -> list[int]:
        """The frames whose picture has the hash ``value`` (in order)."""
        if not self._positions and self.hashes:
            for number, digest in enumerate(self.hashes):
                self._positions.setdefault(digest, []).append(number)
        return self._positions.get(value, [])

    def seconds(self, frame: int) -> float:
        """Presentation time of ``frame`` in seconds (the end of the video for ``frame == len``)."""
        if frame >= len(self.pts):
            return float((self.pts[-1] + self.last_duration) * self.time_base) if self.pts else 0.0
        return float(self.pts[frame] * self.time_base)

    def duration(self, frame: int) -> int:
        """How long ``frame`` is shown, in ``time_base`` units."""
        if frame + 1 < len(self.pts):
            return self.pts[frame + 1] - self.pts[frame]
        return self.last_duration

    def decoded_seconds(self) -> float:
        """How long the decoded frames last, from the first frame's time to the end of the last one."""
        return self.seconds(len(self.pts)) - self.seconds(0) if self.pts else 0.0

    def missing_seconds(self) -> float:
        """How much shorter the decoded video is than the container declares (0 when it is not shorter by more
        than three frames and 1 %, which rounding and encoders' lost last frames explain)."""
        if self.declared_seconds is None or not self.pts:
            return 0.0
        decoded = self.decoded_seconds()
        frame = decoded / len(self.pts)
        missing = self.declared_seconds - decoded
        return missing if missing > max(3 * frame, 0.01 * self.declared_seconds) else 0.0

    def to_json(self) -> str:
        """The index as JSON, for the work folder (so a resumed job does not decode the source again)."""
        return json.dumps(
            {
                "format": _FORMAT,
                "time_base": [self.time_base.numerator, self.time_base.denominator],
                "pts": list(self.pts),
                "keyframes": list(self.keyframes),
                "hashes": list(self.hashes),
                "seek_pts": list(self.seek_pts),
                "last_duration": self.last_duration,
                "damaged": list(self.damaged),
                "declared_seconds": self.declared_seconds,
                "timing": self.timing,
            },
            separators=(",", ":"),
        )

    @staticmethod
    def from_json(text: str) -> FrameIndex:
        """Read ``to_json``'s output; ``ValueError`` when it is not one (an older format included)."""
        data: dict[str, Any] = json.loads(text)
        if data.get("format") != _FORMAT:
            raise ValueError("unknown frame index format")
        num, den = data["time_base"]
        index = FrameIndex(
            Fraction(num, den),
            tuple(data["pts"]),
            tuple(data["keyframes"]),
            tuple(data["hashes"]),
            tuple(data["seek_pts"]),
            data["last_duration"],
            tuple(data["damaged"]),
            data["declared_seconds"],
            data["timing"],
        )
        if not (len(index.hashes) == len(index.pts) and len(index.seek_pts) == len(index.keyframes)):
            raise ValueError("inconsistent frame index")
        return index


def timecode(seconds: float) -> str:
    """``1:02:03.040`` style time for messages."""
    minutes, secs = divmod(max(seconds, 0.0), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:06.3f}" if hours else f"{minutes}:{secs:06.3f}"


@dataclass
class _Pass:
    """What one decoding pass collects."""

    raw: list[int | None] = field(default_factory=list)
    durations: list[int] = field(default_factory=list)
    keys: list[bool] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    damaged: list[int] = field(default_factory=list)
    packets: list[int] = field(default_factory=list)
    size: tuple[int, int] | None = None


def build_index(info: VideoInfo, cancel: CancelCheck = None) -> FrameIndex:
    """Decode the video stream of ``info`` once and index every frame it outputs. Damaged data does not stop it
    (the frames are listed in ``damaged``); ``VideoError`` when no frame decodes or the picture size changes."""
    errors = error_log()
    found = _Pass()
    with av.open(str(info.path)) as container:
        stream = video_stream(container, info.stream_index)
        stream.thread_type = "SLICE"  # an error FFmpeg logs belongs to the packet being decoded
        time_base = fraction(stream.time_base) or Fraction(1, 1000)
        names = (stream.codec_context.name, container.format.name)
        declared = _declared_seconds(container, stream)
        rate = fraction(stream.average_rate) or fraction(stream.guessed_rate)
        packets = container.demux(stream)
        while True:
            if len(found.raw) % 256 == 0:
                raise_if_cancelled(cancel, "indexing")
            before = errors.count(*names)
            try:
                packet = next(packets)
            except StopIteration:
                break
            except av.error.FFmpegError:
                found.damaged.append(len(found.raw))  # the container is damaged here: what follows is lost
                with contextlib.suppress(av.error.FFmpegError):
                    _add(info, found, stream.codec_context.decode(None), False)  # the frames still in the decoder
                break
            if packet.size and not packet.is_discard:
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is not None:
                    found.packets.append(int(stamp))
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                frames = []
                found.damaged.append(len(found.raw))
            damaged = packet.is_corrupt or errors.count(*names) != before
            _add(info, found, frames, damaged)
    if not found.raw:
        raise VideoError(f"{info.path}: no frame of the video stream can be decoded")
    return _finish(info, time_base, rate, declared, found)


def _add(info: VideoInfo, found: _Pass, frames: list[av.VideoFrame], damaged: bool) -> None:
    """Record decoded frames; ``damaged`` marks them (or, when there are none, the next one) as damaged."""
    if damaged and not frames:
        found.damaged.append(len(found.raw))
    for frame in frames:
        size = (frame.width, frame.height)
        if found.size is None:
            found.size = size
        elif size != found.size:
            raise VideoError(
                f"{info.path}: the picture size changes at frame {len(found.raw)} ({found.size[0]}x{found.size[1]} "
                f"to {size[0]}x{size[1]}); split the video where the size changes and upscale each part"
            )
        if damaged or frame.is_corrupt:
            found.damaged.append(len(found.raw))
        found.raw.append(None if frame.pts is None else int(frame.pts))
        found.durations.append(int(frame.duration or 0))
        found.keys.append(bool(frame.key_frame))
        found.hashes.append(frame_hash(read_planes(frame, info.layout)))


def _declared_seconds(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """The video's length as the container declares it: the stream's (its header, else the ``DURATION`` tag
    Matroska muxers write per track), else the file's."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = _DURATION_TAG.match(str(stream.metadata.get("DURATION", stream.metadata.get("duration", ""))))
    if tag is not None:
        hours, minutes, seconds = tag.groups()
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    if container.duration:
        return float(container.duration) / av.time_base
    return None


def _finish(
    info: VideoInfo, time_base: Fraction, rate: Fraction | None, declared: float | None, found: _Pass
) -> FrameIndex:
    step = max(1, round(1 / (rate * time_base))) if rate else 1
    pts, timing = _timestamps(found.raw, found.packets, step)
    if timing == "repaired":
        log.warning(
            "%s: the video's timestamps are out of order or missing; they were rebuilt from the frame rate where "
            "needed (check the audio sync of the result)",
            info.path,
        )
    keyframes = [0]
    seek_pts = [found.raw[0] if found.raw[0] is not None else pts[0]]
    for number in range(1, len(pts)):
        stamp = found.raw[number]
        if found.keys[number] and stamp is not None:
            keyframes.append(number)
            seek_pts.append(stamp)
    steps = [b - a for a, b in zip(pts, pts[1:], strict=False)]
    last_duration = found.durations[-1] or (int(np.median(steps)) if steps else step)
    return FrameIndex(
        time_base,
        tuple(pts),
        tuple(keyframes),
        tuple(found.hashes),
        tuple(seek_pts),
        max(1, last_duration),
        tuple(sorted({min(number, len(pts) - 1) for number in found.damaged})),
        declared,
        timing,
    )


def _timestamps(raw: list[int | None], packets: list[int], step: int) -> tuple[list[int], str]:
    """Increasing presentation times for the decoded frames, and where they came from (see the module)."""
    known = [t for t in raw if t is not None]
    if not known and not packets:
        return [number * step for number in range(len(raw))], "rate"
    if len(known) == len(raw):
        if all(a < b for a, b in zip(known, known[1:], strict=False)):
            return known, "decoder"
        ordered = sorted(known)
        if all(a < b for a, b in zip(ordered, ordered[1:], strict=False)):
            return ordered, "reordered"
    ordered = sorted(packets)
    if len(ordered) == len(raw) and all(a < b for a, b in zip(ordered, ordered[1:], strict=False)):
        return ordered, "container"
    repaired: list[int] = []
    for stamp in raw:
        if not repaired:
            repaired.append(stamp if stamp is not None else 0)
        elif stamp is not None and stamp > repaired[-1]:
            repaired.append(stamp)
        else:
            repaired.append(repaired[-1] + step)
    return repaired, "repaired"
