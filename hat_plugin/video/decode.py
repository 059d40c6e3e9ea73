"""Decoding frames ``[start, stop)`` of the source, exactly: every frame is identified by its timestamp in the
index, so a seek that lands early only costs decoding, one that lands late is retried from the start, and a
missing, doubled or damaged frame is an error naming the frame instead of a silent shift."""

from __future__ import annotations

from collections.abc import Iterator

import av
import av.error
import numpy as np

from ..errors import DamagedVideoError, VideoError
from .ffmpeg_log import error_log
from .frames import read_planes
from .index import FrameIndex, timecode
from .probe import VideoInfo, video_stream

__all__ = ["SourceReader"]


class SourceReader:
    """Reads frames of one video stream in order; consecutive ranges continue without seeking again.

    One reader belongs to one thread. Decoding uses slice threads only, so an error FFmpeg reports belongs to the
    packet being decoded (frame threads would report it a few frames late).
    """

    def __init__(self, info: VideoInfo, index: FrameIndex) -> None:
        self.info, self.index = info, index
        self._container: av.container.InputContainer | None = None
        self._decoded: Iterator[tuple[int, av.VideoFrame]] | None = None
        self._next = -1  # the frame the open decoder yields next; -1 when none is open
        self._errors = error_log()

    def close(self) -> None:
        """Close the source file."""
        if self._container is not None:
            self._container.close()
        self._container, self._decoded, self._next = None, None, -1

    def __enter__(self) -> SourceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def frames(self, start: int, stop: int) -> Iterator[tuple[int, list[np.ndarray]]]:
        """Yield ``(frame number, planes)`` for every frame in ``[start, stop)``, in order."""
        if not 0 <= start < stop <= len(self.index):
            raise ValueError(f"frames {start}-{stop} are outside the video (0-{len(self.index)})")
        if self._next != start:
            self._open(start, seek=True)
        produced = start
        while produced < stop:
            assert self._decoded is not None
            try:
                number, frame = next(self._decoded)
            except _SeekMissed:
                self._open(start, seek=False)  # the seek landed past the frame: decode from the beginning
                continue
            except StopIteration:
                self.close()
                raise DamagedVideoError(
                    f"{self.info.path}: the video stream ends at frame {produced} "
                    f"({timecode(self.index.seconds(produced))}), but {len(self.index)} frames were indexed",
                    produced,
                ) from None
            yield number, read_planes(frame, self.info.layout)
            produced = number + 1
            self._next = produced

    def _open(self, start: int, seek: bool) -> None:
        self.close()
        try:
            container = av.open(str(self.info.path))
        except av.error.FFmpegError as exc:
            raise VideoError(f"{self.info.path}: cannot be opened again ({exc})") from None
        stream = video_stream(container, self.info.stream_index)
        stream.thread_type = "SLICE"
        point = self.index.seek_point(start) if seek else None
        if point is not None:
            container.seek(self.index.pts[point], stream=stream, backward=True, any_frame=False)
        self._container = container
        self._decoded = self._decode(container, stream, start, first_pass=point is not None)
        self._next = start

    def _decode(
        self, container: av.container.InputContainer, stream: av.video.stream.VideoStream, start: int, first_pass: bool
    ) -> Iterator[tuple[int, av.VideoFrame]]:
        """Frames from ``start`` on, each checked against the index."""
        pts, path = self.index.pts, self.info.path
        names = (stream.codec_context.name, container.format.name)
        expected = start
        for packet in container.demux(stream):
            before = self._errors.count(*names)
            try:
                decoded = packet.decode()
            except av.error.FFmpegError as exc:
                if packet.pts is None or packet.pts >= pts[expected]:
                    raise self._damaged(expected, packet.pts, str(exc)) from None
                continue  # a picture before the range, missing its references after the seek
            damaged = packet.is_corrupt or self._errors.count(*names) != before
            if damaged and packet.pts is not None and packet.pts >= pts[expected]:
                raise self._damaged(expected, packet.pts, self._errors.last(*names) or "a damaged packet")
            for frame in decoded:
                if expected >= len(pts):
                    return
                if frame.pts is None:
                    raise VideoError(f"{path}: a decoded frame has no timestamp; remux the file into MKV first")
                if frame.pts < pts[expected]:
                    continue  # before the range (decoded from the keyframe on)
                if frame.pts != pts[expected]:
                    if first_pass and expected == start:
                        raise _SeekMissed
                    raise DamagedVideoError(
                        f"{path}: frame {expected} ({timecode(self.index.seconds(expected))}) is missing from the "
                        "decoded stream (damaged data)",
                        expected,
                    )
                if frame.is_corrupt:
                    raise self._damaged(expected, frame.pts, "the decoder marked the picture as corrupt")
                yield expected, frame
                expected += 1

    def _damaged(self, expected: int, packet_pts: int | None, reason: str) -> DamagedVideoError:
        """The error for damage found while decoding: the first frame that cannot be trusted is the next one due,
        or the damaged packet's own frame if it comes earlier."""
        frame = expected if packet_pts is None else min(expected, self.index.frame_at(packet_pts))
        self.close()
        return DamagedVideoError(
            f"{self.info.path}: the video data is damaged at frame {frame} ({timecode(self.index.seconds(frame))}): "
            f"{reason.strip()}",
            frame,
        )


class _SeekMissed(Exception):
    """The seek landed after the first wanted frame (some demuxers seek imprecisely)."""
