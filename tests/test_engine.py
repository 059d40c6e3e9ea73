"""The Upscaler: layouts and depths, alpha, devices and precisions, progress, cancel, batching, OOM retry."""

from __future__ import annotations

import copy
import threading

import numpy as np
import pytest
import torch
from conftest import golden_weights

import hat_plugin.device as device_module
import hat_plugin.engine as engine_module
from hat_plugin import HAT, Cancelled, DeviceError, ImageError, OptionError, Upscaler, load_model
from hat_plugin.errors import OutOfMemoryError


@pytest.fixture(scope="module")
def up() -> Upscaler:
    return Upscaler(golden_weights("tiny-x2-w8"), device="cpu", precision="fp32")


@pytest.mark.parametrize(
    ("shape", "dtype"),
    [((13, 20), np.uint8), ((13, 20, 1), np.uint16), ((13, 20, 2), np.uint8), ((13, 20, 3), np.uint16),
     ((13, 20, 4), np.uint8), ((13, 20, 3), np.float32), ((13, 20, 4), np.float16), ((1, 1, 3), np.uint8)],
)  # fmt: skip
def test_layout_and_depth_are_kept(up: Upscaler, shape: tuple, dtype: type) -> None:
    rng = np.random.default_rng(1)
    if np.issubdtype(dtype, np.integer):
        image = rng.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)
    else:
        image = rng.random(shape).astype(dtype)
    out = up.upscale(image)
    assert out.dtype == dtype
    assert out.shape == (shape[0] * 2, shape[1] * 2, *shape[2:])


def test_uint8_and_uint16_agree(up: Upscaler) -> None:
    image = np.random.default_rng(2).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    out8 = up.upscale(image).astype(np.float64) / 255
    out16 = up.upscale(image.astype(np.uint16) * 257).astype(np.float64) / 65535
    assert np.abs(out8 - out16).max() <= 0.5 / 255 + 1e-6


def test_grayscale_runs_as_rgb(up: Upscaler) -> None:
    grey = np.random.default_rng(3).random((12, 18)).astype(np.float32)
    rgb = up.upscale(np.repeat(grey[..., None], 3, axis=2))
    assert np.allclose(up.upscale(grey), rgb.mean(axis=2), atol=1e-5)


def test_alpha_is_premultiplied_so_hidden_colour_cannot_bleed(up: Upscaler) -> None:
    """Two images that differ only in the colour under fully transparent pixels give the same visible result."""
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (16, 24, 4), dtype=np.uint8)
    image[:, :12, 3] = 0
    image[:, 12:, 3] = 255
    other = image.copy()
    other[:, :12, :3] = [255, 0, 0]
    a, b = up.upscale(image), up.upscale(other)
    assert np.array_equal(a, b)
    grey = up.upscale(image[..., 3])  # alpha: upscaled by the network as grey ...
    assert np.array_equal(a[:, 22:, 3], grey[:, 22:])
    assert (a[:, :22, 3] == 0).all()  # ... except where the input is transparent all around: empty stays empty


def test_opaque_alpha_matches_rgb(up: Upscaler) -> None:
    rgb = np.random.default_rng(5).integers(0, 256, (10, 14, 3), dtype=np.uint8)
    rgba = np.dstack([rgb, np.full((10, 14), 255, np.uint8)])
    out = up.upscale(rgba)
    assert np.array_equal(out[..., :3], up.upscale(rgb))
    assert (out[..., 3] == 255).all()


@pytest.mark.parametrize(
    ("image", "match"),
    [(np.zeros((4, 4, 5), np.uint8), "1-4 channels"), (np.zeros((0, 4, 3), np.uint8), "empty"),
     (np.zeros((4, 4, 3), np.int32), "unsupported pixel type"), ([[1, 2]], "numpy array")],
)  # fmt: skip
def test_bad_images(up: Upscaler, image: object, match: str) -> None:
    with pytest.raises(ImageError, match=match):
        up.upscale(image)  # type: ignore[arg-type]


@pytest.mark.slow
def test_progress_and_batching(up: Upscaler) -> None:
    x = torch.rand(1, 3, 40, 56)
    calls: list[tuple[int, int]] = []
    one = Upscaler(up.model, device="cpu", tile=16, overlap=4, batch=1).upscale_tensor(
        x, progress=lambda *a: calls.append(a)
    )
    four = Upscaler(up.model, device="cpu", tile=16, overlap=4, batch=4).upscale_tensor(x)
    assert calls[-1][0] == calls[-1][1] > 1 and [c[0] for c in calls] == list(range(1, calls[-1][1] + 1))
    assert torch.allclose(one, four, atol=1e-5)


def test_cancel_between_tiles(up: Upscaler) -> None:
    event = threading.Event()
    seen: list[int] = []

    def progress(done: int, total: int | None) -> None:
        seen.append(done)
        event.set()

    tiled = Upscaler(up.model, device="cpu", tile=16, overlap=4)
    with pytest.raises(Cancelled):
        tiled.upscale(np.zeros((40, 40, 3), np.uint8), progress=progress, cancel=event)
    assert seen == [1]


@pytest.mark.slow
def test_derived_tensors_are_built_once(up: Upscaler) -> None:
    x = torch.rand(1, 3, 24, 24)
    up.upscale_tensor(x)
    attn = up.model.layers[0].residual_group.blocks[1].attn
    bias = attn.derived.entries["bias"][1]
    masks = {k: v for k, v in up.model.derived.entries.items() if k[0] == "masks"}
    up.upscale_tensor(torch.rand(1, 3, 40, 16))  # another size: same bias, same masks
    assert attn.derived.entries["bias"][1] is bias
    after = {k: v for k, v in up.model.derived.entries.items() if k[0] == "masks"}
    assert len(masks) == 1 and after.keys() == masks.keys()
    assert all(after[k][1] is masks[k][1] for k in masks)


def test_a_copy_of_the_model_starts_with_empty_caches(up: Upscaler) -> None:
    """deepcopy (the engine's fp32 twin) must not carry tensors derived for another dtype or device."""
    up.upscale_tensor(torch.rand(1, 3, 24, 24))
    assert up.model.derived.entries and up.model.layers[0].residual_group.blocks[0].attn.derived.entries
    twin = copy.deepcopy(up.model)
    assert not twin.derived.entries
    assert not twin.layers[0].residual_group.blocks[0].attn.derived.entries


@pytest.mark.slow
def test_out_of_memory_retries_with_smaller_tiles() -> None:
    """A model that runs out of memory above 32x32 inputs: the engine halves the tile until it fits."""
    model = load_model(golden_weights("tiny-x2-w8"))
    forward = model.forward

    def limited(x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] * x.shape[-2] > 32 * 32:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(x)

    model.forward = limited
    x = torch.rand(1, 3, 50, 70)
    out = Upscaler(model, device="cpu", tile=64, overlap=8).upscale_tensor(x)
    model.forward = forward
    expected = Upscaler(model, device="cpu", tile=32, overlap=8).upscale_tensor(x)
    assert torch.allclose(out, expected, atol=1e-6)


def test_two_cpu_threads_give_the_one_thread_output(up: Upscaler) -> None:
    """The multi-threaded CPU path (PyTorch's intra-op threads in every layer) computes what one thread does,
    up to float32 rounding; tiled, so the blend runs too."""
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(5))
    tiled = Upscaler(up.model, device="cpu", precision="fp32", tile=24, overlap=8)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = tiled.upscale_tensor(x)
        torch.set_num_threads(2)
        assert torch.get_num_threads() == 2
        two = tiled.upscale_tensor(x)
    finally:
        torch.set_num_threads(before)
    assert one.shape == two.shape == (2, 3, 80, 112)
    assert (one - two).abs().max().item() <= 1e-5


def test_devices() -> None:
    assert device_module.resolve_device("auto").type in ("cuda", "mps", "cpu")
    assert device_module.resolve_device("CPU") == torch.device("cpu")
    for bad, match in (("cuda:7", "not available"), ("tpu", "unknown device"), ("cpu:3", "no index")):
        if bad == "cuda:7" and torch.cuda.device_count() > 7:
            continue
        with pytest.raises(DeviceError, match=match):
            device_module.resolve_device(bad)
    with pytest.raises(OptionError, match="unknown precision"):
        Upscaler(golden_weights(), device="cpu", precision="fp8")


def test_half_precision_falls_back_on_cpus_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(device_module, "_cpu_flags", lambda: frozenset({"avx2", "fma"}))
    monkeypatch.delenv("HAT_PLUGIN_FORCE_PRECISION", raising=False)
    with pytest.warns(RuntimeWarning, match="running in fp32"):
        up = Upscaler(golden_weights(), device="cpu", precision="bf16")
    assert up.dtype == torch.float32


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_engine_close_to_fp32(up: Upscaler, precision: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAT_PLUGIN_FORCE_PRECISION", "1")
    half = Upscaler(golden_weights("tiny-x2-w8"), device="cpu", precision=precision)
    assert next(half.model.parameters()).dtype == half.dtype != torch.float32
    image = np.random.default_rng(6).integers(0, 256, (20, 20, 3), dtype=np.uint8)
    diff = np.abs(half.upscale(image).astype(int) - up.upscale(image).astype(int))
    assert diff.mean() < (2.0 if precision == "bf16" else 0.5)


def test_half_overflow_recomputed_in_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAT_PLUGIN_FORCE_PRECISION", "1")
    half = Upscaler(golden_weights("tiny-x2-w8"), device="cpu", precision="fp16")
    with torch.no_grad():
        half.model.conv_last.bias.fill_(float("inf"))  # simulate an overflow in the fp16 model only
    x = torch.rand(1, 3, 16, 16)
    with pytest.warns(RuntimeWarning, match="recomputing it in fp32"):
        out = half.upscale_tensor(x)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, Upscaler(golden_weights("tiny-x2-w8"), device="cpu").upscale_tensor(x), atol=1e-5)


def _limited_model(limit: int, calls: list[tuple[int, int]]) -> HAT:
    """The golden x2 model, failing like an out-of-memory GPU for inputs larger than ``limit`` x ``limit``."""
    model = load_model(golden_weights("tiny-x2-w8"))
    forward = model.forward

    def limited(x: torch.Tensor) -> torch.Tensor:
        calls.append((x.shape[-2], x.shape[-1]))
        if x.shape[-1] * x.shape[-2] > limit * limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return forward(x)

    model.forward = limited
    return model


@pytest.mark.slow
def test_a_size_that_ran_out_of_memory_keeps_its_smaller_tiles() -> None:
    calls: list[tuple[int, int]] = []
    up = Upscaler(_limited_model(32, calls), device="cpu", tile=64, overlap=8)
    x = torch.rand(1, 3, 50, 70)
    first = up.upscale_tensor(x)
    assert max(h * w for h, w in calls) > 32 * 32  # the first call had to find out
    calls.clear()
    second = up.upscale_tensor(x)
    assert calls and max(h * w for h, w in calls) <= 32 * 32  # the second starts from what fitted
    assert torch.equal(first, second)


def test_out_of_memory_at_the_smallest_tile_is_one_clear_error() -> None:
    up = Upscaler(_limited_model(4, []), device="cpu", tile=32, overlap=8)
    with pytest.raises(OutOfMemoryError, match="out of memory on cpu even with 16px tiles") as info:
        up.upscale_tensor(torch.rand(1, 3, 40, 40))
    assert "--" not in str(info.value), "the engine's message must not assume a command line"


@pytest.mark.slow
def test_auto_tile_is_chosen_once_per_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every frame of a video gets the same tiling, whatever the free memory does meanwhile."""
    up = Upscaler(golden_weights("tiny-x2-w8"), device="cpu")
    per_pixel = up._bytes_per_pixel()
    monkeypatch.setattr(engine_module, "free_memory", lambda device: per_pixel * 40 * 40 * 4)
    x = torch.rand(1, 3, 60, 90)
    first = up.upscale_tensor(x)
    chosen = up._sizes[(60, 90)]
    assert chosen[0] < 90, "the test must make the engine tile"
    monkeypatch.setattr(engine_module, "free_memory", lambda device: per_pixel * 400 * 400 * 4)
    assert torch.equal(up.upscale_tensor(x), first)
    assert up._sizes[(60, 90)] == chosen
    assert Upscaler(up.model, device="cpu").upscale_tensor(x).shape == first.shape


def test_the_callers_module_is_not_changed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAT_PLUGIN_FORCE_PRECISION", "1")
    model = load_model(golden_weights("tiny-x2-w8"))
    half = Upscaler(model, device="cpu", precision="fp16")
    assert next(half.model.parameters()).dtype == torch.float16
    assert next(model.parameters()).dtype == torch.float32 and half.model is not model
