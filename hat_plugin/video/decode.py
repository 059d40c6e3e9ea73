"""Decoding frames ``[start, stop)`` of the source, exactly: frame ``k`` is the ``k``-th picture the decoder outputs,
as in the index. A seek only gets near; where it landed is found from the pictures' hashes (a run of decoded
pictures that matches one place in the index), never from a timestamp, and every frame handed out is checked
against its hash. A seek that lands after the frame, or cannot be placed, is tried from an earlier keyframe, and
at last from the start of the file, which is where the index itself was made."""

from __future__ import annotations

from collections.abc import Iterator

import av
import av.error
import numpy as np

from ..errors import DamagedVideoError, VideoError
from .frames import read_planes
from .index import FrameIndex, frame_hash, timecode
from .probe import VideoInfo, video_stream

__all__ = ["SourceReader"]

_LOCATE_MARGIN = 48  # decoded pictures a seek may take beyond the target before it counts as lost


class SourceReader:
    """Reads frames of one video stream in order; consecutive ranges continue without seeking again.

    One reader belongs to one thread. It decodes exactly as the index was made (slice threads, a packet that
    fails to decode is skipped), so the same file gives the same pictures.
    """

    def __init__(self, info: VideoInfo, index: FrameIndex) -> None:
        self.info, self.index = info, index
        self._container: av.container.InputContainer | None = None
        self._decoded: Iterator[tuple[int, list[np.ndarray]]] | None = None
        self._next = -1  # the frame the open decoder yields next; -1 when none is open
        self._damaged = frozenset(index.damaged)

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
            self._open(start)
        produced = start
        while produced < stop:
            assert self._decoded is not None
            try:
                number, planes = next(self._decoded)
            except _Lost:
                self._open(produced, from_start=True)  # a seeked decoder gave another picture: decode from the start
                continue
            except StopIteration:
                self.close()
                raise DamagedVideoError(
                    f"{self.info.path}: the video stream ends at frame {produced} "
                    f"({timecode(self.index.seconds(produced))}), but {len(self.index)} frames were indexed; the "
                    "file changed since it was indexed",
                    produced,
                ) from None
            if number < produced:
                continue
            yield number, planes
            produced = number + 1
            self._next = produced

    def _open(self, start: int, from_start: bool = False) -> None:
        """Position a decoder so that it yields ``start`` next."""
        if not from_start:
            for point in self.index.seek_points(start):
                self._container = self._file()
                located = self._seek(point, start)
                if located is not None:
                    self._decoded, self._next = located, start
                    return
                self.close()
        self._container = self._file()
        stream = self._stream()
        self._decoded = self._checked(self._pictures(stream), 0, seeked=False)
        self._next = start

    def _file(self) -> av.container.InputContainer:
        self.close()
        try:
            return av.open(str(self.info.path))
        except av.error.FFmpegError as exc:
            raise VideoError(f"{self.info.path}: cannot be opened again ({exc})") from None

    def _stream(self) -> av.video.stream.VideoStream:
        assert self._container is not None
        stream = video_stream(self._container, self.info.stream_index)
        stream.thread_type = "SLICE"
        return stream

    def _seek(self, point: int, start: int) -> Iterator[tuple[int, list[np.ndarray]]] | None:
        """Seek to keyframe ``point`` and find from the decoded pictures where the decoder is; a decoder at or
        before ``start`` (as frames from there on), or None when it landed after it or cannot be placed."""
        assert self._container is not None
        stream = self._stream()
        try:
            self._container.seek(self.index.seek_timestamp(point), stream=stream, backward=True, any_frame=False)
        except av.error.FFmpegError:
            return None
        pictures = self._pictures(stream)
        candidates: set[int] = set()
        for count, planes in enumerate(pictures):
            where = self.index.frames_with_hash(frame_hash(planes))
            following = {p for p in where if p - 1 in candidates}
            candidates = following or set(where)
            if candidates and min(candidates) > start:
                return None
            if len(candidates) == 1:
                (position,) = candidates
                return self._checked(pictures, position + 1, seeked=True, first=(position, planes))
            if count > start - point + _LOCATE_MARGIN:
                return None
        return None

    def _pictures(self, stream: av.video.stream.VideoStream) -> Iterator[list[np.ndarray]]:
        """Every picture the decoder outputs from where the file is, as planes (damage skipped as when indexing)."""
        assert self._container is not None
        try:
            for packet in self._container.demux(stream):
                try:
                    frames = packet.decode()
                except av.error.FFmpegError:
                    continue
                for frame in frames:
                    yield read_planes(frame, self.info.layout)
        except av.error.FFmpegError:
            try:
                frames = stream.codec_context.decode(None)
            except av.error.FFmpegError:
                return
            for frame in frames:
                yield read_planes(frame, self.info.layout)

    def _checked(
        self,
        pictures: Iterator[list[np.ndarray]],
        number: int,
        *,
        seeked: bool,
        first: tuple[int, list[np.ndarray]] | None = None,
    ) -> Iterator[tuple[int, list[np.ndarray]]]:
        """Number the pictures from ``number`` on, checking each against the index's hash."""
        if first is not None:
            yield first
        for planes in pictures:
            if number >= len(self.index):
                return
            if frame_hash(planes) != self.index.hashes[number] and number not in self._damaged:
                if seeked:
                    raise _Lost
                self.close()
                raise VideoError(
                    f"{self.info.path}: frame {number} ({timecode(self.index.seconds(number))}) decodes differently "
                    "than when the file was indexed; the file changed (start the job again) or its decoding is not "
                    "repeatable"
                )
            yield number, planes
            number += 1


class _Lost(Exception):
    """A decoder started by a seek gave a picture other than the index's (it is decoded from the start instead)."""
