"""The upscaling engine: a loaded HAT on a device and precision, applied to images of any size.

Data path: ``upscale`` (numpy image, any depth and channel layout) -> float tensor -> ``upscale_tensor``
(tiles -> model in batches -> feathered blend) -> back to the input's layout and depth.

RGBA: colour is premultiplied by alpha before upscaling (so transparent pixels, whose colour is arbitrary, cannot
bleed into visible ones) and divided by the upscaled alpha afterwards; alpha itself is upscaled by the network as
a grey image, in the same batch as the colour.
"""

from __future__ import annotations

import copy
import ctypes
import functools
import logging
import math
import os
import sys
import threading
import warnings

import numpy as np
import torch
from torch import Tensor

from .arch import HAT
from .checkpoint import load_model
from .device import free_memory, resolve_device, resolve_precision
from .errors import DeviceError, ImageError, OutOfMemoryError, is_out_of_memory
from .progress import CancelCheck, ProgressFn, raise_if_cancelled
from .tiling import Blender, TileGrid, plan_tiles

__all__ = ["Upscaler"]

log = logging.getLogger(__name__)


_HALF = (torch.float16, torch.bfloat16)
_MAX_AUTO_TILE = 512
_ALPHA_EPS = 1.0 / 65535


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)
_MMAP_THRESHOLD = 32 << 20  # glibc's upper limit on 64-bit
_TRIM_THRESHOLD = 1 << 30
_ALLOCATOR_OPT_OUT = "HAT_PLUGIN_NO_MALLOPT"


@functools.cache
def tune_allocator() -> bool:
    """Keep freed tensor buffers inside the process instead of returning them to the OS after every op.

    glibc serves blocks above its mmap threshold (128 KiB, adaptive) with fresh mmaps and trims the heap when
    its top is free: each forward pass then faults all of its activation memory in again, hundreds of
    thousands of minor page faults per tile, a large share of CPU time. Raising both thresholds once makes
    glibc reuse those pages. Linux with glibc only; set ``HAT_PLUGIN_NO_MALLOPT=1`` to opt out.
    Returns whether the tuning was applied.
    """
    if os.environ.get(_ALLOCATOR_OPT_OUT) or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (e.g. musl)
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    applied = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    log.debug("glibc allocator thresholds raised: %s", applied)
    return applied


class Upscaler:
    """A HAT model ready to upscale images.

    Args:
        model: a weights file path, a manifest model name (fetched on demand), or a loaded ``HAT`` module.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        precision: ``auto`` (fp16 on CUDA, fp32 elsewhere), ``fp32``, ``fp16`` or ``bf16``.
        tile: tile side in input pixels, rounded up to a multiple of the window size; 0 picks it from free memory.
        overlap: input pixels shared by neighbouring tiles (cross-faded).
        batch: tiles per forward pass; 0 picks it from free memory (1 on CPU).
    """

    def __init__(
        self,
        model: str | os.PathLike | HAT,
        device: str | torch.device = "auto",
        precision: str | torch.dtype = "auto",
        tile: int = 0,
        overlap: int = 16,
        batch: int = 0,
    ) -> None:
        tune_allocator()
        self.device = resolve_device(device)
        self.dtype = resolve_precision(precision, self.device)
        if tile < 0 or overlap < 0 or batch < 0:
            raise ValueError("tile, overlap and batch must be >= 0")
        owned = not isinstance(model, HAT)
        net = load_model(model) if owned else model
        self.config = net.config
        self.window = net.config.window_size
        self.tile = -(-tile // self.window) * self.window if tile else 0
        self.overlap = overlap
        self.batch = batch
        self._sizes: dict[tuple[int, int], tuple[int, int]] = {}  # (h, w) -> (tile, batch) chosen for it
        self._lock = threading.Lock()
        # Half precision keeps the float32 weights (on the CPU) for the rare batch that overflows, see _run.
        self._fp32_source: HAT | None = net if self.dtype in _HALF else None
        self._fp32: HAT | None = None
        try:
            placed = _param(net).device == self.device and _param(net).dtype == self.dtype
            self.model = net if placed else (net if owned and self._fp32_source is None else copy.deepcopy(net))
            self.model = self.model.to(device=self.device, dtype=self.dtype).eval()
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            raise DeviceError(f"cannot place the model on {self.device}: {exc}") from None

    @property
    def scale(self) -> int:
        """Output pixels per input pixel along each axis."""
        return self.config.upscale

    # ---- numpy images ------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def upscale(self, image: np.ndarray, progress: ProgressFn | None = None, cancel: CancelCheck = None) -> np.ndarray:
        """Upscale an ``HxW``, ``HxWx1``, ``HxWx2`` (grey+alpha), ``HxWx3`` or ``HxWx4`` array.

        Integer inputs (uint8, uint16) come back in the same depth; float inputs (float16/32/64, in [0, 1]) as
        float32 clamped to [0, 1], except float16 which stays float16.
        """
        pixels, dtype, squeeze = _to_float(image)
        h, w, channels = pixels.shape
        colour_channels = 1 if channels in (1, 2) else 3
        colour = pixels[..., :colour_channels]
        alpha = pixels[..., colour_channels] if channels in (2, 4) else None
        if alpha is not None and alpha.min() >= 1.0:
            alpha = None  # fully opaque: upscale colour only, alpha stays 1
            opaque = True
        else:
            opaque = channels in (2, 4)
        if alpha is not None:
            colour = colour * alpha[..., None]
        planes = [np.broadcast_to(colour, (h, w, 3)) if colour_channels == 1 else colour]
        if alpha is not None:
            planes.append(np.broadcast_to(alpha[..., None], (h, w, 3)))
        batch = torch.from_numpy(np.stack(planes)).permute(0, 3, 1, 2)
        out = self.upscale_tensor(batch, progress=progress, cancel=cancel).clamp_(0, 1)
        result = out[0]
        if colour_channels == 1:
            result = result.mean(0, keepdim=True)
        if alpha is not None:
            up_alpha = out[1].mean(0, keepdim=True)
            result = torch.where(up_alpha > _ALPHA_EPS, result / up_alpha.clamp_min(_ALPHA_EPS), 0.0).clamp_(0, 1)
            result = torch.cat([result, up_alpha])
        elif opaque:
            result = torch.cat([result, torch.ones_like(result[:1])])
        return _from_float(result, dtype, squeeze)

    # ---- tensors -----------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def upscale_tensor(self, x: Tensor, progress: ProgressFn | None = None, cancel: CancelCheck = None) -> Tensor:
        """Upscale ``(B, 3, H, W)`` (or ``(3, H, W)``) floats in [0, 1]; returns float32 on ``x``'s device."""
        squeeze = x.dim() == 3
        if squeeze:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[1] != self.config.in_chans:
            raise ImageError(f"expected a (B, {self.config.in_chans}, H, W) tensor, got {tuple(x.shape)}")
        if x.shape[-1] < 1 or x.shape[-2] < 1:
            raise ImageError(f"cannot upscale an empty image of size {tuple(x.shape[-2:])}")
        size = (x.shape[-2], x.shape[-1])
        tile, batch = self._plan(size)
        while True:
            try:
                out = self._run_tiles(x, tile, batch, progress, cancel)
                break
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                self._empty_cache()
                if batch > 1:
                    batch //= 2
                elif tile > 2 * self.window:
                    tile = max(2 * self.window, (tile // 2) // self.window * self.window)
                else:
                    raise OutOfMemoryError(
                        f"out of memory on {self.device} even with {tile}px tiles: close other programs, "
                        "use a smaller model, or run on the CPU"
                    ) from None
                with self._lock:  # later calls of this size start from what fitted
                    self._sizes[size] = (tile, batch)
                log.warning("out of memory: retrying with tile %d, batch %d", tile, batch)
        return out[0] if squeeze else out

    def _run_tiles(self, x: Tensor, tile: int, batch: int, progress: ProgressFn | None, cancel: CancelCheck) -> Tensor:
        b, c, h, w = x.shape
        grid = plan_tiles(h, w, tile, self.overlap, self.scale, self.window)
        if len(grid.tiles) == 1:
            raise_if_cancelled(cancel, "upscaling")
            out = self._run(x).to(x.device)
            if progress:
                progress(1, 1)
            return out
        blender = Blender(grid, b, c, x.device)
        jobs = [(i, k) for i in range(b) for k in range(len(grid.tiles))]
        done = 0
        for start in range(0, len(jobs), batch):
            raise_if_cancelled(cancel, "upscaling")
            chunk = jobs[start : start + batch]
            crops = torch.stack([_crop(x[i], grid, k) for i, k in chunk])
            out = self._run(crops)
            for (i, k), tile_out in zip(chunk, out, strict=True):
                blender.add(k, i, tile_out)
            done += len(chunk)
            if progress:
                progress(done, len(jobs))
        return blender.result()

    def _plan(self, size: tuple[int, int]) -> tuple[int, int]:
        """Tile and batch for an input size, chosen once: every frame of a video then shares one tiling (no
        seams moving with free memory), and a size that ran out of memory keeps its smaller tiles."""
        with self._lock:
            if size not in self._sizes:
                tile = self.tile or self._auto_tile(*size)
                self._sizes[size] = (tile, self.batch or self._auto_batch(tile))
            return self._sizes[size]

    def _run(self, x: Tensor) -> Tensor:
        """One forward pass. A half-precision batch with non-finite output is redone in fp32 (rare overflow)."""
        out = self.model(x.to(self.device, non_blocking=True))
        if self.dtype in _HALF and not torch.isfinite(out).all():
            warnings.warn(
                f"{self.dtype} overflowed on this input; recomputing it in fp32", RuntimeWarning, stacklevel=2
            )
            out = self._fp32_model()(x.to(self.device))
        return out.float()

    def _fp32_model(self) -> HAT:
        """The float32 twin of a half-precision model, placed on the device on first need (thread-safe)."""
        with self._lock:
            if self._fp32 is None:
                self._fp32 = copy.deepcopy(self._fp32_source).to(self.device, torch.float32).eval()
            return self._fp32

    # ---- sizing ------------------------------------------------------------------------------------------------

    def _bytes_per_pixel(self) -> int:
        """Peak activation memory per input pixel of one forward pass (measured shape of the estimate)."""
        element = torch.finfo(self.dtype).bits // 8
        body = 24 * self.config.embed_dim * 4  # stream in fp32 + block temporaries
        tail = 3 * self.config.num_feat * 4 * self.scale * self.scale * element
        return body + tail

    def _auto_tile(self, h: int, w: int) -> int:
        budget = free_memory(self.device) * (0.5 if self.device.type == "cuda" else 0.25)
        side = int(math.sqrt(max(budget, 0) / self._bytes_per_pixel()))
        limit = _MAX_AUTO_TILE if self.device.type == "cpu" else 2048
        side = max(2 * self.window, min(side, limit) // self.window * self.window)
        if h <= side and w <= side:
            return max(h, w, self.window)
        return side

    def _auto_batch(self, tile: int) -> int:
        if self.device.type == "cpu":
            return 1
        budget = free_memory(self.device) * 0.5
        return int(max(1, min(16, budget // (self._bytes_per_pixel() * tile * tile))))

    def _empty_cache(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def _param(net: HAT) -> Tensor:
    return next(net.parameters())


def _crop(image: Tensor, grid: TileGrid, index: int) -> Tensor:
    t = grid.tiles[index]
    return image[:, t.top : t.top + t.height, t.left : t.left + t.width]


def _to_float(image: np.ndarray) -> tuple[np.ndarray, np.dtype, bool]:
    """Validate an image array and return float32 ``HxWxC`` in [0, 1], its dtype, and whether it was 2-D."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy array, got {type(image).__name__}")
    squeeze = image.ndim == 2
    if squeeze:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"expected an HxW or HxWxC image with 1-4 channels, got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ImageError(f"cannot upscale an empty image of shape {image.shape}")
    if image.dtype == np.uint8:
        pixels = image.astype(np.float32) / 255.0
    elif image.dtype == np.uint16:
        pixels = image.astype(np.float32) / 65535.0
    elif image.dtype in (np.float16, np.float32, np.float64):
        pixels = np.clip(np.nan_to_num(image.astype(np.float32)), 0.0, 1.0)
    else:
        raise ImageError(f"unsupported pixel type {image.dtype}: use uint8, uint16 or float in [0, 1]")
    return np.ascontiguousarray(pixels), image.dtype, squeeze


def _from_float(result: Tensor, dtype: np.dtype, squeeze: bool) -> np.ndarray:
    """``(C, H, W)`` floats in [0, 1] (modified in place) -> an ``HxWxC`` (or ``HxW``) array of ``dtype``.

    Converted in torch, in place where possible: no full-size float64/float32 temporaries for big outputs.
    """
    if dtype == np.uint8:
        result = result.mul_(255.0).round_().to(torch.uint8)
    elif dtype == np.uint16:
        result = result.mul_(65535.0).round_().to(torch.uint16)
    elif dtype == np.float16:
        result = result.to(torch.float16)
    out = result.permute(1, 2, 0).contiguous().numpy()
    return out[..., 0] if squeeze else out
