"""The upscaling engine: a loaded HAT on a device and precision, applied to images of any size.

Data path: ``upscale`` (numpy image, any depth and channel layout) -> float tensor -> ``upscale_tensor``
(tiles -> model in batches -> feathered blend) -> back to the input's layout and depth.

RGBA: colour is premultiplied by alpha before upscaling (so transparent pixels, whose colour is arbitrary, cannot
bleed into visible ones) and divided by the upscaled alpha afterwards; alpha itself is upscaled by the network as
a grey image, in the same batch as the colour. Where the input is fully transparent (a pixel and its neighbours),
the output is too: the network's faint ringing must not put specks into an empty background.
"""

from __future__ import annotations

import copy
import enum
import logging
import math
import os
import threading
import warnings
from collections import OrderedDict
from types import TracebackType
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .arch import HAT
from .checkpoint import load_model
from .device import free_memory, resolve_device, resolve_precision
from .errors import (
    DeviceError,
    HATError,
    ImageError,
    OptionError,
    OutOfMemoryError,
    is_out_of_memory,
    out_of_memory_message,
)
from .limits import available_memory, bytes_per_pixel, resident_memory
from .options import EngineOptions
from .pixels import from_unit_float, to_unit_float
from .precisions import PRECISIONS, precision_name
from .progress import CancelCheck, ProgressFn, raise_if_cancelled
from .runners import Runner, make_runner
from .tiling import Blender, PlacedWeights, TileGrid, place_weights, plan_tiles, tile_layout
from .transfer import HostBlend, Staging, StagingSlot, to_host

__all__ = ["Upscaler"]

log = logging.getLogger(__name__)


_HALF = (torch.float16, torch.bfloat16)
_MAX_AUTO_TILE = 512
_CPU_FREE_SHARE = 0.25  # of the free memory, what one CPU tile's forward may take
_REUSED_BLOCK = 32 << 20  # glibc's largest mmap threshold: buffers above it are not reused (see _fault_free_side)
_ALPHA_EPS = 1.0 / 65535
_PLANS_KEPT = 16  # tile plans (with their device weights) kept per engine: one per input size in use
_OUTPUT_SHARE = 0.25  # a CUDA engine blends on the device when the float32 output takes at most this much free memory
_CHECK_RESULT_FROM = 1 << 30  # results smaller than this skip the free-memory check (it costs a system call)


class _Unset(enum.Enum):
    """Marks a keyword shortcut that was not given (``None`` is a value to check, not an absence)."""

    UNSET = enum.auto()


_UNSET = _Unset.UNSET


class Upscaler:
    """A HAT model ready to upscale images.

    Args:
        model: a weights file path, a manifest model name (fetched on demand), or a loaded ``HAT`` module.
        options: how it runs (``EngineOptions``); by default ``EngineOptions.from_environment()``.
        device, precision, tile, overlap, batch, runner, pad_heads, max_memory: shortcuts that replace those fields of
            ``options`` (see ``EngineOptions``); ``device`` may be a ``torch.device``, ``precision`` a dtype.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | HAT,
        options: EngineOptions | None = None,
        *,
        device: str | torch.device | _Unset = _UNSET,
        precision: str | torch.dtype | _Unset = _UNSET,
        tile: int | _Unset = _UNSET,
        overlap: int | _Unset = _UNSET,
        batch: int | _Unset = _UNSET,
        runner: str | _Unset = _UNSET,
        pad_heads: bool | _Unset = _UNSET,
        max_memory: int | str | _Unset = _UNSET,
    ) -> None:
        if options is not None and not isinstance(options, EngineOptions):
            raise OptionError(f"options must be an EngineOptions, not {type(options).__name__}")
        given = {
            "tile": tile,
            "overlap": overlap,
            "batch": batch,
            "runner": runner,
            "pad_heads": pad_heads,
            "max_memory": max_memory,
        }
        changes: dict[str, Any] = {key: value for key, value in given.items() if value is not _UNSET}
        if not isinstance(device, _Unset):
            changes["device"] = "auto" if device is None else str(device)
        if not isinstance(precision, _Unset):
            changes["precision"] = precision_name(precision)
        base = options if options is not None else EngineOptions.from_environment()
        self.options = base.replace(**changes) if changes else base
        self.device = resolve_device(self.options.device)
        self.dtype = resolve_precision(self.options.precision, self.device, force=self.options.force_precision)
        self.max_memory = int(self.options.max_memory)
        owned = not isinstance(model, HAT)
        net = model if isinstance(model, HAT) else load_model(model)
        self.precision_reason = ""
        """Why ``auto`` ran in ``dtype`` on the CPU (the machine's choice, checked on this network); empty otherwise."""
        if self.options.precision == "auto" and self.device.type == "cpu":
            from .precision_probe import auto_for_model

            choice = auto_for_model(net)
            self.dtype, self.precision_reason = PRECISIONS[choice.precision], choice.reason
        compute = torch.float32 if self.dtype == torch.qint8 else self.dtype
        self.config = net.config
        self.window = net.config.window_size
        self.tile = -(-self.options.tile // self.window) * self.window if self.options.tile else 0
        self.overlap = self.options.overlap
        self.batch = self.options.batch
        self._sizes: dict[tuple[int, int], tuple[int, int]] = {}  # (h, w) -> (tile, batch) chosen for it
        self._plans: OrderedDict[tuple[int, int, int], tuple[TileGrid, PlacedWeights]] = OrderedDict()
        self._lock = threading.Lock()
        self._staging = Staging(self.device)  # reused host buffers for the copies of each call in flight
        # Half precision keeps the float32 weights (on the CPU) for the rare batch that overflows, see _run.
        self._fp32_source: HAT | None = net if self.dtype in _HALF else None
        self._fp32: HAT | None = None
        self._closed = False
        try:
            placed = _param(net).device == self.device and _param(net).dtype == compute
            placed = placed and net.pad_heads == self.options.pad_heads
            self.model = net if placed else (net if owned and self._fp32_source is None else copy.deepcopy(net))
            self.model = self.model.to(device=self.device, dtype=compute).eval()
            self.model.pad_heads = self.options.pad_heads
            if self.dtype == torch.qint8:
                self.model = _quantized(self.model)
            self._owns_model = owned or self.model is not net  # the caller's own module is never emptied
            _prime(self.model, self.device)
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            raise DeviceError(f"cannot place the model on {self.device}: {exc}") from None
        self._runner: Runner | None = make_runner(
            self.model, self.device, self.options.runner, self.options.compile_mode
        )

    @property
    def scale(self) -> int:
        """Output pixels per input pixel along each axis."""
        return self.config.upscale

    def close(self) -> None:
        """Release the model's memory (a module passed in by the caller is left alone) and the engine's caches;
        the engine cannot be used afterwards."""
        with self._lock:
            self._closed = True
            if self._owns_model:
                self.model = self.model.to("meta")  # frees the weights' memory; the object stays valid
            self._runner = None
            self._fp32 = self._fp32_source = None
            self._plans.clear()
            self._staging = Staging(self.device)  # the slots' host buffers (pinned on CUDA) go with the old one
        self._empty_cache()

    def __enter__(self) -> Upscaler:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---- numpy images ------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def upscale(self, image: np.ndarray, progress: ProgressFn | None = None, cancel: CancelCheck = None) -> np.ndarray:
        """Upscale an ``HxW``, ``HxWx1``, ``HxWx2`` (grey+alpha), ``HxWx3`` or ``HxWx4`` array.

        Integer inputs (uint8, uint16) come back in the same depth; float inputs (float16/32/64, in [0, 1]) as
        float32 clamped to [0, 1], except float16 which stays float16.
        """
        if isinstance(image, np.ndarray) and image.ndim >= 2:
            self._check_fits(image.shape[0], image.shape[1], alpha=image.ndim == 3 and image.shape[2] in (2, 4))
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
        out = self.upscale_tensor(batch, progress=progress, cancel=cancel)
        result = out[0]
        if colour_channels == 1:
            result = result.mean(0, keepdim=True)
        if alpha is not None:
            up_alpha = _clear_where_transparent(out[1].mean(0, keepdim=True), alpha, self.scale)
            result = torch.where(up_alpha > _ALPHA_EPS, result / up_alpha.clamp_min(_ALPHA_EPS), 0.0).clamp_(0, 1)
            result = torch.cat([result, up_alpha])
        elif opaque:
            result = torch.cat([result, torch.ones_like(result[:1])])
        return _from_float(result, dtype, squeeze)

    # ---- tensors -----------------------------------------------------------------------------------------------

    @torch.inference_mode()
    def upscale_tensor(self, x: Tensor, progress: ProgressFn | None = None, cancel: CancelCheck = None) -> Tensor:
        """Upscale ``(B, 3, H, W)`` (or ``(3, H, W)``) floats in [0, 1]; returns float32 in [0, 1] on ``x``'s
        device. Non-finite inputs are cleaned (NaN -> 0) first; a non-finite output (damaged weights) is an error.
        """
        if not isinstance(x, Tensor):
            raise ImageError(f"expected a torch tensor, got {type(x).__name__}")
        if self._closed:
            raise HATError("this Upscaler was closed; create a new one")
        squeeze = x.dim() == 3
        if squeeze:
            x = x.unsqueeze(0)
        if x.dim() != 4 or x.shape[1] != self.config.in_chans:
            raise ImageError(f"expected a (B, {self.config.in_chans}, H, W) tensor, got {tuple(x.shape)}")
        if x.shape[-1] < 1 or x.shape[-2] < 1:
            raise ImageError(f"cannot upscale an empty image of size {tuple(x.shape[-2:])}")
        if x.shape[0] < 1:
            raise ImageError(f"cannot upscale an empty batch: the tensor is {tuple(x.shape)}")
        if not x.dtype.is_floating_point:
            raise ImageError(f"expected float pixels in [0, 1], got a {str(x.dtype).removeprefix('torch.')} tensor")
        if x.device.type == "meta":
            raise ImageError("the tensor is on the meta device: it has a shape but no pixels to upscale")
        size = (x.shape[-2], x.shape[-1])
        result_bytes = x.shape[0] * x.shape[1] * size[0] * size[1] * self.scale**2 * 4
        if result_bytes > _CHECK_RESULT_FROM and result_bytes > free_memory(x.device):
            raise OutOfMemoryError(
                f"the result of {tuple(x.shape)} x{self.scale} needs {result_bytes / 1e9:,.1f} GB on {x.device}, more "
                "than is free there; upscale it in parts or on a device with more memory"
            )
        tile, batch = self._plan(size)
        with self._staging.slot() as slot:
            out = self._fitted(x, size, tile, batch, slot, progress, cancel)
        out.clamp_(0.0, 1.0)
        out = to_host(out, x.device)
        return out[0] if squeeze else out

    def _fitted(
        self,
        x: Tensor,
        size: tuple[int, int],
        tile: int,
        batch: int,
        slot: StagingSlot,
        progress: ProgressFn | None,
        cancel: CancelCheck,
    ) -> Tensor:
        """The upscaled ``x`` (on the device or the host), retried with smaller tiles and batches (or blended on
        the host) while the device runs out of memory."""
        staged = self._stage(x, slot)
        while True:
            try:
                return self._checked(staged, tile, batch, slot, progress, cancel)
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                self._empty_cache()
                if staged is not x:  # the output did not fit on the device after all: blend on the host
                    staged = x
                elif batch > 1:
                    batch //= 2
                elif tile > 2 * self.window:
                    tile = max(2 * self.window, (tile // 2) // self.window * self.window)
                else:
                    raise OutOfMemoryError(out_of_memory_message(self.device, tile)) from None
                with self._lock:  # later calls of this size start from what fitted
                    self._sizes[size] = (tile, batch)
                log.warning("out of memory: retrying with tile %d, batch %d", tile, batch)

    def _stage(self, x: Tensor, slot: StagingSlot) -> Tensor:
        """A CUDA engine takes a host image onto the device once (pinned, non-blocking) when the float32 output
        fits there too: tiles are then cut and blended on the GPU and the result comes back in one copy."""
        if self.device.type != "cuda" or x.device.type != "cpu":
            return x
        b, c, h, w = x.shape
        out_bytes = b * c * h * w * self.scale * self.scale * 4
        return slot.upload(x, "image") if out_bytes <= _OUTPUT_SHARE * free_memory(self.device) else x

    def _checked(
        self, x: Tensor, tile: int, batch: int, slot: StagingSlot, progress: ProgressFn | None, cancel: CancelCheck
    ) -> Tensor:
        """Every tile, then one look at whether all outputs were finite: a single wait for the device per image,
        none inside the tile loop. Half precision that overflowed is redone in fp32; a non-finite fp32 output
        means the weights are broken, which is an error rather than black pixels."""
        finite: list[Tensor] = []
        out = self._run_tiles(x, tile, batch, slot, progress, cancel, self.model, finite)
        if bool(torch.stack(finite).all()):
            return out
        if self.dtype in _HALF:
            warnings.warn(
                f"{self.dtype} overflowed on this input; recomputing it in fp32", RuntimeWarning, stacklevel=3
            )
            finite.clear()
            out = self._run_tiles(x, tile, batch, slot, None, cancel, self._fp32_model(), finite)
            if bool(torch.stack(finite).all()):
                return out
        raise HATError(
            "the model produced NaN or infinite values: its weights are damaged or not trained; "
            "use another weights file"
        )

    def _run_tiles(
        self,
        x: Tensor,
        tile: int,
        batch: int,
        slot: StagingSlot,
        progress: ProgressFn | None,
        cancel: CancelCheck,
        model: HAT,
        finite: list[Tensor],
    ) -> Tensor:
        b, c, h, w = x.shape
        grid, weights = self._grid(h, w, tile, x.device)
        if len(grid.tiles) == 1:
            raise_if_cancelled(cancel, "upscaling")
            out = self._run(slot.upload(x, "image"), model, finite).to(x.device)
            if progress:
                progress(1, 1)
            return out
        blender = Blender(grid, b, c, x.device, weights)
        # A CUDA engine with the image left on the host: copies overlap the next batch's compute.
        host_blend = (
            HostBlend(blender, self.device, slot) if self.device.type == "cuda" and x.device.type == "cpu" else None
        )
        jobs = [(i, k) for i in range(b) for k in range(len(grid.tiles))]
        done = 0
        for start in range(0, len(jobs), batch):
            raise_if_cancelled(cancel, "upscaling")
            chunk = jobs[start : start + batch]
            crops = torch.stack([_crop(x[i], grid, k) for i, k in chunk])
            # two buffers take turns, so cutting the next batch never waits for this batch's copy
            out = self._run(slot.upload(crops, f"tiles{start // batch % 2}"), model, finite)
            if host_blend is not None:
                host_blend.add(chunk, out)
            else:
                for (i, k), tile_out in zip(chunk, out, strict=True):
                    blender.add(k, i, tile_out)
            done += len(chunk)
            if progress:
                progress(done, len(jobs))
        return host_blend.result() if host_blend is not None else blender.result()

    def _grid(self, h: int, w: int, tile: int, device: torch.device) -> tuple[TileGrid, PlacedWeights]:
        """The tile plan for this size and its blend weights on ``device``, made once and kept (a few sizes)."""
        key = (h, w, tile)
        with self._lock:
            hit = self._plans.get(key)
            if hit is not None and hit[1].rows.device == device:
                self._plans.move_to_end(key)
                return hit
        grid = plan_tiles(h, w, tile, self.overlap, self.scale, self.window)
        made = (grid, place_weights(grid, device))
        with self._lock:
            self._plans[key] = made
            while len(self._plans) > _PLANS_KEPT:
                self._plans.popitem(last=False)
        return made

    def _plan(self, size: tuple[int, int]) -> tuple[int, int]:
        """Tile and batch for an input size, chosen once: every frame of a video then shares one tiling (no
        seams moving with free memory), and a size that ran out of memory keeps its smaller tiles."""
        with self._lock:
            if size not in self._sizes:
                tile = self.tile or self._auto_tile(*size)
                self._sizes[size] = (tile, self.batch or self._auto_batch(tile))
            return self._sizes[size]

    def _run(self, x: Tensor, model: HAT, finite: list[Tensor]) -> Tensor:
        """One forward pass of ``model`` (through the CUDA runner, if any, for the engine's own model). Whether
        the output is finite goes into ``finite`` as a flag on the device, read once per image by ``_checked``."""
        x = torch.nan_to_num(x, nan=0.0, posinf=1.0, neginf=0.0)
        out = self._runner(x) if self._runner is not None and model is self.model else model(x)
        finite.append(torch.isfinite(out).all())
        return out.float()

    def _fp32_model(self) -> HAT:
        """The float32 twin of a half-precision model, placed on the device on first need (thread-safe)."""
        with self._lock:
            if self._fp32 is None:
                if self._fp32_source is None:
                    raise HATError("this Upscaler was closed; create a new one")
                fp32 = copy.deepcopy(self._fp32_source).to(self.device, torch.float32).eval()
                fp32.pad_heads = self.options.pad_heads
                _prime(fp32, self.device)
                self._fp32 = fp32
            return self._fp32

    # ---- sizing ------------------------------------------------------------------------------------------------

    def _check_fits(self, height: int, width: int, alpha: bool) -> None:
        """Refuse an image whose upscaling cannot fit in the memory free now (``limits.bytes_per_pixel``), with a
        clear error instead of an allocation failure deep inside."""
        needed = height * width * bytes_per_pixel(self.scale, alpha)
        available = available_memory()
        if needed > available:
            raise OutOfMemoryError(
                f"a {width}x{height} image upscaled x{self.scale} needs about {needed / 1e9:,.1f} GB of memory, "
                f"more than the {available / 1e9:,.1f} GB free; upscale it in parts or free some memory"
            )

    def _bytes_per_pixel(self) -> int:
        """Peak activation memory per input pixel of one forward pass.

        On the CPU: about 8 fp32 buffers of ``embed_dim`` channels and 4 of ``num_feat`` channels at the output
        resolution, fitted to the growth of peak RSS over one tile (2-core AMD EPYC, fp32, docs/benchmarks.md
        "Memory per CPU tile"): measured 13.1-16.7 kB per pixel for HAT-S x4 at 64-224 px tiles (this gives 21.0 kB)
        and 5.8-7.0 kB for hat-tiny-x4 at 64-192 px (9.7 kB). On a GPU a looser bound, for the caching allocator
        and the kernels' workspaces.
        """
        element = 4 if self.dtype == torch.qint8 else torch.finfo(self.dtype).bits // 8
        if self.device.type == "cpu":
            return 8 * self.config.embed_dim * 4 + 4 * self.config.num_feat * self.scale * self.scale * element
        body = 24 * self.config.embed_dim * 4  # stream in fp32 + block temporaries
        tail = 3 * self.config.num_feat * 4 * self.scale * self.scale * element
        return body + tail

    def _auto_tile(self, h: int, w: int) -> int:
        side = int(math.sqrt(max(self._tile_budget(h, w), 0) / self._bytes_per_pixel()))
        limit = min(_MAX_AUTO_TILE, self._fault_free_side()) if self.device.type == "cpu" else 2048
        side = max(2 * self.window, min(side, limit) // self.window * self.window)
        if h <= side and w <= side:
            return max(h, w, self.window)
        if self.device.type == "cpu":
            return self._cheapest_tile(h, w, side)
        return side

    def _tile_budget(self, h: int, w: int) -> float:
        """Bytes one tile's forward may take. On CUDA half its free memory, on MPS a quarter. On the CPU a quarter
        of the free memory (the rest for other programs and the allocator's retained heap), less the image's own
        float32 input and result; with ``max_memory``, also no more than that less what the process holds now and
        the image's buffers."""
        if self.device.type != "cpu":
            return free_memory(self.device) * (0.5 if self.device.type == "cuda" else 0.25)
        image = h * w * self.config.in_chans * 4 * (1 + self.scale * self.scale)
        budget = free_memory(self.device) * _CPU_FREE_SHARE - image
        if self.max_memory:
            budget = min(budget, self.max_memory - resident_memory() - image)
        return budget

    def _fault_free_side(self) -> int:
        """The largest CPU tile whose residual-stream tensors (fp32, ``embed_dim`` channels) stay under the
        allocator's reuse limit.

        Bigger buffers are fresh mmaps that the kernel faults in page by page on every use. Measured (HAT-S x4,
        2 threads, docs/benchmarks.md "Tile size"): per-pixel cost is flat from 64 to 192 px tiles (0-0.1 M
        faults per tile), then 1.3x at 256 px, where the stream itself crosses the limit (5.2 M faults per tile).
        """
        return int(math.sqrt(_REUSED_BLOCK / (4 * self.config.embed_dim)))

    def _cheapest_tile(self, h: int, w: int, largest: int) -> int:
        """The CPU tile side (a multiple of the window, up to ``largest``) with which the network processes the
        fewest pixels for this image: per-pixel cost being flat below the fault limit, that is the fastest; ties
        go to bigger tiles (fewer calls). Returned as the side the tiling really uses."""

        def cost(side: int) -> tuple[int, int]:
            tile_h, tile_w, count = tile_layout(h, w, side, self.overlap, self.window)
            return tile_h * tile_w * count, -max(tile_h, tile_w)

        return -cost(min(range(2 * self.window, largest + 1, self.window), key=cost))[1]

    def _auto_batch(self, tile: int) -> int:
        if self.device.type == "cpu":
            return 1
        budget = free_memory(self.device) * 0.5
        return int(max(1, min(16, budget // (self._bytes_per_pixel() * tile * tile))))

    def _empty_cache(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def _clear_where_transparent(up_alpha: Tensor, alpha: np.ndarray, scale: int) -> Tensor:
    """``up_alpha`` with 0 wherever the input pixel and its eight neighbours are fully transparent (nearest-scaled),
    so an empty background stays empty instead of gaining the network's faint ringing."""
    clear = torch.from_numpy(np.ascontiguousarray(alpha <= 0.0))[None, None].to(up_alpha.device, torch.float32)
    clear = -torch.nn.functional.max_pool2d(-clear, 3, stride=1, padding=1)  # all nine clear
    if not bool(clear.any()):
        return up_alpha
    grown = torch.nn.functional.interpolate(clear, scale_factor=scale, mode="nearest")[0] > 0
    return up_alpha.masked_fill(grown, 0.0)


def _param(net: HAT) -> Tensor:
    return next(net.parameters())


def _quantized(model: HAT) -> HAT:
    """``model`` (fp32, CPU) with its Linear layers in int8 (``quantize.quantize_int8``)."""
    from .quantize import quantize_int8

    quantized = quantize_int8(model)
    assert isinstance(quantized, HAT)
    return quantized


def _prime(model: HAT, device: torch.device) -> None:
    """On CUDA, run one window-sized forward and wait for it. The model's derived tensors (position biases, masks)
    are made on the first forward; made here, they are complete before threads use them on other CUDA streams
    (made lazily, one stream could read them while another stream's kernels were still writing them)."""
    if device.type != "cuda":
        return
    ws = model.config.window_size
    with torch.inference_mode():
        model(torch.zeros(1, model.config.in_chans, ws, ws, device=device))
    torch.cuda.synchronize(device)


def _crop(image: Tensor, grid: TileGrid, index: int) -> Tensor:
    t = grid.tiles[index]
    return image[:, t.top : t.top + t.height, t.left : t.left + t.width]


def _to_float(image: Any) -> tuple[np.ndarray, np.dtype[Any], bool]:
    """Validate an image array and return float32 ``HxWxC`` in [0, 1], its dtype, and whether it was 2-D."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy array, got {type(image).__name__}")
    image = np.asarray(image)  # a subclass such as np.matrix becomes a plain array
    squeeze = image.ndim == 2
    if squeeze:
        image = image[..., None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise ImageError(f"expected an HxW or HxWxC image with 1-4 channels, got shape {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ImageError(f"cannot upscale an empty image of shape {image.shape}")
    if image.dtype not in (np.uint8, np.uint16, np.float16, np.float32, np.float64):
        raise ImageError(f"unsupported pixel type {image.dtype}: use uint8, uint16 or float in [0, 1]")
    return np.ascontiguousarray(to_unit_float(image)), image.dtype, squeeze


def _from_float(result: Tensor, dtype: np.dtype[Any], squeeze: bool) -> np.ndarray:
    """``(C, H, W)`` floats in [0, 1] -> an ``HxWxC`` (or ``HxW``) array of ``dtype`` (float64 in: float32 out).

    The conversion works in place on the result's own memory: no full-size float temporaries for big outputs.
    """
    values = result.permute(1, 2, 0).contiguous().numpy()
    target = np.float32 if dtype == np.float64 else dtype
    out = from_unit_float(values, target, inplace=True)
    return out[..., 0] if squeeze else out
