"""Before a video is started: how long it would take, from a probe of a few of its frames upscaled on the chosen
device with the chosen model, and a preview of its first seconds (a run can take hours on a CPU; the user should
know the time and see the quality before committing to it)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from gui.batch_run import RunConfig
from gui.formatting import format_seconds
from gui.models import friendly_name
from gui.runner import EngineCache, model_spec
from hat_plugin import Upscaler, weights
from hat_plugin.errors import ModelNotFoundError
from hat_plugin.progress import CancelCheck, ProgressFn, raise_if_cancelled
from hat_plugin.video import VideoJob
from hat_plugin.video.names import output_extension
from hat_plugin.video.preview import FrameReader
from hat_plugin.video.probe import probe

__all__ = ["PREVIEW_SECONDS", "PROBE_FRAMES", "VideoEstimate", "estimate_video", "preview_path", "preview_video"]

PREVIEW_SECONDS = 5
"""How much of a video the preview upscales (from its start)."""

PROBE_FRAMES = 2
"""Frames timed after one warm-up frame (the first frame also loads the model and plans the tiles)."""


@dataclass(frozen=True)
class VideoEstimate:
    """A probe's outcome: seconds per frame measured on ``device``, and the video's frame count."""

    source: Path
    seconds_per_frame: float
    frames: int
    device: str
    probed: int

    @property
    def seconds(self) -> float:
        """The whole video at the measured rate (encoding and joining add a little)."""
        return self.seconds_per_frame * self.frames

    def sentence(self) -> str:
        """``clip.mp4: about 2 h 05 min on this CPU (270 frames, 27.1 s a frame, measured on 2 frames).``"""
        where = "this CPU" if self.device == "cpu" else self.device
        return (
            f"{self.source.name}: about {format_seconds(self.seconds)} on {where} ({self.frames} frames, "
            f"{self.seconds_per_frame:.2f} s a frame, measured on {self.probed} frames)."
        )


def estimate_video(
    source: Path, config: RunConfig, engines: EngineCache, cancel: CancelCheck = None, probe: int = PROBE_FRAMES
) -> VideoEstimate:
    """Upscale one warm-up frame and then ``probe`` frames of ``source`` with the run's model, device and tile,
    and time the latter. The model must be on this computer (nothing is downloaded for an estimate)."""
    _path, upscaler = _ready_upscaler(config, engines, cancel, "an estimate")
    with FrameReader(source) as reader:
        frames = reader.frames
        upscaler.upscale(reader.read(0), cancel=cancel)
        numbers = [min(k, frames - 1) for k in range(1, probe + 1)]
        started = time.perf_counter()
        for number in numbers:
            raise_if_cancelled(cancel, "the estimate")
            upscaler.upscale(reader.read(number), cancel=cancel)
        per_frame = (time.perf_counter() - started) / len(numbers)
    return VideoEstimate(source, per_frame, frames, str(upscaler.device), len(numbers))


def _ready_upscaler(config: RunConfig, engines: EngineCache, cancel: CancelCheck, what: str) -> tuple[Path, Upscaler]:
    """The run's weights file and model loaded on its device, if it is on this computer (nothing is downloaded
    for ``what``)."""
    spec, entry, _why = model_spec(config)
    if entry is not None and not weights.is_cached(entry.name):
        raise ModelNotFoundError(
            f"{friendly_name(entry, size=False)} is not downloaded yet: {what} needs the model on this computer "
            "(Start downloads it), or pick a ready model"
        )
    path = weights.resolve(spec, cancel=cancel)
    return path, engines.get(path, config)


def preview_path(source: Path, config: RunConfig, scale: int, seconds: int = PREVIEW_SECONDS) -> Path:
    """Where the preview of ``source`` goes: the output folder (else beside the input), named as a preview."""
    folder = config.output.folder if config.output.folder is not None else source.parent
    extension = output_extension(source, config.encoder.codec)
    return folder / f"{source.stem}_x{scale}_preview-{seconds}s{extension}"


def preview_video(
    source: Path,
    config: RunConfig,
    engines: EngineCache,
    seconds: int = PREVIEW_SECONDS,
    progress: ProgressFn | None = None,
    cancel: CancelCheck = None,
) -> Path:
    """Upscale the first ``seconds`` of ``source`` with the run's settings into ``preview_path`` (replacing an
    older preview; written atomically by ``VideoJob``) and return it."""
    path, upscaler = _ready_upscaler(config, engines, cancel, "a preview")
    rate = probe(source).frame_rate
    with FrameReader(source, cancel) as reader:
        total = reader.frames
    frames = min(total, max(1, round(float(rate) * seconds)) if rate else total)
    target = preview_path(source, config, upscaler.scale, seconds)
    target.parent.mkdir(parents=True, exist_ok=True)
    job = VideoJob(
        source,
        target,
        path,
        encoder=config.encoder,
        end=frames,
        chunk_frames=config.chunk_frames,
        upscaler=upscaler,
        overwrite=True,
        notify=lambda message: None,
    )
    job.run(progress=progress, cancel=cancel)
    return target
