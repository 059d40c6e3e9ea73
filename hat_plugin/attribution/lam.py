"""LAM, the Local Attribution Map (Gu & Dong, CVPR 2021): which input pixels a super-resolution network used for
a small window of its output, and how widely (the Diffusion Index).

Data path: input image -> region the network sees (``region``) -> path images and derivatives, a batch of steps at
a time (``blur``) -> network forward -> objective on the output window (``objective``) -> backward to the path
images -> gradient x path derivative, summed -> mean over the steps -> ``|sum over channels|`` / max -> DI
(``gini``). Every step follows the official LAM code's behaviour; see ``docs/attribution.md``.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from ..arch import HAT
from ..device import free_memory, resolve_device
from ..errors import (
    DeviceError,
    ImageError,
    OptionError,
    OutOfMemoryError,
    is_out_of_memory,
    out_of_memory_message,
    whole_number,
)
from ..progress import CancelCheck, ProgressFn, raise_if_cancelled
from .blur import BlurPath
from .gini import gini
from .objective import gradient_magnitude_sum
from .region import Crop, CropPolicy, Region, plan_region

if TYPE_CHECKING:
    from ..engine import Upscaler

__all__ = ["LAMResult", "lam"]

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float64": torch.float64, "fp64": torch.float64}
_CPU_BATCH_CAP = 8  # more path images per pass gain nothing on a CPU (docs/benchmarks.md) but cost memory
_GPU_BATCH_CAP = 64
_GENERIC_BYTES_PER_PIXEL = 4096  # activation elements per input pixel assumed for a network that is not a HAT


@dataclass(frozen=True)
class LAMResult:
    """The outcome of one LAM run."""

    map: np.ndarray
    """``(H, W)`` float64, input size: ``|attribution summed over channels|`` normalised to a maximum of 1."""
    di: float
    """Diffusion Index, ``(1 - gini) * 100``: the share of the input the network drew on (0-100)."""
    gini: float
    """Gini coefficient of ``map``."""
    attribution: np.ndarray
    """``(3, H, W)`` float64: the path-integrated gradient per channel, before the sum and normalisation."""
    x: int
    y: int
    window: int
    scale: int
    crop: Crop
    """The input box the network saw (input pixels); attribution outside it is 0."""
    exact: bool
    """True when the network saw the whole image (the official computation); False for a crop."""
    steps: int
    sigma: float
    kernel_size: int
    batch: int
    """Path images per forward/backward pass that fitted in memory."""
    device: str
    seconds: float


def lam(
    model: str | os.PathLike[str] | nn.Module | Upscaler,
    lr_image: np.ndarray,
    x: int,
    y: int,
    window: int = 16,
    steps: int = 50,
    sigma: float = 1.2,
    kernel_size: int = 9,
    *,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str = torch.float32,
    batch: int = 0,
    crop: CropPolicy = "auto",
    progress: ProgressFn | None = None,
    cancel: CancelCheck = None,
) -> LAMResult:
    """The Local Attribution Map of the ``window x window`` output window whose top-left corner is output pixel
    ``(x, y)`` (x = column, y = row).

    Args:
        model: a ``HAT`` (or any module mapping ``(B, 3, H, W)`` to ``(B, 3, sH, sW)``), an ``Upscaler``, or a
            model name / weights file as ``load_model`` takes. The network runs in eval mode; a module given is
            not changed (it is copied when it must move to another device or dtype).
        lr_image: the input, ``HxWx3`` uint8/uint16 or float in [0, 1] (grey ``HxW`` or ``HxWx1`` is repeated
            into RGB; an alpha channel, ``HxWx2`` or ``HxWx4``, is ignored).
        window, steps, sigma, kernel_size: the official LAM settings (window side in output pixels; blur path
            steps, starting sigma, kernel side).
        device: where the network runs; default: where the given module or Upscaler is, else ``auto``.
        dtype: ``float32`` (the official precision) or ``float64``.
        batch: path images per forward/backward pass; 0 picks it from free memory, and halves it on out-of-memory.
        crop: what the network sees: ``"auto"``, ``"full"`` or a margin in input pixels (``region.CropPolicy``).
        progress: ``progress(steps_done, steps)`` after each pass.
        cancel: checked before each pass; raises ``Cancelled``.
    """
    started = time.perf_counter()
    _check_settings(x, y, window, steps, sigma, kernel_size, batch)
    compute = _dtype(dtype)
    pixels = _rgb(lr_image)
    height, width = pixels.shape[:2]
    with _network(model, device, compute) as (net, target):
        scale, snap = _scale_and_snap(net, target, compute)
        region = plan_region((height, width), scale, int(x), int(y), window, crop, snap)
        box = region.crop
        image = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))
        path = BlurPath(image, (box.top, box.left, box.height, box.width), sigma, steps, kernel_size)
        size = batch or _auto_batch(net, target, compute, box.height * box.width, steps)
        total, size = _integrate(net, path, region, scale, target, compute, size, progress, cancel)
    attribution = np.zeros((3, height, width), dtype=np.float64)
    attribution[:, box.top : box.top + box.height, box.left : box.left + box.width] = total.numpy() / steps
    summed = np.abs(attribution.sum(axis=0))
    peak = float(summed.max())
    if not math.isfinite(peak) or peak <= 0.0:
        raise OptionError(
            "the attribution is zero everywhere: the output window has no edges to explain, or the output has "
            "exactly flat spots (LAM's objective then has no gradient, as in the official code), or sigma is 0; "
            "choose a window with detail or a sigma above 0"
        )
    amap = summed / peak
    coefficient = gini(amap)
    return LAMResult(
        map=amap,
        di=(1.0 - coefficient) * 100.0,
        gini=coefficient,
        attribution=attribution,
        x=int(x),
        y=int(y),
        window=window,
        scale=scale,
        crop=box,
        exact=region.exact,
        steps=steps,
        sigma=float(sigma),
        kernel_size=kernel_size,
        batch=size,
        device=str(target),
        seconds=time.perf_counter() - started,
    )


# ---------------------------------------------------------------------------------------------- the integral


def _integrate(
    net: nn.Module,
    path: BlurPath,
    region: Region,
    scale: int,
    device: torch.device,
    dtype: torch.dtype,
    batch: int,
    progress: ProgressFn | None,
    cancel: CancelCheck,
) -> tuple[Tensor, int]:
    """Sum over the steps of gradient x path derivative (float64, CPU), a batch of path images per pass; the
    batch halves on out-of-memory. Returns the sum and the batch that fitted."""
    box = region.crop
    total = torch.zeros((3, box.height, box.width), dtype=torch.float64)
    done = 0
    while done < path.steps:
        raise_if_cancelled(cancel, "LAM attribution")
        count = min(batch, path.steps - done)
        images, derivatives = path.segment(done, done + count)
        try:
            grads = _input_gradients(net, images, region, scale, device, dtype)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            _empty_cache(device)
            if batch == 1:
                what = f"LAM on a {box.width}x{box.height} input, one path image at a time; a smaller crop needs less"
                raise OutOfMemoryError(out_of_memory_message(device, what=what)) from None
            batch = max(1, count // 2)
            continue
        total += (grads * derivatives).sum(dim=0)
        done += count
        if progress is not None:
            progress(done, path.steps)
    return total, batch


def _input_gradients(
    net: nn.Module, images: Tensor, region: Region, scale: int, device: torch.device, dtype: torch.dtype
) -> Tensor:
    """d(objective)/d(path image) for each image of the batch, as float64 on the CPU; NaN entries (a window
    pixel of zero gradient magnitude makes the square root's derivative infinite) become 0, as officially."""
    inputs = images.to(device=device, dtype=dtype).requires_grad_(True)
    out = net(inputs)
    expected = (inputs.shape[0], 3, inputs.shape[2] * scale, inputs.shape[3] * scale)
    if tuple(out.shape) != expected:
        raise OptionError(f"the model returned {tuple(out.shape)} for {tuple(inputs.shape)}; expected {expected}")
    objective = gradient_magnitude_sum(
        out, region.window_top, region.window_left, region.window_rows, region.window_cols
    )
    (grad,) = torch.autograd.grad(objective, inputs, allow_unused=True)
    if grad is None:  # the output does not depend on the input at all
        return torch.zeros(images.shape, dtype=torch.float64)
    grad = torch.where(torch.isnan(grad), torch.zeros_like(grad), grad)
    return grad.detach().to(device="cpu", dtype=torch.float64)


# ------------------------------------------------------------------------------------------------- the network


@contextmanager
def _network(
    model: str | os.PathLike[str] | nn.Module | Upscaler, device: str | torch.device | None, dtype: torch.dtype
) -> Iterator[tuple[nn.Module, torch.device]]:
    """The network on its device in ``dtype``, in eval mode with gradients enabled, for the block's duration.

    A module given by the caller is used in place when it is already on the device in the dtype (its train/eval
    mode is restored afterwards), else copied; a name or file is loaded.
    """
    from ..engine import Upscaler  # here: the engine module is heavy and LAM of a bare module does not need it

    module: nn.Module
    if isinstance(model, Upscaler):
        inner: object = model.model
        if not isinstance(inner, nn.Module):
            raise OptionError("this Upscaler was closed; create a new one")
        module = inner
    elif isinstance(model, nn.Module):
        module = model
    elif isinstance(model, str | os.PathLike):
        module = _load(model, device, dtype)
    else:
        raise OptionError(f"model must be a HAT module, an Upscaler, a model name or a weights file, not {model!r}")
    target = resolve_device(device) if device is not None else _home(module)
    if target.type == "mps" and dtype == torch.float64:
        raise DeviceError("float64 is not available on MPS; use float32 or the CPU")
    if not _placed(module, target, dtype):
        try:
            module = copy.deepcopy(module).to(device=target, dtype=dtype)
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            raise DeviceError(f"cannot place the model on {target}: {exc}") from None
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode(False), torch.enable_grad():
            yield module, target
    finally:
        module.train(was_training)


def _load(source: str | os.PathLike[str], device: str | torch.device | None, dtype: torch.dtype) -> nn.Module:
    from ..checkpoint import load_model

    return load_model(source, device=resolve_device(device or "auto"), dtype=dtype)


def _home(module: nn.Module) -> torch.device:
    """Where a module's weights are (``auto``'s choice for a module without any)."""
    tensor: Tensor | None = next(module.parameters(), None)
    if tensor is None:
        tensor = next(module.buffers(), None)
    return tensor.device if tensor is not None else resolve_device("auto")


def _placed(module: nn.Module, device: torch.device, dtype: torch.dtype) -> bool:
    """Whether every floating-point weight of ``module`` is on ``device`` in ``dtype``."""
    for tensor in [*module.parameters(), *module.buffers()]:
        if tensor.device.type != device.type or (device.index is not None and tensor.device.index != device.index):
            return False
        if tensor.is_floating_point() and tensor.dtype != dtype:
            return False
    return True


def _scale_and_snap(net: nn.Module, device: torch.device, dtype: torch.dtype) -> tuple[int, int]:
    """The network's upscaling factor and the grid a crop should align to (HAT: its attention window)."""
    if isinstance(net, HAT):
        return net.config.upscale, net.config.window_size
    declared = getattr(net, "scale", None) or getattr(net, "upscale", None)
    if isinstance(declared, int) and not isinstance(declared, bool) and declared >= 1:
        return declared, 1
    with torch.no_grad():
        probe = net(torch.zeros((1, 3, 8, 8), device=device, dtype=dtype))
    factor = probe.shape[-1] // 8
    if probe.dim() != 4 or factor < 1 or tuple(probe.shape[-2:]) != (8 * factor, 8 * factor):
        raise OptionError(f"the model maps a 8x8 input to {tuple(probe.shape)}; it is not an x-N upscaler")
    return factor, 1


def _auto_batch(net: nn.Module, device: torch.device, dtype: torch.dtype, pixels: int, steps: int) -> int:
    """Path images per pass that the free memory should hold (the forward activations kept for backward)."""
    element = torch.finfo(dtype).bits // 8
    if isinstance(net, HAT):
        cfg = net.config
        blocks = sum(cfg.depths) + len(cfg.depths)  # HABs and one OCAB per RHAG
        per_pixel = element * (24 * cfg.embed_dim * blocks + 8 * cfg.num_feat * cfg.upscale**2)
    else:
        per_pixel = element * _GENERIC_BYTES_PER_PIXEL
    budget = free_memory(device) * (0.5 if device.type == "cuda" else 0.25)
    cap = _CPU_BATCH_CAP if device.type == "cpu" else _GPU_BATCH_CAP
    return int(max(1, min(steps, cap, budget // max(1, per_pixel * pixels))))


def _empty_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------------ arguments


def _check_settings(
    x: object, y: object, window: object, steps: object, sigma: object, kernel_size: object, batch: object
) -> None:
    for name, value in (("x", x), ("y", y)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise OptionError(f"{name} must be a whole number of output pixels, not {value!r}")
    whole_number("window", window, 1)
    whole_number("steps", steps, 1)
    whole_number("kernel_size", kernel_size, 1)
    whole_number("batch", batch, 0)
    if isinstance(sigma, bool) or not isinstance(sigma, int | float) or not math.isfinite(sigma) or sigma < 0:
        raise OptionError(f"sigma must be a number of 0 or more, not {sigma!r}")


def _dtype(spec: torch.dtype | str) -> torch.dtype:
    if isinstance(spec, torch.dtype) and spec in (torch.float32, torch.float64):
        return spec
    found = _DTYPES.get(str(spec).strip().lower()) if isinstance(spec, str) else None
    if found is None:
        raise OptionError(f"dtype must be float32 or float64, not {spec!r}")
    return found


def _rgb(image: Any) -> np.ndarray:
    """An ``HxWx3`` float64 copy of the input in [0, 1] (integers divided by their maximum, NaN -> 0, clipped)."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected the input image as a numpy array, got {type(image).__name__}")
    pixels = image[..., None] if image.ndim == 2 else image
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"expected an HxW or HxWxC image (grey, grey+alpha, RGB or RGBA), got shape {image.shape}")
    if pixels.shape[0] < 2 or pixels.shape[1] < 2:
        raise ImageError(f"the image ({pixels.shape[1]}x{pixels.shape[0]}) is too small: at least 2x2 pixels")
    if pixels.dtype in (np.uint8, np.uint16):
        values = pixels.astype(np.float64) / float(np.iinfo(pixels.dtype).max)
    elif pixels.dtype.kind == "f":
        values = np.clip(np.nan_to_num(pixels.astype(np.float64), nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    else:
        raise ImageError(f"unsupported pixel type {pixels.dtype}: use uint8, uint16 or float in [0, 1]")
    if values.shape[2] in (1, 2):
        values = np.repeat(values[..., :1], 3, axis=2)
    return np.ascontiguousarray(values[..., :3])
