"""The frame index of a video: every frame's presentation timestamp, in order, and which frames are keyframes.

Frame ``k`` of a video *is* the frame with the ``k``-th smallest timestamp: that identity, not a position reached
by seeking, is what makes chunked decoding frame-exact (seeking only gets close; decoding then runs up to the
exact timestamp, and every frame's timestamp is checked). The index comes from one pass over the packets (no
decoding, seconds for a film); a container without packet timestamps is indexed by decoding instead.
"""

from __future__ import annotations

import bisect
import json
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.error

from ..errors import DamagedVideoError, VideoError
from ..progress import CancelCheck, raise_if_cancelled
from .ffmpeg_log import error_log
from .probe import fraction, video_stream

__all__ = ["FrameIndex", "build_index", "timecode"]

_FORMAT = 1


@dataclass(frozen=True)
class FrameIndex:
    """Timestamps (in ``time_base`` units) of all frames in presentation order, and the keyframe numbers."""

    time_base: Fraction
    pts: tuple[int, ...]
    keyframes: tuple[int, ...]
    last_duration: int = 0

    def __len__(self) -> int:
        return len(self.pts)

    def frame_at(self, pts: int) -> int:
        """The number of the first frame whose timestamp is ``pts`` or later."""
        return bisect.bisect_left(self.pts, pts)

    def seek_point(self, frame: int) -> int | None:
        """The keyframe to start decoding from to reach ``frame`` cleanly: the last keyframe at or before it, one
        further back when there is one (a safety margin for open GOPs); None means the start of the stream."""
        position = bisect.bisect_right(self.keyframes, frame) - 2
        return self.keyframes[position] if position >= 0 else None

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

    def to_json(self) -> str:
        """The index as JSON, for the work folder (so a resumed job does not read the source again)."""
        return json.dumps(
            {
                "format": _FORMAT,
                "time_base": [self.time_base.numerator, self.time_base.denominator],
                "pts": list(self.pts),
                "keyframes": list(self.keyframes),
                "last_duration": self.last_duration,
            },
            separators=(",", ":"),
        )

    @staticmethod
    def from_json(text: str) -> FrameIndex:
        """Read ``to_json``'s output; ``ValueError`` when it is not one."""
        data: dict[str, Any] = json.loads(text)
        if data.get("format") != _FORMAT:
            raise ValueError("unknown frame index format")
        num, den = data["time_base"]
        return FrameIndex(Fraction(num, den), tuple(data["pts"]), tuple(data["keyframes"]), data["last_duration"])


def timecode(seconds: float) -> str:
    """``1:02:03.040`` style time for messages."""
    minutes, secs = divmod(max(seconds, 0.0), 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{secs:06.3f}" if hours else f"{minutes}:{secs:06.3f}"


def build_index(path: Path, stream_index: int, cancel: CancelCheck = None) -> FrameIndex:
    """Index the video stream ``stream_index`` of ``path`` from its packets (or by decoding, when the container
    stores no packet timestamps). Raises ``DamagedVideoError`` when the container is damaged part-way."""
    errors = error_log()
    with av.open(str(path)) as container:
        stream = video_stream(container, stream_index)
        time_base = fraction(stream.time_base) or Fraction(1, 1000)
        demuxer = container.format.name
        before = errors.count(demuxer)
        entries: list[tuple[int, bool]] = []
        last_duration = 0
        try:
            for count, packet in enumerate(container.demux(stream)):
                if count % 4096 == 0:
                    raise_if_cancelled(cancel, "indexing")
                if packet.size == 0 or packet.is_discard:
                    continue
                if packet.pts is None:
                    return _index_by_decoding(path, stream_index, cancel)
                if packet.is_corrupt or errors.count(demuxer) != before:
                    raise _damaged(path, len(entries), errors.last(demuxer) or "a damaged packet")
                entries.append((int(packet.pts), bool(packet.is_keyframe)))
                last_duration = max(last_duration, int(packet.duration or 0))
        except av.error.FFmpegError as exc:
            raise _damaged(path, len(entries), str(exc)) from None
    return _finish(path, time_base, entries, last_duration)


def _index_by_decoding(path: Path, stream_index: int, cancel: CancelCheck) -> FrameIndex:
    """The index from decoded frames, for containers (raw streams, some AVI) whose packets carry no timestamps."""
    entries: list[tuple[int, bool]] = []
    with av.open(str(path)) as container:
        stream = video_stream(container, stream_index)
        stream.thread_type = "AUTO"
        time_base = fraction(stream.time_base) or Fraction(1, 1000)
        try:
            for frame in container.decode(stream):
                if len(entries) % 256 == 0:
                    raise_if_cancelled(cancel, "indexing")
                if frame.pts is None:
                    raise VideoError(
                        f"{path}: the video frames carry no timestamps; remux the file into MKV or MP4 first"
                    )
                entries.append((int(frame.pts), bool(frame.key_frame)))
        except av.error.FFmpegError as exc:
            raise _damaged(path, len(entries), str(exc)) from None
    duration = entries[-1][0] - entries[-2][0] if len(entries) > 1 else 0
    return _finish(path, time_base, entries, duration)


def _finish(path: Path, time_base: Fraction, entries: list[tuple[int, bool]], last_duration: int) -> FrameIndex:
    if not entries:
        raise VideoError(f"{path}: the video stream has no frames")
    entries.sort()
    pts = tuple(p for p, _ in entries)
    for a, b in zip(pts, pts[1:], strict=False):
        if a == b:
            raise VideoError(
                f"{path}: two frames share the timestamp {timecode(float(a * time_base))}; the file's timing is "
                "broken (remux it, e.g. into MKV, to repair it)"
            )
    keyframes = tuple(k for k, (_, key) in enumerate(entries) if key)
    if not keyframes or keyframes[0] != 0:
        keyframes = (0, *keyframes)
    if not last_duration and len(pts) > 1:
        last_duration = pts[-1] - pts[-2]
    return FrameIndex(time_base, pts, keyframes, last_duration or 1)


def _damaged(path: Path, frame: int, reason: str) -> DamagedVideoError:
    return DamagedVideoError(
        f"{path}: the file is damaged near frame {frame} ({reason}); the frames before it can still be upscaled "
        f"on their own (end at frame {frame})",
        frame,
    )
