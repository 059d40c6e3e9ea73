"""``hat.Upscale`` in Python: argument checks, one model load per call, and the per-frame graph.

Each output frame gets its own ``std.ModifyFrame`` under ``std.FrameEval``, so VapourSynth runs frames on all of
its threads; ``num_streams`` bounds how many of them run the model at once (see ``frames.py``).
"""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING

import vapoursynth as vs

from .errors import engine_error, error, message, worded
from .formats import NATIVE_PRECISION, check_clip

MAX_STREAMS = 16
"""Most frames inferred at once. Each stream holds a frame buffer and a full set of activations, and beyond a few
streams a device gains nothing (one model, one set of compute units); a larger value is almost always a typo
that would only exhaust memory, so it is refused rather than silently clamped."""

if TYPE_CHECKING:
    import torch

    from .frames import FrameUpscaler


def upscale(
    clip: vs.VideoNode,
    model: str | None = None,
    weights: str | None = None,
    tile: int = 0,
    overlap: int = 16,
    device: str = "auto",
    device_index: int | None = None,
    num_streams: int = 1,
    batch: int = 0,
    fp16: int | None = None,
) -> vs.VideoNode:
    """Upscale an RGBS/RGBH clip with HAT; every problem is a ``vs.Error`` whose message says what to do."""
    clip = check_clip(clip)
    source = _model_source(model, weights)
    _check_range("tile", tile, 0)
    _check_range("overlap", overlap, 0)
    _check_range("num_streams", num_streams, 1)
    if num_streams > MAX_STREAMS:
        raise error(
            f"num_streams must be at most {MAX_STREAMS}, not {num_streams}: each stream holds a frame and the "
            "model's activations, and more streams than a few do not run faster; try 2 to 4"
        )
    _check_range("batch", batch, 0)
    if fp16 not in (None, 0, 1):
        raise error(f"fp16 must be 0 or 1, not {fp16}")

    from hat_plugin.runtime import configure_process

    configure_process()  # before PyTorch is imported (the OpenMP thread policy is read when it loads)
    from hat_plugin import HATError, Upscaler
    from hat_plugin.device import resolve_device, resolve_precision
    from hat_plugin.options import EngineOptions
    from hat_plugin.precisions import precision_name

    from .frames import FrameUpscaler

    try:
        options = EngineOptions.from_environment(
            device=_device_spec(device, device_index), tile=tile, overlap=overlap, batch=batch
        )
        torch_device = resolve_device(options.device)
        asked = "auto" if fp16 is None else ("fp16" if fp16 else "fp32")
        native = NATIVE_PRECISION[clip.format.id]
        dtype = resolve_precision(asked, torch_device, auto=native, force=options.force_precision)
        options = options.replace(device=str(torch_device), precision=precision_name(dtype))
        with contextlib.redirect_stdout(sys.stderr):  # stdout may carry the video (vspipe ... -)
            upscaler = Upscaler(source, options)
    except HATError as exc:
        raise engine_error(exc) from None
    _check_memory(clip, upscaler.scale, num_streams, torch_device)
    return frame_graph(clip, FrameUpscaler(upscaler, clip, torch_device, num_streams))


def _check_memory(clip: vs.VideoNode, scale: int, num_streams: int, device: torch.device) -> None:
    """Refuse frames that cannot fit ``num_streams`` times in the device's free memory (estimated with
    ``limits.bytes_per_pixel``), before any frame is requested: a clear message instead of an allocation failure."""
    from hat_plugin.device import free_memory
    from hat_plugin.limits import bytes_per_pixel

    per_frame = clip.width * clip.height * bytes_per_pixel(scale)
    free = free_memory(device)
    if per_frame * num_streams > free:
        streams = (
            f" each, {per_frame * num_streams / 1e9:,.1f} GB with num_streams={num_streams}," if num_streams > 1 else ""
        )
        raise error(
            f"{clip.width}x{clip.height} frames upscaled x{scale} need about {per_frame / 1e9:,.1f} GB{streams}, "
            f"more than the {free / 1e9:,.1f} GB free on {device}; use fewer num_streams or a smaller clip"
        )


def frame_graph(clip: vs.VideoNode, runner: FrameUpscaler) -> vs.VideoNode:
    """The output clip: ``runner(n, [source frame, blank scaled frame])`` per frame, frames in parallel."""
    scale = runner.scale
    blank = clip.std.BlankClip(width=clip.width * scale, height=clip.height * scale, keep=True)
    target = blank.std.CopyFrameProps(clip)  # each output frame starts with its source frame's properties

    def per_frame(n: int) -> vs.VideoNode:
        return target.std.ModifyFrame(clips=[clip, target], selector=runner)

    return target.std.FrameEval(per_frame, clip_src=[clip, target]).hat.InternalCheck()


def _model_source(model: str | None, weights: str | None) -> str:
    """The name or path to load: ``model`` or ``weights`` (not both); with neither, the product's default
    model, named on stderr (stdout may carry the video)."""
    if model and weights:
        raise error("give either model (a name) or weights (a file), not both")
    if model or weights:
        return model or weights  # type: ignore[return-value]
    from hat_plugin import HATError
    from hat_plugin import weights as weights_api

    try:
        entry, why = weights_api.default_model()
    except HATError as exc:
        raise error(f"{worded(exc)}; pass model='NAME' or weights='FILE'") from None
    print(message(f"no model given: using {why}; pass model='NAME' to choose"), file=sys.stderr)
    return entry.name


def _check_range(name: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise error(f"{name} must be {minimum} or more, not {value}")


def _device_spec(device: str, device_index: int | None) -> str:
    """Combine ``device`` and ``device_index`` (VapourSynth convention) into one spec like ``cuda:1``."""
    if device_index is None:
        return device
    _check_range("device_index", device_index, 0)
    kind = device.strip().lower()
    if kind not in ("auto", "cuda"):
        raise error(
            f"device_index applies to CUDA devices; got device={device!r}. Use device='cuda' "
            "with device_index, or a device like 'cuda:1' alone"
        )
    return f"cuda:{device_index}"
