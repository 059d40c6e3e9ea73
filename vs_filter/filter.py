"""``hat.Upscale`` in Python: argument checks, one model load per call, and the per-frame graph.

Each output frame gets its own ``std.ModifyFrame`` under ``std.FrameEval``, so VapourSynth runs frames on all of
its threads; ``num_streams`` bounds how many of them run the model at once (see ``frames.py``).
"""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING

import vapoursynth as vs

from .formats import NATIVE_PRECISION, check_clip

if TYPE_CHECKING:
    from .frames import FrameUpscaler

# Example shown when neither model nor weights is given.
EXAMPLE_MODEL = "HAT-S_SRx4"


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
    _check_range("batch", batch, 0)
    if fp16 not in (None, 0, 1):
        raise vs.Error(f"hat.Upscale: fp16 must be 0 or 1, not {fp16}")

    from hat_plugin import HATError, Upscaler
    from hat_plugin.device import resolve_device

    from .frames import FrameUpscaler

    try:
        torch_device = resolve_device(_device_spec(device, device_index))
        precision = _precision(fp16, clip.format.id, torch_device.type)
        with contextlib.redirect_stdout(sys.stderr):  # stdout may carry the video (vspipe ... -)
            upscaler = Upscaler(
                source, device=torch_device, precision=precision, tile=tile, overlap=overlap, batch=batch
            )
    except HATError as exc:
        raise vs.Error(f"hat.Upscale: {exc}") from None
    return frame_graph(clip, FrameUpscaler(upscaler, clip, torch_device, num_streams))


def frame_graph(clip: vs.VideoNode, runner: FrameUpscaler) -> vs.VideoNode:
    """The output clip: ``runner(n, [source frame, blank scaled frame])`` per frame, frames in parallel."""
    scale = runner.scale
    blank = clip.std.BlankClip(width=clip.width * scale, height=clip.height * scale, keep=True)
    target = blank.std.CopyFrameProps(clip)  # each output frame starts with its source frame's properties

    def per_frame(n: int) -> vs.VideoNode:
        return target.std.ModifyFrame(clips=[clip, target], selector=runner)

    return target.std.FrameEval(per_frame, clip_src=[clip, target]).hat.InternalCheck()


def _model_source(model: str | None, weights: str | None) -> str:
    """The name or path to load: exactly one of ``model`` and ``weights``."""
    if model and weights:
        raise vs.Error("hat.Upscale: give either model (a name) or weights (a file), not both")
    if not model and not weights:
        raise vs.Error(
            f"hat.Upscale: say which network to use: model='{EXAMPLE_MODEL}' (a name from `python -m hat_plugin "
            "--list-models`) or weights='/path/to/file.safetensors'"
        )
    return model or weights


def _check_range(name: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise vs.Error(f"hat.Upscale: {name} must be {minimum} or more, not {value}")


def _device_spec(device: str, device_index: int | None) -> str:
    """Combine ``device`` and ``device_index`` (VapourSynth convention) into one spec like ``cuda:1``."""
    if device_index is None:
        return device
    _check_range("device_index", device_index, 0)
    kind = device.strip().lower()
    if kind not in ("auto", "cuda"):
        raise vs.Error(
            f"hat.Upscale: device_index applies to CUDA devices; got device={device!r}. Use device='cuda' "
            "with device_index, or a device like 'cuda:1' alone"
        )
    return f"cuda:{device_index}"


def _precision(fp16: int | None, format_id: int, device_type: str) -> str:
    """Explicit ``fp16`` wins; otherwise follow the clip (RGBH -> fp16 where the device runs it natively)."""
    if fp16 is not None:
        return "fp16" if fp16 else "fp32"
    native = NATIVE_PRECISION[format_id]
    return "fp32" if native == "fp16" and device_type == "cpu" else native
