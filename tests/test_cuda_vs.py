"""core.hat.Upscale on a real CUDA GPU: ``num_streams`` 1, 2 and 4 through the real ``vspipe -r`` give the frames of
a serial run (and of the CPU engine), in fp32 and fp16; frames overlap on the GPU; a bad device index is a clean
error. Where there is no CUDA each test runs its CPU part (the scripts, the reference frames, the error) and skips
the CUDA rest with the reason (``conftest.needs_cuda``)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = [pytest.mark.cuda]

vs = pytest.importorskip("vapoursynth", reason="needs VapourSynth (carry its wheel to the GPU machine)")

from conftest import HAS_CUDA, needs_cuda  # noqa: E402
from vs_helpers import (  # noqa: E402  (after the skips: importing it needs VapourSynth)
    GOLDEN_X2,
    clip_from_arrays,
    frame_array,
    hat_core,
    image_frames,
    parse_y4m,
    shim_dir,
    vs_env,
    vspipe,
)

TESTS = Path(__file__).resolve().parent
FRAMES, WIDTH, HEIGHT, TILE = 8, 88, 64, 40  # tiled frames: several batches per frame

SCRIPT = """
import vapoursynth as vs
from vs_helpers import clip_from_arrays, image_frames

core = vs.core
clip = clip_from_arrays(core, image_frames({frames}, {width}, {height}), {fmt})
clip = core.hat.Upscale(clip, weights=r"{weights}", device="{device}", num_streams={streams}, tile={tile}, batch=2)
clip = core.resize.Point(clip, format=vs.RGBS) if clip.format.id == vs.RGBH else clip
core.resize.Bicubic(clip, format=vs.YUV444P16, matrix_s="709").set_output()  # y4m carries YUV only
"""


def run_script(
    folder: Path, fmt: str, streams: int, requests: int, device: str = "cuda", frames: int = FRAMES
) -> list[np.ndarray]:
    """The script's frames through ``vspipe -r requests``, as YUV444P16 ``(3, H, W)`` arrays."""
    env = vs_env(folder, shim_dir(), NVIDIA_TF32_OVERRIDE="0")  # true fp32 products, to compare with the CPU
    env["PYTHONPATH"] = f"{TESTS}:{env['PYTHONPATH']}"
    script = folder / f"{device}-s{streams}-r{requests}.vpy"
    body = SCRIPT.format(
        frames=frames, width=WIDTH, height=HEIGHT, fmt=fmt, weights=GOLDEN_X2, streams=streams, tile=TILE, device=device
    )
    script.write_text(textwrap.dedent(body), encoding="utf-8")
    result = vspipe(script, env, "-r", str(requests))
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    video = parse_y4m(result.stdout)
    assert (video.width, video.height, len(video.frames)) == (2 * WIDTH, 2 * HEIGHT, frames)
    return video.frames


def _max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> int:
    return max(int(np.abs(x.astype(np.int32) - y.astype(np.int32)).max()) for x, y in zip(a, b, strict=True))


@pytest.mark.slow  # a real process
@pytest.mark.parametrize(
    ("fmt", "streams", "cpu_tol"), [("vs.RGBS", (1, 2, 4), 4), ("vs.RGBH", (4,), 700)], ids=["fp32", "fp16"]
)
def test_vspipe_num_streams_give_the_serial_frames(
    tmp_path: Path, fmt: str, streams: tuple[int, ...], cpu_tol: int
) -> None:
    """Serial (one request, one stream), then four requests at a time with each ``num_streams``."""
    if not HAS_CUDA:  # the script and the reference on the CPU: the CPU filter gives the CPU engine's frames
        if fmt == "vs.RGBS":
            on_cpu = run_script(tmp_path, fmt, streams=1, requests=1, device="cpu", frames=2)
            assert _max_diff(on_cpu, cpu_frames(2)) <= 1
        needs_cuda("the filter on CUDA streams")
    serial = run_script(tmp_path, fmt, streams=1, requests=1)
    for count in streams:
        parallel = run_script(tmp_path, fmt, streams=count, requests=4)
        assert _max_diff(parallel, serial) <= 1, f"num_streams={count} differs from the serial run"
    assert _max_diff(serial, cpu_frames()) <= cpu_tol, "the GPU frames differ from the CPU engine's"


def cpu_frames(frames: int = FRAMES) -> list[np.ndarray]:
    """The CPU engine's frames (same tiling) through the scripts' YUV conversion (y4m carries YUV only)."""
    from hat_plugin import Upscaler

    core = vs.core
    up = Upscaler(GOLDEN_X2, device="cpu", precision="fp32", tile=TILE, batch=2)
    upscaled = [up.upscale(image) for image in image_frames(frames, WIDTH, HEIGHT)]
    clip = core.resize.Bicubic(clip_from_arrays(core, upscaled), format=vs.YUV444P16, matrix_s="709")
    return [np.stack([np.asarray(f[p]) for p in range(3)]) for f in clip.frames()]


def test_frames_overlap_on_the_gpu_and_match_serial() -> None:
    """In-process: four streams with parallel requests give the serial frames."""
    from hat_plugin import Upscaler
    from vs_filter.filter import frame_graph
    from vs_filter.frames import FrameCallback

    needs_cuda("frames on CUDA streams")
    core = hat_core()
    images = image_frames(FRAMES, WIDTH, HEIGHT)
    clip = clip_from_arrays(core, images)
    device = torch.device("cuda", 0)
    up = Upscaler(GOLDEN_X2, device=device, precision="fp32", tile=TILE, batch=2)
    threads = core.num_threads
    core.num_threads = 4
    try:
        outputs = {}
        for streams in (1, 4):
            runner = FrameCallback(up, clip, device, streams)
            out = frame_graph(clip, runner)
            requests = [out.get_frame_async(n) for n in range(FRAMES)]
            outputs[streams] = [frame_array(r.result()) for r in requests]
            assert 1 <= runner.peak_active <= streams
    finally:
        core.num_threads = threads
    for one, four in zip(outputs[1], outputs[4], strict=True):
        assert np.abs(one - four).max() <= 1e-5


def test_bad_device_index_is_a_clean_error() -> None:
    core = hat_core()
    clip = core.std.BlankClip(format=vs.RGBS, width=32, height=24, length=1)
    bad = torch.cuda.device_count()
    with pytest.raises(vs.Error) as info:
        core.hat.Upscale(clip, weights=str(GOLDEN_X2), device="cuda", device_index=bad)
    message = str(info.value)
    assert message.startswith("hat.Upscale: ") and f"'cuda:{bad}' is not available" in message
    assert "Traceback" not in message
