"""One video job from start to finish, for any front end: check, plan, upscale the missing chunks, join, tidy up.

    job = VideoJob("film.mkv", "film_x4.mkv", model="HAT-S_SRx4")
    plan = job.prepare()                  # probe, index, check the output, find finished chunks (no upscaling)
    result = job.run(progress=lambda done, total: ..., cancel=event)

``run`` reports frames done of all frames (finished chunks of an earlier run count as done), stops between frames
when ``cancel`` is set (finished chunks stay in the work folder: run the same job again to continue), and returns
a ``VideoResult``. Everything it raises is a ``HATError`` with a message for the user.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import Cancelled, DamagedVideoError, OptionError, OutputError, whole_number
from ..files import refuse_inputs, sha256_digest
from ..options import EngineOptions
from ..progress import CancelCheck, ProgressFn, raise_if_cancelled
from .codecs import EncoderSettings, choose_layout
from .colour import output_colour
from .deinterlace import choose, looks_telecined, output_index
from .index import FrameIndex, build_index, timecode
from .mux import StreamPlan, assemble, container_format, plan_streams
from .probe import VideoInfo, probe, source_fingerprint
from .segment import Chunk, OutputFormat
from .work import WorkFolder, plan_chunks

if TYPE_CHECKING:
    from ..arch import HAT
    from ..engine import Upscaler
    from ..workers import RayRunner

__all__ = ["VideoJob", "VideoPlan", "VideoResult", "frame_position"]

log = logging.getLogger("hat_plugin.video")

DEFAULT_CHUNK_FRAMES = 240
DAMAGE_CHOICES = ("conceal", "stop")
_RECORD_FORMAT = 1
_LISTED = 8  # damaged stretches named in a warning


@dataclass
class VideoPlan:
    """What a job will do, known before any upscaling: for a front end to show and a runner to follow."""

    info: VideoInfo
    index: FrameIndex
    fmt: OutputFormat
    chunks: list[Chunk]
    done: set[int]
    streams: StreamPlan
    work: WorkFolder
    scale: int
    notes: list[str] = field(default_factory=list)
    source_index: FrameIndex | None = None
    """The source's frames (``index`` is the output's: they differ at field-rate deinterlacing)."""

    @property
    def frames(self) -> int:
        """Frames the output will have."""
        return sum(chunk.frames for chunk in self.chunks)

    @property
    def frames_done(self) -> int:
        """Frames in chunks already finished (by an earlier run)."""
        return sum(chunk.frames for chunk in self.chunks if chunk.number in self.done)

    @property
    def pending(self) -> list[Chunk]:
        """Chunks still to upscale."""
        return [chunk for chunk in self.chunks if chunk.number not in self.done]


@dataclass(frozen=True)
class VideoResult:
    """What a finished job produced."""

    source: Path
    output: Path
    frames: int
    chunks: int
    reused: int
    """Chunks taken from an earlier, interrupted run."""
    seconds: float
    work_folder: Path | None
    """The kept work folder (``keep_work``), else None (removed)."""


class VideoJob:
    """Upscale one video file into another, in resumable chunks, on this machine or a Ray cluster.

    Args:
        source, output: the video to read and the file to write (``.mkv``, ``.mp4``, ``.mov`` or ``.webm``).
        model: a manifest model name or a weights file (as for ``Upscaler``).
        encoder: codec and quality of the output (``EncoderSettings``).
        start, end: frame range ``[start, end)``: frame numbers, or times like ``"1:23.5"`` or ``"83.5s"``.
        chunk_frames: frames per chunk (the unit of resuming and of distribution).
        engine: how the engine runs (``EngineOptions``; by default ``EngineOptions.from_environment()``).
        upscaler: an engine already loaded with ``model`` to use instead of loading one (local runs).
        streams: frames upscaled at the same time (the decoder and encoder always run alongside).
        ray: run the chunks on a Ray cluster (a ``RayRunner``, or its address such as ``"auto"``).
        deinterlace, deinterlace_rate: ``auto`` (deinterlace when the source says it is interlaced), ``off``,
            ``bwdif`` or ``yadif``; at ``frame`` rate (a frame per frame) or ``field`` rate (a frame per field).
        on_damage: ``conceal`` (as a player does: the decoder's concealed pictures are used, the damaged frames
            and a file that ends early are named in a warning) or ``stop`` (refuse a range holding damaged frames
            or running into a missing end).
        keep_work: keep the work folder (the chunks) after success.
        overwrite: replace an existing output file.
        notify: receives progress messages meant for the user (resuming, what is copied); warnings go to the
            ``hat_plugin.video`` logger.
    """

    def __init__(
        self,
        source: str | os.PathLike[str],
        output: str | os.PathLike[str],
        model: str | os.PathLike[str],
        *,
        encoder: EncoderSettings | None = None,
        start: int | str | None = None,
        end: int | str | None = None,
        chunk_frames: int = DEFAULT_CHUNK_FRAMES,
        engine: EngineOptions | None = None,
        upscaler: Upscaler | None = None,
        streams: int = 1,
        ray: RayRunner | str | None = None,
        deinterlace: str = "auto",
        deinterlace_rate: str = "frame",
        on_damage: str = "conceal",
        keep_work: bool = False,
        overwrite: bool = False,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.source, self.output = Path(source), Path(output)
        self.model = model
        self.encoder = (encoder or EncoderSettings()).checked()
        self.start, self.end = start, end
        self.chunk_frames = whole_number("chunk frames", chunk_frames, 1)
        self.streams = whole_number("streams", streams, 1)
        self.engine = engine or EngineOptions.from_environment()
        self.upscaler = upscaler
        if ray is not None and upscaler is not None:
            raise OptionError("a Ray job builds its engines on the workers: give no upscaler with ray")
        if isinstance(ray, str):
            from ..workers import RayRunner

            ray = RayRunner(ray)
        self.ray = ray
        if on_damage not in DAMAGE_CHOICES:
            raise OptionError(
                f"{{on_damage}} {on_damage!r}: choose one of {', '.join(DAMAGE_CHOICES)}", option="on_damage"
            )
        self.on_damage = on_damage
        self.deinterlace, self.deinterlace_rate = deinterlace, deinterlace_rate
        self.keep_work, self.overwrite = keep_work, overwrite
        self.notify = notify or (lambda message: log.info("%s", message))
        self.plan: VideoPlan | None = None
        self._net: HAT | None = None
        self._weights: Path | None = None

    # ---- planning ------------------------------------------------------------------------------------------

    def prepare(self, cancel: CancelCheck = None) -> VideoPlan:
        """Probe the source, load the model's description, check the output, index the frames and find the chunks
        an earlier run finished. Nothing is upscaled; the work folder is created."""
        if self.plan is not None:
            return self.plan
        refuse_inputs(self.output, (self.source,))
        if self.output.exists() and not self.overwrite:
            raise OutputError(f"{self.output} already exists (allow overwriting to replace it)")
        container_format(self.output)
        info = probe(self.source)
        deinterlace = choose(info, self.deinterlace, self.deinterlace_rate)
        scale, model_key = self._model()
        layout, note = choose_layout(self.encoder, info.layout)
        notes = [note] if note else []
        if info.field_order and deinterlace is None:
            notes.append(
                f"{info.path} is interlaced ({info.field_order}): upscaling its frames as they are (deinterlace off)"
            )
        factor = deinterlace.factor if deinterlace is not None else 1
        if info.field_order and looks_telecined(info):
            notes.append(
                f"{info.path} looks telecined (film in 3:2 pulldown: a repeated field in 2 of every 5 frames); it is "
                "deinterlaced as video, so the film's frames are not restored (an inverse telecine such as FFmpeg's "
                "fieldmatch and decimate filters would do that before upscaling)"
            )
        fmt = OutputFormat(
            settings=self.encoder,
            layout=layout,
            colour=output_colour(info.colour, info.layout, layout),
            width=info.width * scale,
            height=info.height * scale,
            time_base=info.time_base / factor,
            frame_rate=info.frame_rate * factor if info.frame_rate else None,
            sample_aspect_ratio=info.sample_aspect_ratio,
            deinterlace=deinterlace,
        )
        streams = plan_streams(self.output, info, fmt)
        notes.extend(f"not copied: {reason}" for reason in streams.dropped)
        record = {
            "format": _RECORD_FORMAT,
            "source": source_fingerprint(self.source),
            "stream": info.stream_index,
            "model": model_key,
            "encoder": self.encoder.as_dict(),
            "pix_fmt": layout.pix_fmt,
            "chunk_frames": self.chunk_frames,
        }
        if deinterlace is not None:
            record["deinterlace"] = deinterlace.describe()
            self.notify(f"deinterlacing {info.path.name}: {deinterlace.describe()}")
        work = WorkFolder.for_output(self.output)
        source_index = self._index(info, work, record, cancel)
        index = output_index(source_index, deinterlace)
        first = frame_position(self.start, index, "start", 0)
        last = frame_position(self.end, index, "end", len(index))
        if last <= first:
            raise OptionError(
                f"the range is empty: {{start}} frame {first}, {{end}} frame {last}", option=("start", "end")
            )
        notes.extend(self._damage(info, source_index, first // factor, -(-last // factor), factor))
        record["start"] = first
        resumed = work.open(record)
        work.save_index(source_index)
        chunks = plan_chunks(first, last, self.chunk_frames)
        done = work.finished(chunks, lambda chunk, why: log.warning("chunk %d is done again: %s", chunk.number, why))
        for note in notes:
            log.warning("%s", note)
        self.plan = VideoPlan(info, index, fmt, chunks, done, streams, work, scale, notes, source_index)
        if resumed and done:
            self.notify(
                f"resuming: {len(done)} of {len(chunks)} chunks are done ({self.plan.frames_done} of "
                f"{self.plan.frames} frames), kept in {work.path}"
            )
        return self.plan

    def _model(self) -> tuple[int, str]:
        """The model's scale and a fingerprint of its weights (the file's sha256)."""
        from ..weights import resolve

        self._weights = resolve(self.model)
        digest = sha256_digest(self._weights)
        if self.upscaler is not None:
            return self.upscaler.scale, digest.hexdigest()[:32]
        from ..checkpoint import load_model

        self._net = load_model(self._weights)
        if self._net.config.rgb_mean is not None:  # another mean makes other frames: another job
            digest.update(repr(self._net.config.rgb_mean).encode())
        return self._net.config.upscale, digest.hexdigest()[:32]

    def _index(self, info: VideoInfo, work: WorkFolder, record: dict[str, Any], cancel: CancelCheck) -> FrameIndex:
        """The frame index: cached in the work folder of the same job, else built from the source."""
        previous = work.record() or {}
        same_source = all(previous.get(key) == record[key] for key in ("format", "source", "stream"))
        cached = work.load_index() if same_source else None
        if cached is not None:
            return cached
        self.notify(f"indexing {info.path.name} (decoding every frame once): {info.describe()}")
        return build_index(info, cancel)

    def _damage(self, info: VideoInfo, index: FrameIndex, first: int, last: int, factor: int) -> list[str]:
        """Warnings for damaged source frames in ``[first, last)`` and a file that ends early; with ``on_damage``
        stop, ``DamagedVideoError`` instead (naming the output frame: ``factor`` per source frame)."""
        damaged = [number for number in index.damaged if first <= number < last]
        missing = index.missing_seconds() if last == len(index) else 0.0
        if self.on_damage == "stop":
            if damaged:
                frame = damaged[0]
                raise DamagedVideoError(
                    f"{info.path}: the video data is damaged at frame {frame} ({timecode(index.seconds(frame))}); "
                    f"the frames before it can be upscaled on their own ({{end}} {frame * factor}), or the "
                    "decoder's concealed pictures used ({on_damage} conceal)",
                    frame * factor,
                    option=("on_damage", "end"),
                )
            if missing:
                raise DamagedVideoError(f"{info.path}: {_ends_early(index, missing)}", len(index))
            return []
        notes = []
        if damaged:
            notes.append(
                f"{info.path}: damaged video data at {len(damaged)} frame{'s' if len(damaged) > 1 else ''} "
                f"({_stretches(index, damaged)}); the decoder's concealed pictures are used"
            )
        if missing:
            notes.append(f"{info.path}: {_ends_early(index, missing)}; the output has the frames that decode")
        return notes

    # ---- running -------------------------------------------------------------------------------------------

    def run(self, progress: ProgressFn | None = None, cancel: CancelCheck = None) -> VideoResult:
        """Upscale the chunks still missing, join them into the output, remove the work folder (unless kept)."""
        started = time.monotonic()
        plan = self.prepare(cancel)
        total = plan.frames
        tracker = _Tracker(plan.frames_done, total, progress)
        pending = plan.pending
        reused = len(plan.chunks) - len(pending)
        try:
            if pending:
                self._upscale(plan, pending, tracker, cancel)
            raise_if_cancelled(cancel, "upscaling")
        except (Cancelled, DamagedVideoError) as exc:
            kept = len(plan.done)
            where = f"; {kept} of {len(plan.chunks)} chunks are done and kept in {plan.work.path}" if kept else ""
            again = " (run the same job again to continue)" if isinstance(exc, Cancelled) and kept else ""
            if isinstance(exc, DamagedVideoError):
                raise DamagedVideoError(f"{exc}{where}", exc.frame) from None
            raise Cancelled(f"{exc}{where}{again}") from None
        self.notify(f"joining {len(plan.chunks)} chunks into {self.output}")
        frames = assemble(
            self.output,
            plan.info,
            plan.index,
            plan.chunks,
            plan.work.segment,
            plan.streams,
            overwrite=self.overwrite,
            cancel=cancel,
        )
        if not self.keep_work:
            plan.work.remove()
        return VideoResult(
            self.source,
            self.output,
            frames,
            len(plan.chunks),
            reused,
            time.monotonic() - started,
            plan.work.path if self.keep_work else None,
        )

    def _upscale(self, plan: VideoPlan, pending: list[Chunk], tracker: _Tracker, cancel: CancelCheck) -> None:
        """The pending chunks, here or on the cluster: one call either way (``hat_plugin.workers``)."""
        from ..workers import Model, run_units
        from .chunk_work import ChunkWork

        if self.ray is not None:
            assert self._net is not None, "a Ray job loads its model from the weights file"
        run_units(
            ChunkWork(plan.info, plan.source_index or plan.index, plan.fmt, plan.work, self.streams),
            pending,
            self.ray,
            model=Model(self._net, self.engine, plan.work.job, self.upscaler),
            progress=tracker.update,
            on_done=lambda chunk, _frames: plan.done.add(chunk.number),
            cancel=cancel,
        )


def _stretches(index: FrameIndex, frames: list[int]) -> str:
    """``frames 12, 40-42 at 0:00.480, 0:01.600-0:01.680``: consecutive frames joined, the first few named."""
    runs: list[list[int]] = []
    for number in frames:
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    shown = runs[:_LISTED]
    numbers = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in shown)
    times = ", ".join(
        timecode(index.seconds(a)) if a == b else f"{timecode(index.seconds(a))}-{timecode(index.seconds(b))}"
        for a, b in shown
    )
    more = f" and {len(runs) - _LISTED} more stretches" if len(runs) > _LISTED else ""
    return f"frames {numbers} at {times}{more}"


def _ends_early(index: FrameIndex, missing: float) -> str:
    """The file is shorter than its container says: expected and got frame counts and durations."""
    declared = (index.declared_seconds or 0.0) - index.seconds(0)
    steps = sorted(index.duration(number) for number in range(len(index)))
    per_frame = float(steps[len(steps) // 2] * index.time_base)  # the usual frame duration
    expected = round(declared / per_frame) if per_frame else len(index)
    return (
        f"the file ends early (truncated or damaged): the container declares {timecode(declared)} (about "
        f"{expected} frames), {len(index)} frames ({timecode(index.decoded_seconds())}) decode"
    )


class _Tracker:
    """The job's ``progress(done, total)``: frames finished by earlier runs plus those done by this one."""

    def __init__(self, done: int, total: int, progress: ProgressFn | None) -> None:
        self.start, self.total, self.progress = done, total, progress
        self.update(0)

    def update(self, frames: int) -> None:
        """``frames`` done by this run (finished chunks and the running ones so far)."""
        if self.progress is not None:
            self.progress(min(self.start + frames, self.total), self.total)


_TIME = re.compile(r"^(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d*)?)s?$")


def frame_position(value: int | str | None, index: FrameIndex, name: str, default: int) -> int:
    """A frame number from the ``start``/``end`` setting ``name``: a whole number is a frame; ``83.5s``,
    ``1:23.5`` or ``1:02:03`` is a time, meaning the first frame shown at or after it."""
    if value is None:
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        frame = value
    else:
        text = str(value).strip()
        if text.isdigit():
            frame = int(text)
        else:
            match = _TIME.match(text)
            if match is None or not ("." in text or ":" in text or text.endswith("s")):
                raise OptionError(
                    f"{{{name}}} {value!r}: give a frame number or a time such as 1:23.5 or 83.5s", option=name
                )
            parts = [p for p in match.groups() if p is not None]
            seconds = 0.0
            for part in parts:
                seconds = seconds * 60 + float(part)
            target = round(seconds / float(index.time_base))
            frame = index.frame_at(int(target) + index.pts[0])
    if not 0 <= frame <= len(index):
        raise OptionError(
            f"{{{name}}} {value}: the video has {len(index)} frames ({timecode(index.seconds(len(index)))})",
            option=name,
        )
    return frame
