"""core.hat.Upscale under the real vspipe: .vpy scripts as a video user writes them (no import of our code for the
filter), y4m on stdout, parallel requests, wrong formats, models by name and offline; and the install step."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import vapoursynth as vs
from vs_helpers import (
    GOLDEN_X2,
    REPO,
    Y4M,
    clip_from_arrays,
    engine_output,
    image_frames,
    parse_y4m,
    shim_dir,
    vs_env,
    vspipe,
)
from weights_server import WeightsServer

from vs_filter import build

pytestmark = pytest.mark.slow  # real vspipe processes

TESTS = Path(__file__).resolve().parent
FRAMES, WIDTH, HEIGHT = 6, 32, 24

PHOTO_SCRIPT = """
import vapoursynth as vs
from vs_helpers import clip_from_arrays, image_frames

core = vs.core
clip = clip_from_arrays(core, image_frames({frames}, {width}, {height}))  # stands in for a source filter
clip = core.hat.Upscale(clip, weights=r"{weights}", num_streams=2)
clip = core.resize.Bicubic(clip, format=vs.YUV444P16, matrix_s="709")
clip.set_output()
"""


def write_script(folder: Path, body: str, **values: object) -> Path:
    script = folder / "script.vpy"
    script.write_text(textwrap.dedent(body).format(**values), encoding="utf-8")
    return script


def expected_yuv(images: list[np.ndarray]) -> list[np.ndarray]:
    """The engine's output for each image, converted to YUV444P16 the way the scripts do."""
    core = vs.core
    upscaled = [np.ascontiguousarray(np.moveaxis(engine_output(image), 0, -1)) for image in images]
    clip = core.resize.Bicubic(clip_from_arrays(core, upscaled), format=vs.YUV444P16, matrix_s="709")
    return [np.stack([np.asarray(f[p]) for p in range(3)]) for f in clip.frames()]


def assert_clean_failure(result: subprocess.CompletedProcess[bytes], *expected: str) -> str:
    """vspipe failed without a crash, wrote no video, and told the user ``expected``."""
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 1, stderr  # an error exit, not a signal
    assert result.stdout == b""
    for text in expected:
        assert text in stderr, stderr
    return stderr


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], Y4M]:
    """The photo script run once with one request at a time: its folder, environment and parsed output."""
    folder = tmp_path_factory.mktemp("serial")
    env = vs_env(folder, shim_dir())
    env["PYTHONPATH"] = f"{TESTS}:{env['PYTHONPATH']}"
    script = write_script(folder, PHOTO_SCRIPT, frames=FRAMES, width=WIDTH, height=HEIGHT, weights=GOLDEN_X2)
    result = vspipe(script, env, "-r", "1")
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return script, env, parse_y4m(result.stdout)


def test_vspipe_writes_the_upscaled_frames_as_y4m(serial_run) -> None:
    _, _, video = serial_run
    assert (video.width, video.height, len(video.frames)) == (2 * WIDTH, 2 * HEIGHT, FRAMES)
    assert video.header["F"] == "24:1"
    expected = expected_yuv(image_frames(FRAMES, WIDTH, HEIGHT))
    for got, want in zip(video.frames, expected, strict=True):
        assert np.abs(got.astype(np.int32) - want.astype(np.int32)).max() <= 1


def test_parallel_requests_give_the_same_frames_as_serial(serial_run) -> None:
    script, env, serial = serial_run
    result = vspipe(script, env, "-r", "4")
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    parallel = parse_y4m(result.stdout)
    assert len(parallel.frames) == FRAMES
    for one, many in zip(serial.frames, parallel.frames, strict=True):
        np.testing.assert_array_equal(one, many)


def test_wrong_format_stops_the_script_with_the_fix(tmp_path: Path) -> None:
    script = write_script(
        tmp_path,
        """
        import vapoursynth as vs
        core = vs.core
        clip = core.std.BlankClip(format=vs.YUV420P8, width=32, height=24, length=2)
        clip = core.hat.Upscale(clip, weights=r"{weights}")
        clip.set_output()
        """,
        weights=GOLDEN_X2,
    )
    assert_clean_failure(
        vspipe(script, vs_env(tmp_path, shim_dir())),
        "hat.Upscale: YUV420P8 clips are not supported, only RGBS and RGBH",
        "clip = core.resize.Bicubic(clip, format=vs.RGBS, matrix_in_s='709')",
    )


def test_model_by_name_is_downloaded_without_touching_stdout(tmp_path: Path) -> None:
    data = GOLDEN_X2.read_bytes()
    server = WeightsServer()
    try:
        url = server.add("/golden-x2.safetensors", data)
        manifest = tmp_path / "manifest.json"
        entry = {
            "name": "golden-x2",
            "variant": "HAT-S",
            "scale": 2,
            "description": "tiny random-weights HAT for tests",
            "filename": "golden-x2.safetensors",
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "urls": [url],
            "license": "Apache-2.0",
        }
        manifest.write_text(json.dumps({"format": 1, "models": [entry]}), encoding="utf-8")
        cache = tmp_path / "cache"
        env = vs_env(tmp_path, shim_dir(), HAT_PLUGIN_MANIFEST=str(manifest), HAT_PLUGIN_CACHE=str(cache))
        script = write_script(
            tmp_path,
            """
            import vapoursynth as vs
            core = vs.core
            clip = core.std.BlankClip(format=vs.RGBS, width=24, height=16, length=2, color=[0.2, 0.4, 0.6])
            clip = clip.hat.Upscale(model="golden-x2")
            clip = core.resize.Bicubic(clip, format=vs.YUV444P16, matrix_s="709")
            clip.set_output()
            """,
        )
        result = vspipe(script, env)
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        assert [hit.status for hit in server.hits("/golden-x2.safetensors")] == [200]
    finally:
        server.close()
    video = parse_y4m(result.stdout)  # any stray byte on stdout would break the stream
    assert (video.width, video.height, len(video.frames)) == (48, 32, 2)
    flat = np.broadcast_to(np.array([0.2, 0.4, 0.6], np.float32), (16, 24, 3)).copy()
    assert np.abs(video.frames[1].astype(np.int32) - expected_yuv([flat])[0].astype(np.int32)).max() <= 1
    assert (cache / "golden-x2.safetensors").read_bytes() == data


def test_missing_model_offline_fails_cleanly(tmp_path: Path) -> None:
    env = vs_env(tmp_path, shim_dir(), HAT_PLUGIN_CACHE=str(tmp_path / "empty"), HAT_PLUGIN_OFFLINE="1")
    script = write_script(
        tmp_path,
        """
        import vapoursynth as vs
        core = vs.core
        clip = core.std.BlankClip(format=vs.RGBS, width=24, height=16, length=2)
        core.hat.Upscale(clip, model="HAT-S_SRx4").set_output()
        """,
    )
    assert_clean_failure(vspipe(script, env), "hat.Upscale: ", "HAT-S_SRx4", "HAT_PLUGIN_OFFLINE")


def test_failing_frame_ends_vspipe_with_our_message(tmp_path: Path) -> None:
    env = vs_env(tmp_path, shim_dir())
    script = write_script(
        tmp_path,
        """
        import torch
        import vapoursynth as vs
        from hat_plugin import HAT, HATConfig, Upscaler
        from vs_filter.filter import frame_graph
        from vs_filter.frames import FrameCallback

        core = vs.core
        config = HATConfig(in_chans=1, embed_dim=16, depths=(1,), num_heads=(2,), window_size=8, upscale=2,
                           squeeze_factor=4)
        clip = core.std.BlankClip(format=vs.RGBS, width=24, height=16, length=3)
        runner = FrameCallback(Upscaler(HAT(config), device="cpu"), clip, torch.device("cpu"), 1)
        clip = core.resize.Bicubic(frame_graph(clip, runner), format=vs.YUV444P16, matrix_s="709")
        clip.set_output()
        """,
    )
    result = vspipe(script, env, timeout=120)
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode == 1, stderr
    assert re.search(r"hat\.Upscale: frame \d: expected a \(B, 1, H, W\) tensor, got \(1, 3, 16, 24\)", stderr), stderr
    assert "Traceback" not in stderr


def test_install_puts_the_shim_where_vapoursynth_autoloads_it(tmp_path: Path) -> None:
    """What the README's set-up runs; afterwards scripts find core.hat with no import and no variable."""
    target = Path(vs.get_plugin_dir()) / build.LIBRARY_NAME
    existed = target.exists()
    try:
        installed = subprocess.run(
            [sys.executable, "-m", "vs_filter", "install"], capture_output=True, text=True, cwd=REPO, check=False
        )
        assert installed.returncode == 0, installed.stderr
        assert installed.stdout.strip() == f"installed {target}"
        env = vs_env(tmp_path)  # no VAPOURSYNTH_EXTRA_PLUGIN_PATH
        assert "VAPOURSYNTH_EXTRA_PLUGIN_PATH" not in env
        script = write_script(
            tmp_path,
            """
            import vapoursynth as vs
            core = vs.core
            assert "weights:data:opt" in core.hat.Upscale.signature
            clip = core.std.BlankClip(format=vs.RGBS, width=24, height=16, length=2)
            clip = clip.hat.Upscale(weights=r"{weights}")
            core.resize.Bicubic(clip, format=vs.YUV444P16, matrix_s="709").set_output()
            """,
            weights=GOLDEN_X2,
        )
        result = vspipe(script, env)
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        assert len(parse_y4m(result.stdout).frames) == 2
    finally:
        if not existed:
            build.uninstall()
