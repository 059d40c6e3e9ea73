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

    from .frames import FrameCallback


NUMBERS = {"tile": 0, "overlap": 0, "device_index": 0, "num_streams": 1, "batch": 0}
"""The whole-number arguments and their minimums: they reach the filter as the script gave them (the shim's
signature takes them as ``any``), so a wrong type is refused here with the argument's name."""


def upscale(
    clip: vs.VideoNode,
    model: str | None = None,
    weights: str | None = None,
    tile: object = 0,
    overlap: object = 16,
    device: str = "auto",
    device_index: object = None,
    num_streams: object = 1,
    batch: object = 0,
    fp16: object = None,
    rgb_mean: object = None,
    max_memory: object = 0,
    **unknown: object,
) -> vs.VideoNode:
    """Upscale an RGBS/RGBH clip with HAT; every problem is a ``vs.Error`` whose message says what to do.
    ``rgb_mean`` (``official``, ``0.5``, ``R,G,B``) overrides the mean recorded for the model; ``max_memory``
    (bytes, or a size such as ``"4G"``) caps the memory the CPU's automatic tile may bring the process to."""
    if unknown:
        names = ", ".join(sorted(unknown))
        known = ", ".join(("clip", "model", "weights", "device", *NUMBERS, "fp16", "rgb_mean", "max_memory"))
        raise error(f"unknown argument {names}: the arguments are {known}")
    clip = check_clip(clip)
    source = _model_source(model, weights)
    mean = _check_mean(rgb_mean)
    memory_cap = _check_memory_size(max_memory)
    tile_px, overlap_px = _whole("tile", tile), _whole("overlap", overlap)
    streams, tiles_per_pass = _whole("num_streams", num_streams), _whole("batch", batch)
    index = None if device_index is None else _whole("device_index", device_index)
    if streams > MAX_STREAMS:
        raise error(
            f"num_streams must be at most {MAX_STREAMS}, not {streams}: each stream holds a frame and the "
            "model's activations, and more streams than a few do not run faster; try 2 to 4"
        )
    if fp16 is not None and (isinstance(fp16, float) or fp16 not in (0, 1)):
        raise error(f"fp16 must be 0 or 1, not {fp16!r}")

    from hat_plugin.runtime import configure_process

    configure_process()  # before PyTorch is imported (the OpenMP thread policy is read when it loads)
    from hat_plugin import HATError, Upscaler, load_model
    from hat_plugin.device import resolve_device, resolve_precision
    from hat_plugin.options import EngineOptions
    from hat_plugin.precisions import precision_name

    from .frames import FrameCallback

    try:
        options = EngineOptions.from_environment(
            device=_device_spec(device, index),
            tile=tile_px,
            overlap=overlap_px,
            batch=tiles_per_pass,
            max_memory=memory_cap,
        )
        torch_device = resolve_device(options.device)
        asked = "auto" if fp16 is None else ("fp16" if fp16 else "fp32")
        native = NATIVE_PRECISION[clip.format.id]
        if asked == "auto" and torch_device.type == "cpu":  # the engine's choice, checked on this model
            options = options.replace(device=str(torch_device), precision="auto")
        else:
            dtype = resolve_precision(asked, torch_device, auto=native, force=options.force_precision)
            options = options.replace(device=str(torch_device), precision=precision_name(dtype))
        with contextlib.redirect_stdout(sys.stderr):  # stdout may carry the video (vspipe ... -)
            upscaler = Upscaler(source if mean is None else load_model(source, rgb_mean=mean), options)
    except HATError as exc:
        raise engine_error(exc) from None
    _check_memory(clip, upscaler.scale, streams, torch_device)
    return frame_graph(clip, FrameCallback(upscaler, clip, torch_device, streams))


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


def frame_graph(clip: vs.VideoNode, runner: FrameCallback) -> vs.VideoNode:
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


def _check_mean(rgb_mean: object) -> str | None:
    """The ``rgb_mean`` argument as text, checked (a ``vs.Error`` naming it otherwise)."""
    from hat_plugin.errors import OptionError
    from hat_plugin.rgb_mean import parse_rgb_mean

    if rgb_mean is None:
        return None
    text = rgb_mean.decode("utf-8", "replace") if isinstance(rgb_mean, bytes) else str(rgb_mean)
    try:
        parse_rgb_mean(text)
    except OptionError:
        raise error(
            f"rgb_mean={text!r}: give 'official', one number for all channels ('0.5') or 'R,G,B' from 0 to 1"
        ) from None
    return text


def _check_memory_size(value: object) -> int:
    """The ``max_memory`` argument in bytes: a whole number, or a size such as ``"4G"`` (the engine's rule,
    ``limits.memory_size``); a ``vs.Error`` naming the argument otherwise."""
    from hat_plugin.errors import OptionError
    from hat_plugin.limits import memory_size

    if isinstance(value, bytes):  # data from the script's map
        value = value.decode("utf-8", "replace")
    try:
        return memory_size(value if isinstance(value, int | str) else str(value))
    except OptionError as exc:
        raise engine_error(exc) from None


def _whole(name: str, value: object) -> int:
    """``value`` as a whole number of at least the argument's minimum (``NUMBERS``), else a ``vs.Error`` naming it:
    the engine's rule (``errors.whole_number``), so ``tile=2.5`` and ``tile="a"`` read as the engine's own do."""
    from hat_plugin.errors import OptionError, whole_number

    if isinstance(value, bytes):  # data from the script's map
        value = value.decode("utf-8", "replace")
    try:
        return whole_number(name, value, NUMBERS[name])
    except OptionError as exc:
        raise error(str(exc)) from None


def _device_spec(device: str, device_index: int | None) -> str:
    """Combine ``device`` and ``device_index`` (VapourSynth convention) into one spec like ``cuda:1``."""
    if device_index is None:
        return device
    kind = device.strip().lower()
    if kind not in ("auto", "cuda"):
        raise error(
            f"device_index applies to CUDA devices; got device={device!r}. Use device='cuda' "
            "with device_index, or a device like 'cuda:1' alone"
        )
    return f"cuda:{device_index}"
