"""The engine on a real CUDA GPU: golden numbers, half precision, real out-of-memory, memory-driven tiles, threads and
streams, the optional runners, no host syncs in the tile loop, device strings.

``pytest -m cuda`` selects them (``bench/gpu_check.sh`` runs them on the GPU machine). Where there is no CUDA the
``device`` fixture is the CPU and each test runs what does not need a GPU (inputs, references, metrics, argument
handling, the threaded engine) before ``needs_cuda`` skips the CUDA-only rest with the reason, so a stale import
or a changed signature fails in CI, not on the first GPU run.
"""

from __future__ import annotations

import logging
import math
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import GOLDEN, HAS_CUDA, golden_config, golden_weights, needs_cuda, on_threads
from safetensors.torch import load_file

import hat_plugin.arch as arch_module
import hat_plugin.engine as engine_module
from hat_plugin import HAT, PRESETS, DeviceError, HATConfig, Upscaler, load_model
from hat_plugin.frame_upscaler import FrameUpscaler, PlanarRGB
from hat_plugin.metrics import psnr_y
from hat_plugin.options import EngineOptions
from hat_plugin.runners import GraphRunner, compile_unavailable
from hat_plugin.training.degrade import load_rgb8, make_lr
from hat_plugin.training.folders import image_files
from hat_plugin.transfer import HostBlend
from hat_plugin.video.colour import ColourConverter, PixelLayout, source_colour

pytestmark = [pytest.mark.cuda]

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = ROOT / "hat_plugin" / "bundled"
CROPS = ROOT / "tests" / "data" / "quality"
CUDA = torch.device("cuda", 0)


@pytest.fixture
def device() -> torch.device:
    """The GPU where there is one, else the CPU (for the parts of each test that need no GPU)."""
    return CUDA if HAS_CUDA else torch.device("cpu")


@pytest.fixture
def exact_fp32() -> Iterator[None]:
    """True float32 matrix products and convolutions (no TF32), for comparisons at 2e-5."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture
def memory_cap() -> Iterator[Callable[[int], None]]:
    """``cap(nbytes)`` limits this process's CUDA allocator to ``nbytes`` of reserved memory (a real limit: the
    allocator raises ``torch.OutOfMemoryError`` beyond it); lifted afterwards."""
    needs_cuda("a real allocator cap")
    total = torch.cuda.get_device_properties(CUDA).total_memory

    def cap(nbytes: int) -> None:
        torch.cuda.set_per_process_memory_fraction(min(1.0, nbytes / total), CUDA)

    torch.cuda.synchronize(CUDA)
    torch.cuda.empty_cache()
    yield cap
    torch.cuda.set_per_process_memory_fraction(1.0, CUDA)
    torch.cuda.empty_cache()


def golden_model(case: str, dtype: torch.dtype, device: torch.device) -> HAT:
    model = HAT(HATConfig.from_dict(golden_config(case))).eval()
    model.load_state_dict(load_file(GOLDEN / case / "weights.safetensors"), strict=True)
    return model.to(device, dtype)


def forward_peak(model: HAT, x: torch.Tensor) -> int:
    """Bytes the allocator needed beyond what was already allocated, for one forward of ``x``."""
    torch.cuda.synchronize(CUDA)
    torch.cuda.reset_peak_memory_stats(CUDA)
    base = torch.cuda.memory_allocated(CUDA)
    with torch.inference_mode():
        model(x)
    torch.cuda.synchronize(CUDA)
    return torch.cuda.max_memory_allocated(CUDA) - base


# ---- golden numbers ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "key", "tol"), [(torch.float64, "expected_f64", 1e-8), (torch.float32, "expected_f32", 2e-5)]
)
def test_golden_outputs_on_cuda(
    golden_case: str, dtype: torch.dtype, key: str, tol: float, exact_fp32: None, device: torch.device
) -> None:
    case = load_file(GOLDEN / golden_case / "case.safetensors")
    model = golden_model(golden_case, dtype, device)
    assert case[key].dtype in (torch.float32, torch.float64) and case["input"].dim() == 4
    needs_cuda("the golden forward on CUDA (tests/test_arch.py runs it on the CPU)")
    with torch.inference_mode():
        out = model(case["input"].to(device, dtype))
    assert out.device.type == device.type and out.dtype == dtype
    assert (out.cpu() - case[key].to(dtype)).abs().max().item() <= tol


def test_tiled_engine_on_cuda_matches_the_cpu_engine(golden_case: str, exact_fp32: None, device: torch.device) -> None:
    """The whole tile loop on the GPU (crops, batches, blending on the device) gives the CPU engine's numbers."""
    model = load_model(golden_weights(golden_case))
    x = torch.rand(2, 3, 45, 61, generator=torch.Generator().manual_seed(1))
    tile, overlap, batch = 2 * model.config.window_size, 4, 3
    needs_cuda("the tile loop on CUDA (tests/test_tiling.py runs it on the CPU)")
    cpu = Upscaler(model, device="cpu", precision="fp32", tile=tile, overlap=overlap, batch=batch).upscale_tensor(x)
    gpu = Upscaler(model, device=device, precision="fp32", tile=tile, overlap=overlap, batch=batch)
    on_device = gpu.upscale_tensor(x.to(device))
    from_host = gpu.upscale_tensor(x)
    assert on_device.device.type == device.type and from_host.device.type == "cpu"
    assert (on_device.cpu() - cpu).abs().max().item() <= 2e-5
    assert (from_host - on_device.cpu()).abs().max().item() <= 1e-6


# ---- half precision ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def crops() -> dict[str, np.ndarray]:
    found = {p.stem: load_rgb8(p) for p in image_files(CROPS)}
    assert len(found) == 4, f"expected the 4 held-out crops in {CROPS}"
    return found


@pytest.fixture(scope="module")
def fp32_psnr() -> dict[int, dict[str, tuple[np.ndarray, float]]]:
    """Per scale, filled once: each crop's low-resolution input and the fp32 engine's PSNR-Y on it."""
    return {}


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("scale", [2, 4])
def test_half_precision_on_cuda_loses_under_a_tenth_of_a_db(
    scale: int,
    precision: str,
    crops: dict[str, np.ndarray],
    fp32_psnr: dict[int, dict[str, tuple[np.ndarray, float]]],
    device: torch.device,
) -> None:
    weights = BUNDLED / f"hat-tiny-x{scale}.safetensors"
    if scale not in fp32_psnr:
        full = Upscaler(weights, device=device, precision="fp32")
        fp32_psnr[scale] = {
            stem: (lr, psnr_y(full.upscale(lr), hr, scale)) for stem, hr in crops.items() for lr in [make_lr(hr, scale)]
        }
    reference = fp32_psnr[scale]
    assert all(20 < db < 60 for _, db in reference.values()), reference
    needs_cuda(f"{precision} on CUDA")
    half = Upscaler(weights, device=device, precision=precision)
    assert half.model.conv_first.weight.dtype == {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    for stem, hr in crops.items():
        lr, db = reference[stem]
        with warnings.catch_warnings():
            warnings.filterwarnings("error", message=".*recomputing")  # the half path itself must be good
            out = half.upscale(lr)
        loss = db - psnr_y(out, hr, scale)
        assert loss <= 0.1, f"{stem}: {precision} on CUDA loses {loss:.3f} dB"


def test_fp16_residual_stream_past_65504_stays_finite_on_cuda(exact_fp32: None, device: torch.device) -> None:
    """Biases that push the residual stream past fp16's largest value (65504): the engine's fp16 run stays finite
    and close to fp32 by itself, without falling back to fp32."""
    ref = golden_model("tiny-x2-w8", torch.float32, device)
    with torch.no_grad():
        for layer in ref.layers:
            layer.conv.bias.copy_(torch.linspace(-6e4, 6e4, layer.conv.bias.numel()))
    stream: dict[str, float] = {}
    hook = ref.layers[-1].register_forward_hook(lambda m, i, out: stream.update(max=out.abs().max().item()))
    x = torch.rand(1, 3, 40, 40, device=device)
    with torch.inference_mode():
        expected = ref(x)
    hook.remove()
    assert stream["max"] > 65504, "the test must push the stream past fp16's range"
    needs_cuda("fp16 on CUDA")
    half = Upscaler(ref, device=device, precision="fp16")
    assert half.model.conv_first.weight.dtype == torch.float16
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*recomputing")
        out = half.upscale_tensor(x)
    assert torch.isfinite(out).all()
    assert (out - expected.clamp(0, 1)).abs().max().item() < 0.05


def test_half_overflow_is_redone_in_fp32_once_per_image_on_cuda(device: torch.device) -> None:
    needs_cuda("fp16 on CUDA (the CPU runs fp16 requests in fp32)")
    half = Upscaler(golden_weights("tiny-x2-w8"), device=device, precision="fp16", tile=16, overlap=4, batch=2)
    with torch.no_grad():
        half.model.conv_last.bias.fill_(float("inf"))  # an overflow in the fp16 model only
    x = torch.rand(1, 3, 40, 40, device=CUDA)
    with pytest.warns(RuntimeWarning, match="recomputing it in fp32") as caught:
        out = half.upscale_tensor(x)
    assert len([w for w in caught if "recomputing" in str(w.message)]) == 1
    expected = Upscaler(golden_weights("tiny-x2-w8"), device=CUDA, precision="fp32", tile=16, overlap=4, batch=2)
    assert torch.isfinite(out).all()
    assert (out - expected.upscale_tensor(x)).abs().max().item() < 1e-3


# ---- memory -----------------------------------------------------------------------------------------------------


def test_real_out_of_memory_shrinks_the_tile_and_still_matches(
    memory_cap: Callable[[int], None], caplog: pytest.LogCaptureFixture, exact_fp32: None
) -> None:
    model = load_model(golden_weights("tiny-x2-w8")).to(CUDA)
    small = forward_peak(model, torch.rand(1, 3, 256, 256, device=CUDA))
    big = forward_peak(model, torch.rand(1, 3, 512, 512, device=CUDA))
    assert big > 3 * small, "a 512 px tile must need far more memory than a 256 px one"
    x = torch.rand(1, 3, 1008, 1008, device=CUDA)  # exactly 2 x 2 tiles of 512 (with the 16 px overlap)
    up = Upscaler(model, device=CUDA, precision="fp32", tile=512, overlap=16, batch=1)
    output_bytes = x.numel() * 4 * 4 * 4  # float32 output plus blending temporaries, generously
    torch.cuda.synchronize(CUDA)
    torch.cuda.empty_cache()
    memory_cap(torch.cuda.memory_reserved(CUDA) + output_bytes + 2 * small)
    with caplog.at_level(logging.WARNING, logger="hat_plugin.engine"):
        out = up.upscale_tensor(x)
    memory_cap(1 << 62)  # lift the cap before the reference run
    tile, batch = up._sizes[(1008, 1008)]
    assert tile < 512, "the engine must have shrunk the tile"
    assert any("out of memory: retrying" in r.message for r in caplog.records)
    expected = Upscaler(model, device=CUDA, precision="fp32", tile=tile, overlap=16, batch=batch).upscale_tensor(x)
    assert (out - expected).abs().max().item() <= 1e-5


def test_auto_tile_and_batch_fit_a_capped_card_without_retries(
    memory_cap: Callable[[int], None], caplog: pytest.LogCaptureFixture, exact_fp32: None
) -> None:
    """With the allocator capped, the automatic tile and batch come from the capped free memory: the run needs no
    out-of-memory retry and stays under the cap, and matches the same tiling run uncapped."""
    model = load_model(golden_weights("tiny-x2-w8")).to(CUDA)
    x = torch.rand(1, 3, 1200, 1000, device=CUDA)
    torch.cuda.synchronize(CUDA)
    torch.cuda.empty_cache()
    limit = torch.cuda.memory_reserved(CUDA) + (1 << 30)
    memory_cap(limit)
    torch.cuda.reset_peak_memory_stats(CUDA)
    up = Upscaler(model, device=CUDA, precision="fp32")
    with caplog.at_level(logging.WARNING, logger="hat_plugin.engine"):
        out = up.upscale_tensor(x)
    peak = torch.cuda.max_memory_reserved(CUDA)
    memory_cap(1 << 62)
    tile, batch = up._sizes[(1200, 1000)]
    assert not [r for r in caplog.records if "out of memory" in r.message]
    assert tile < 1200, f"1 GiB of free memory must make the engine tile (chose {tile})"
    assert peak <= limit
    uncapped = Upscaler(model, device=CUDA, precision="fp32")
    assert uncapped._plan((1200, 1000))[0] > tile, "more free memory must give larger tiles"
    same = Upscaler(model, device=CUDA, precision="fp32", tile=tile, batch=batch).upscale_tensor(x)
    assert (out - same).abs().max().item() <= 1e-5


@pytest.mark.parametrize("pad_heads", [False, True], ids=["heads-30", "heads-padded"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_memory_estimate_per_pixel_holds_on_cuda(precision: str, pad_heads: bool) -> None:
    """The engine sizes tiles with ``_bytes_per_pixel``: the real peak of a full-size HAT forward must stay under
    it (else auto tiles run out of memory) and not be far below it (else tiles are needlessly small). HAT's
    30-channel heads may send attention to the unfused math kernel, which holds every window's score matrix: the
    padded variant shows what the memory-efficient kernel needs."""
    needs_cuda("the real peak of CUDA memory")
    torch.manual_seed(0)
    up = Upscaler(HAT(PRESETS["HAT_SRx4"]), device=CUDA, precision=precision, pad_heads=pad_heads)
    side = 128
    peak = forward_peak(up.model, torch.rand(1, 3, side, side, device=CUDA))
    estimate = up._bytes_per_pixel() * side * side
    what = f"{precision}, pad_heads={pad_heads}: peak {peak / 2**20:.0f} MB, estimate {estimate / 2**20:.0f} MB"
    assert peak <= estimate, f"{what}: the estimate is too low"
    assert peak >= estimate / 8, f"{what}: the estimate is more than 8x the peak"


def test_host_blend_pipeline_matches_device_blend(monkeypatch: pytest.MonkeyPatch, exact_fp32: None) -> None:
    """An output too large for the device is blended on the host, one batch behind the GPU: same pixels."""
    needs_cuda("the host-blend pipeline (a CUDA copy stream)")
    model = load_model(golden_weights("tiny-x2-w8"))
    x = torch.rand(1, 3, 70, 90)
    on_device = Upscaler(model, device=CUDA, precision="fp32", tile=32, overlap=8, batch=2).upscale_tensor(x)
    added: list[int] = []

    class Counting(HostBlend):
        def add(self, jobs: list[tuple[int, int]], out: torch.Tensor) -> None:
            added.append(len(jobs))
            super().add(jobs, out)

    monkeypatch.setattr(engine_module, "_OUTPUT_SHARE", 0.0)  # never fits: keep the image on the host
    monkeypatch.setattr(engine_module, "HostBlend", Counting)
    on_host = Upscaler(model, device=CUDA, precision="fp32", tile=32, overlap=8, batch=2).upscale_tensor(x)
    assert len(added) > 2 and on_host.device.type == "cpu"
    assert (on_host - on_device).abs().max().item() <= 1e-6


# ---- threads, streams, runners ----------------------------------------------------------------------------------

INPUTS = [(1, 40, 56), (2, 33, 47), (1, 64, 64), (1, 24, 90)]


def _inputs(device: torch.device) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(7)
    return [torch.rand(b, 3, h, w, generator=g).to(device) for b, h, w in INPUTS]


def _threaded(up: Upscaler, inputs: list[torch.Tensor], own_streams: bool, repeat: int = 2) -> list[torch.Tensor]:
    """Each input upscaled by its own thread, all started together; on CUDA on the default stream or each on a
    stream of its own, ordered after the default stream the inputs were made on."""
    results: list[torch.Tensor | None] = [None] * len(inputs)
    errors: list[BaseException] = []
    start = threading.Barrier(len(inputs))

    def work(i: int) -> None:
        try:
            if up.device.type != "cuda":
                start.wait()
                for _ in range(repeat):
                    out = up.upscale_tensor(inputs[i])
                results[i] = out
                return
            made_on = torch.cuda.current_stream(CUDA)
            stream = torch.cuda.Stream(CUDA) if own_streams else made_on
            stream.wait_stream(made_on)  # the inputs were made on the default stream
            with torch.cuda.stream(stream):
                start.wait()
                for _ in range(repeat):
                    out = up.upscale_tensor(inputs[i])
                stream.synchronize()
            results[i] = out.cpu()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return [r for r in results if r is not None]


@pytest.mark.parametrize("runner", ["eager", "graphs"])
@pytest.mark.parametrize("own_streams", [False, True], ids=["default-stream", "own-streams"])
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_upscale_tensor_from_four_threads_matches_serial(
    precision: str, own_streams: bool, runner: str, device: torch.device
) -> None:
    """Four threads at once on a fresh engine (the first calls race to build the cached tensors), on the default
    stream or each on its own CUDA stream as the VapourSynth filter does; some inputs tiled. Runners are strict
    (conftest): "graphs" passes only if graphs ran."""
    if device.type != "cuda" and (runner != "eager" or own_streams or precision != "fp32"):
        needs_cuda(f"{runner} runner, {'own streams' if own_streams else 'default stream'}, {precision}")
    weights = golden_weights("tiny-x2-w8")
    options = EngineOptions(device=str(device), precision=precision, tile=32, overlap=8, batch=2)
    serial = [Upscaler(weights, options).upscale_tensor(x).cpu() for x in _inputs(device)]
    up = Upscaler(weights, options, runner=runner)
    if runner == "graphs":
        assert isinstance(up._runner, GraphRunner)
    sources = [device, torch.device("cpu")] if device.type == "cuda" else [device]  # inputs on the host and device
    for inputs in (_inputs(where) for where in sources):
        repeat = 2 if device.type == "cuda" else 1  # on CUDA the second call replays the captured graphs
        for got, want in zip(_threaded(up, inputs, own_streams, repeat), serial, strict=True):
            assert (got - want).abs().max().item() <= (1e-5 if precision == "fp32" else 2e-3)
    if runner == "graphs":
        assert isinstance(up._runner, GraphRunner) and len(up._runner.slots) > 0, "no graph was captured"


def test_a_cached_index_made_on_one_stream_is_complete_on_another(device: torch.device) -> None:
    """The maker's stream is held back by a sleep kernel before it builds the index: a reader on another stream
    that were not ordered after it would copy the index before it exists."""
    args = (3, 8, 12, 72, 88)  # a size no other test uses: this call makes the entry
    want = arch_module._overlap_windows(*args, torch.device("cpu"))
    assert want.numel() == 3 * 9 * 11 * 12 * 12
    needs_cuda("two CUDA streams")
    maker, reader = torch.cuda.Stream(CUDA), torch.cuda.Stream(CUDA)
    with torch.cuda.stream(maker):
        torch.cuda._sleep(200_000_000)  # about 0.1 s of GPU time
        made = arch_module._overlap_windows(*args, device)
    with torch.cuda.stream(reader):
        seen = arch_module._overlap_windows(*args, device)
        copy = seen.clone()
    torch.cuda.synchronize(CUDA)
    assert seen is made and torch.equal(copy.cpu(), want)


def test_graph_runner_replays_per_shape_and_keeps_few() -> None:
    needs_cuda("CUDA graphs")
    model = load_model(golden_weights("tiny-x4-w16"))
    graphs = Upscaler(model, device=CUDA, precision="fp16", runner="graphs")
    eager = Upscaler(model, device=CUDA, precision="fp16")
    runner = graphs._runner
    assert isinstance(runner, GraphRunner)
    x = torch.rand(1, 3, 48, 40, device=CUDA)
    want = eager.upscale_tensor(x)
    outs = [graphs.upscale_tensor(x) for _ in range(3)]  # eager, then captured, then replayed
    assert len(runner.slots) == 1
    for out in outs:
        assert (out - want).abs().max().item() <= 2e-3
    assert outs[1].data_ptr() != outs[2].data_ptr(), "each replay must hand out its own tensor"
    for side in range(16, 16 * 8, 16):  # more shapes than it keeps, and more sizes than the index cache keeps
        for _ in range(2):
            graphs.upscale_tensor(torch.rand(1, 3, side, side, device=CUDA))
    assert len(runner.slots) == runner.slots.keep
    torch.cuda.synchronize(CUDA)
    graphs.upscale_tensor(torch.rand(1, 3, 16, 16, device=CUDA))  # sweeps the retired graphs: all replays done
    assert len(runner.retired) == 0
    last = torch.rand(1, 3, 16 * 7, 16 * 7, device=CUDA)  # still kept: its pinned indices outlived the cache
    again = graphs.upscale_tensor(last)
    assert (again - eager.upscale_tensor(last)).abs().max().item() <= 2e-3


class _NoSyncInTheLoop(Upscaler):
    """Turns PyTorch's sync detector to "error" inside the tile loop (after a first, unchecked call)."""

    strict = False

    def _run_tiles(self, *args: Any, **kwargs: Any) -> Any:
        if not self.strict:
            return super()._run_tiles(*args, **kwargs)
        torch.cuda.set_sync_debug_mode("error")
        try:
            return super()._run_tiles(*args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("runner", ["eager", "graphs"])
def test_no_host_sync_inside_the_tile_loop(runner: str) -> None:
    needs_cuda("the CUDA sync detector")
    options = EngineOptions(device=str(CUDA), precision="fp16", tile=16, overlap=4, batch=3, runner=runner)
    up = _NoSyncInTheLoop(golden_weights("tiny-x2-w8"), options)
    x = torch.rand(2, 3, 40, 52, device=CUDA)
    first = [up.upscale_tensor(x) for _ in range(2)]  # plans made, graphs captured
    up.strict = True
    out = up.upscale_tensor(x)  # raises if anything in the loop waited for the GPU
    assert (out - first[-1]).abs().max().item() <= 1e-6


@pytest.mark.slow
def test_compiled_runner_matches_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    needs_cuda("torch.compile on CUDA")
    missing = compile_unavailable()
    if missing:
        pytest.skip(f"torch.compile is not available here: {missing}")
    monkeypatch.setenv("HAT_PLUGIN_CUDA_RUNNER", "compile")
    monkeypatch.setenv("HAT_PLUGIN_COMPILE_MODE", "default")  # max-autotune takes minutes; the bench measures it
    model = load_model(golden_weights("tiny-x2-w8"))
    compiled = Upscaler(model, device=CUDA, precision="fp16")
    assert compiled.options.runner == "compile" and compiled.options.compile_mode == "default"
    eager = Upscaler(model, device=CUDA, precision="fp16")
    x = torch.rand(1, 3, 32, 48, device=CUDA)
    outs = [compiled.upscale_tensor(x) for _ in range(2)]  # strict: a failed compile raises
    want = eager.upscale_tensor(x)
    for out in outs:
        assert (out - want).abs().max().item() <= 5e-3


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_padded_heads_match_and_unlock_the_efficient_kernel(
    precision: str, exact_fp32: None, device: torch.device
) -> None:
    """HAT's 30-channel heads: zero-padded to 32 they give the same output, and PyTorch's memory-efficient
    attention kernel (which needs aligned heads) accepts them."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if device.type != "cuda" and precision != "fp32":
        needs_cuda("fp16 attention kernels")
    config = HATConfig(embed_dim=60, depths=(2,), num_heads=(2,), window_size=8, upscale=2, num_feat=16)
    torch.manual_seed(3)
    dtype = torch.float32 if precision == "fp32" else torch.float16
    model = HAT(config).eval().to(device, dtype)
    x = torch.rand(1, 3, 24, 32, device=device)
    tol = 1e-5 if precision == "fp32" else 5e-3
    with torch.inference_mode():
        plain = model(x)
        model.pad_heads = True
        padded = model(x)
        assert (padded - plain).abs().max().item() <= tol
        needs_cuda("the memory-efficient attention kernel")
        with sdpa_kernel(SDPBackend.EFFICIENT_ATTENTION):
            efficient = model(x)
    assert (efficient - plain).abs().max().item() <= tol


# ---- staging: reused pinned buffers, frames on streams ----------------------------------------------------------


def test_host_images_reuse_one_pinned_buffer_per_slot(exact_fp32: None) -> None:
    """A host image goes to the device through the engine's slot buffer, the same pinned one from call to call."""
    model = load_model(golden_weights("tiny-x2-w8"))
    images = [torch.rand(1, 3, 40, 56, generator=torch.Generator().manual_seed(n)) for n in range(3)]
    want = [Upscaler(model, device="cpu", precision="fp32").upscale_tensor(x) for x in images]
    needs_cuda("pinned staging buffers")
    up = Upscaler(model, device=CUDA, precision="fp32")
    pointers = []
    for x, expected in zip(images, want, strict=True):
        out = up.upscale_tensor(x)
        assert out.device.type == "cpu" and (out - expected).abs().max().item() <= 2e-5
        with up._staging.slot() as slot:
            buffer = slot.host("image", x.numel(), x.dtype)
            assert buffer.is_pinned()
            pointers.append(buffer.data_ptr())
    assert len(set(pointers)) == 1, "each call allocated its own staging buffer"


def test_frames_on_own_streams_match_the_cpu(exact_fp32: None) -> None:
    """RGB frames from four threads on two slots, and 10-bit 4:2:0 frames through the colour converters: what the
    CPU gives (codes within one step), through pinned buffers that stay the same."""
    model = load_model(golden_weights("tiny-x2-w8"))
    rng = np.random.default_rng(11)
    rgb = PlanarRGB(np.dtype(np.float32))
    frames = [[rng.random((24, 32), dtype=np.float32) for _ in range(3)] for _ in range(8)]
    cpu = Upscaler(model, device="cpu", precision="fp32")
    want = [FrameUpscaler(cpu, rgb, rgb)(planes) for planes in frames]
    w, h = 32, 24
    layout = PixelLayout("yuv", 10, 1, 1)
    colour = source_colour(layout, w, h, matrix=1, colour_range=1, chroma_location=1)
    yuv = [rng.integers(64, 941, layout.plane_shape(i, w, h)).astype(np.uint16) for i in range(3)]

    def video_frames(engine: Upscaler) -> FrameUpscaler:
        source = ColourConverter(layout, colour, w, h, engine.device)
        return FrameUpscaler(engine, source, ColourConverter(layout, colour, 2 * w, 2 * h, engine.device))

    want_yuv = video_frames(cpu)(yuv)
    needs_cuda("frames on CUDA streams through pinned buffers")
    up = Upscaler(model, device=CUDA, precision="fp32")
    parallel = FrameUpscaler(up, rgb, rgb, streams=2)
    got = on_threads(parallel, frames)
    assert 1 <= parallel.peak_active <= 2
    for n, planes in enumerate(want):
        for a, b in zip(got[n], planes, strict=True):
            assert np.abs(a - b).max() <= 2e-5
    with parallel.staging.slot() as slot:
        assert slot.stream is not None and slot.host("planes", 3 * 24 * 32, torch.float32).is_pinned()
    video = video_frames(up)
    first = video(yuv)
    with video.staging.slot() as slot:
        before = slot.host("results", 1, torch.int32).data_ptr()
    second = video(yuv)
    with video.staging.slot() as slot:
        assert slot.host("results", 1, torch.int32).data_ptr() == before
    for a, b, c in zip(first, second, want_yuv, strict=True):
        assert a.dtype == np.uint16 and np.array_equal(a, b) and not np.shares_memory(a, b)
        assert np.abs(a.astype(np.int32) - c.astype(np.int32)).max() <= 1


# ---- devices ----------------------------------------------------------------------------------------------------


def test_device_strings() -> None:
    count = torch.cuda.device_count()
    with pytest.raises(DeviceError, match=rf"'cuda:{count}' is not available: this machine has"):
        Upscaler(golden_weights(), device=f"cuda:{count}")
    assert Upscaler(golden_weights(), device="auto").device.type == ("cuda" if HAS_CUDA else "cpu")
    needs_cuda("a CUDA device string that resolves")
    assert Upscaler(golden_weights(), device="cuda").device == torch.device("cuda", 0)
    assert Upscaler(golden_weights(), device="CUDA:0").device == torch.device("cuda", 0)


@pytest.mark.slow  # a real process
def test_cli_on_cuda_and_a_bad_index(tmp_path: Path) -> None:
    sample = ROOT / "samples" / "astronaut.png"
    base = [sys.executable, "-m", "hat_plugin", str(sample), "-w", str(BUNDLED / "hat-tiny-x2.safetensors")]
    bad_index = torch.cuda.device_count()
    bad = subprocess.run(
        [*base, "-o", str(tmp_path / "bad"), "-d", f"cuda:{bad_index}"], capture_output=True, text=True, timeout=180
    )
    assert bad.returncode == 1
    assert f"'cuda:{bad_index}' is not available" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
    needs_cuda("the CLI on cuda:0")
    good = subprocess.run([*base, "-o", str(tmp_path), "-d", "cuda:0"], capture_output=True, text=True, timeout=180)
    assert good.returncode == 0, good.stderr
    assert "on cuda:0" in good.stderr and len([p for p in tmp_path.iterdir() if p.is_file()]) == 1


def test_free_memory_follows_the_allocator_cap(memory_cap: Callable[[int], None]) -> None:
    from hat_plugin.device import free_memory

    before = free_memory(CUDA)
    memory_cap(torch.cuda.memory_allocated(CUDA) + (256 << 20))
    capped = free_memory(CUDA)
    assert capped <= (256 << 20) + (2 << 20) < before
    assert math.isclose(capped, 256 << 20, rel_tol=0.05)
