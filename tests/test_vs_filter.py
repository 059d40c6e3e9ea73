"""core.hat.Upscale in a real VapourSynth core in this process: its signature, pixels against the engine, formats,
frame properties, parallel frames, error messages; the shim in a program without Python; building the shim."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import vapoursynth as vs
from vs_helpers import (
    GOLDEN_X2,
    REPO,
    clip_from_arrays,
    engine_output,
    frame_array,
    golden_upscaler,
    hat_core,
    image_frames,
    shim_dir,
)

from hat_plugin import HAT, HATConfig, Upscaler
from vs_filter import build
from vs_filter.filter import frame_graph
from vs_filter.frames import FrameCallback

WEIGHTS = str(GOLDEN_X2)


@pytest.fixture(scope="module")
def core() -> vs.Core:
    return hat_core()


def upscale_error(core: vs.Core, clip: vs.VideoNode, **kwargs: object) -> str:
    """The message of the vs.Error that core.hat.Upscale raises; it must be one clean line of ours."""
    with pytest.raises(vs.Error) as info:
        core.hat.Upscale(clip, **kwargs)
    message = str(info.value)
    assert message.startswith("hat.Upscale: "), message
    assert "Traceback" not in message, message
    return message


def test_signature_documents_every_argument(core: vs.Core) -> None:
    signature = core.hat.Upscale.signature
    for arg in ("clip:vnode", "model:data:opt", "weights:data:opt", "device:data:opt"):
        assert arg in signature
    assert signature.endswith(";any")  # the numbers, checked by the filter itself (see test_hostile_vs.py)
    clip = core.std.BlankClip(format=vs.RGBS, width=24, height=16, length=1)
    assert clip.hat.Upscale.signature == signature


def test_photo_frames_match_the_engine(core: vs.Core) -> None:
    images = image_frames(3, 64, 48)
    out = core.hat.Upscale(clip_from_arrays(core, images), weights=WEIGHTS, device="cpu")
    assert (out.format.id, out.width, out.height, out.num_frames) == (vs.RGBS, 128, 96, 3)
    results = [frame_array(out.get_frame(n)) for n in range(3)]
    for image, result in zip(images, results, strict=True):
        np.testing.assert_allclose(result, engine_output(image), atol=1e-5)
    assert np.abs(results[0] - results[1]).max() > 0.05  # the pan moves: frames are not all the same


def test_rgbh_clip_stays_half_and_matches_the_engine(core: vs.Core) -> None:
    images = [image.astype(np.float16) for image in image_frames(2, 40, 24)]
    out = core.hat.Upscale(clip_from_arrays(core, images, vs.RGBH), weights=WEIGHTS, device="cpu")
    assert (out.format.id, out.width, out.height) == (vs.RGBH, 80, 48)
    for n, image in enumerate(images):
        result = frame_array(out.get_frame(n))
        assert result.dtype == np.float16
        np.testing.assert_allclose(result.astype(np.float32), engine_output(image).astype(np.float32), atol=2e-3)


def test_blank_clip_keeps_length_and_rate(core: vs.Core) -> None:
    clip = core.std.BlankClip(
        format=vs.RGBS, width=24, height=16, length=4, fpsnum=30000, fpsden=1001, color=[0.25, 0.5, 0.75]
    )
    out = core.hat.Upscale(clip, weights=WEIGHTS)
    assert (out.width, out.height, out.num_frames, out.fps) == (48, 32, 4, clip.fps)
    expected = engine_output(np.broadcast_to(np.array([0.25, 0.5, 0.75], np.float32), (16, 24, 3)).copy())
    np.testing.assert_allclose(frame_array(out.get_frame(3)), expected, atol=1e-5)


def test_frame_properties_are_carried_over(core: vs.Core) -> None:
    clip = core.std.BlankClip(format=vs.RGBS, width=24, height=16, length=3, color=[0.1, 0.2, 0.3])
    clip = core.std.SetFrameProps(clip, _SARNum=4, _SARDen=3, _Matrix=0, _Primaries=1, _Transfer=1, Title="shot")

    def number(n: int, f: vs.VideoFrame) -> vs.VideoFrame:
        out = f.copy()
        out.props["FrameNumber"] = n
        return out

    clip = clip.std.ModifyFrame(clips=clip, selector=number)
    out = core.hat.Upscale(clip, weights=WEIGHTS)
    for n in (2, 0, 1):
        props = dict(out.get_frame(n).props)
        assert props["FrameNumber"] == n
        assert (props["_SARNum"], props["_SARDen"]) == (4, 3)  # both axes scale alike: the pixel shape stays
        assert (props["_Matrix"], props["_Primaries"], props["_Transfer"], props["Title"]) == (0, 1, 1, "shot")
        assert "HATError" not in props


@pytest.mark.parametrize(
    ("fmt", "fix"),
    [
        (vs.YUV420P8, "core.resize.Bicubic(clip, format=vs.RGBS, matrix_in_s='709')"),
        (vs.YUV444PS, "core.resize.Bicubic(clip, format=vs.RGBS, matrix_in_s='709')"),
        (vs.RGB24, "core.resize.Point(clip, format=vs.RGBS)"),
        (vs.RGB48, "core.resize.Point(clip, format=vs.RGBS)"),
        (vs.GRAY8, "core.resize.Point(clip, format=vs.RGBS)"),
        (vs.GRAYS, "core.resize.Point(clip, format=vs.RGBS)"),
    ],
    ids=["YUV420P8", "YUV444PS", "RGB24", "RGB48", "GRAY8", "GRAYS"],
)
def test_wrong_format_error_names_a_fix_that_works(core: vs.Core, fmt: int, fix: str) -> None:
    clip = core.std.BlankClip(format=fmt, width=24, height=16, length=1)
    message = upscale_error(core, clip, weights=WEIGHTS)
    assert f"{clip.format.name} clips are not supported, only RGBS and RGBH" in message
    assert f"clip = {fix}" in message
    fixed = eval(re.search(r"clip = (core\.[^)]*\))", message).group(1), {"core": core, "vs": vs, "clip": clip})
    out = core.hat.Upscale(fixed, weights=WEIGHTS)
    assert out.get_frame(0).format.id == vs.RGBS


def test_variable_format_or_size_is_refused(core: vs.Core) -> None:
    for clip in (
        core.std.BlankClip(format=vs.RGBS, varsize=True, length=1),
        core.std.BlankClip(varformat=True, length=1),
    ):
        assert "variable format or size" in upscale_error(core, clip, weights=WEIGHTS)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"model": "HAT-S_SRx4", "weights": WEIGHTS}, "either model (a name) or weights (a file), not both"),
        ({"weights": WEIGHTS, "tile": -1}, "tile must be 0 or more, not -1"),
        ({"weights": WEIGHTS, "overlap": -8}, "overlap must be 0 or more, not -8"),
        ({"weights": WEIGHTS, "num_streams": 0}, "num_streams must be 1 or more, not 0"),
        ({"weights": WEIGHTS, "batch": -1}, "batch must be 0 or more, not -1"),
        ({"weights": WEIGHTS, "fp16": 2}, "fp16 must be 0 or 1, not 2"),
        ({"weights": WEIGHTS, "device": "tpu"}, "unknown device 'tpu'"),
        ({"weights": WEIGHTS, "device": "cpu", "device_index": 1}, "device_index applies to CUDA devices"),
        ({"weights": WEIGHTS, "device_index": -1}, "device_index must be 0 or more"),
        ({"weights": WEIGHTS, "device": "cuda", "device_index": 99}, "'cuda:99' is not available"),
        ({"weights": "/nonexistent/HAT.safetensors"}, "/nonexistent/HAT.safetensors"),
        ({"model": "HAT-S_SRx5"}, "HAT-S_SRx"),
        ({"weights": WEIGHTS, "max_memory": "lots"}, "max_memory= must be a size in bytes such as 4G or 512M"),
        ({"weights": WEIGHTS, "max_memory": -1}, "max_memory= must be 0 (no limit) or a positive size"),
        ({"weights": WEIGHTS, "max_memory": float("inf")}, "max_memory= must be 0 (no limit) or a positive size"),
    ],
)
def test_bad_arguments_get_clear_errors(core: vs.Core, kwargs: dict, expected: str) -> None:
    clip = core.std.BlankClip(format=vs.RGBS, width=24, height=16, length=1)
    assert expected in upscale_error(core, clip, **kwargs)


def test_max_memory_reaches_the_engine_tile(core: vs.Core) -> None:
    """A cap below what the process already holds leaves the CPU's automatic tile its smallest (two windows): the
    frame is then upscaled in tiles, exactly as the engine does with that tile, and not as one whole frame."""
    images = image_frames(1, 64, 48)
    clip = clip_from_arrays(core, images)
    for cap in ("1M", 1 << 20):
        result = frame_array(core.hat.Upscale(clip, weights=WEIGHTS, device="cpu", max_memory=cap).get_frame(0))
        tiled = Upscaler(GOLDEN_X2, device="cpu", tile=16).upscale(images[0])
        np.testing.assert_allclose(result, np.moveaxis(tiled, -1, 0), atol=1e-5)
        assert np.abs(result - engine_output(images[0])).max() > 1e-4  # whole-frame pixels differ at the seams
    roomy = core.hat.Upscale(clip, weights=WEIGHTS, device="cpu", max_memory="64G")
    np.testing.assert_allclose(frame_array(roomy.get_frame(0)), engine_output(images[0]), atol=1e-5)


def test_no_model_uses_the_default_model_and_says_so(core: vs.Core, tmp_path, monkeypatch, capfd) -> None:
    monkeypatch.setenv("HAT_PLUGIN_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HAT_PLUGIN_OFFLINE", "1")
    clip = core.std.BlankClip(format=vs.RGBS, width=24, height=16, length=1, color=[0.5, 0.25, 0.75])
    out = core.hat.Upscale(clip, device="cpu")
    frame = out.get_frame(0)
    assert (out.width, out.height) == (96, 64)  # the bundled x4 model: works offline
    assert abs(float(np.asarray(frame[0]).mean()) - 0.5) < 0.05
    captured = capfd.readouterr()
    assert "hat.Upscale: no model given: using hat-tiny-x4 (bundled, works offline" in captured.err
    assert captured.out == ""


def test_missing_model_offline_is_a_clean_error(core: vs.Core, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("HAT_PLUGIN_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("HAT_PLUGIN_OFFLINE", "1")
    clip = core.std.BlankClip(format=vs.RGBS, width=24, height=16, length=1)
    message = upscale_error(core, clip, model="HAT-S_SRx4")
    assert "HAT-S_SRx4" in message and "HAT_PLUGIN_OFFLINE" in message


def test_model_is_loaded_once_per_call(core: vs.Core, tmp_path) -> None:
    weights = tmp_path / "model.safetensors"
    shutil.copyfile(GOLDEN_X2, weights)
    images = image_frames(3, 32, 24)
    out = core.hat.Upscale(clip_from_arrays(core, images), weights=str(weights))
    weights.unlink()  # a filter that reloaded the model per frame would now fail
    for n in (2, 0, 1):
        np.testing.assert_allclose(frame_array(out.get_frame(n)), engine_output(images[n]), atol=1e-5)


def test_frames_run_in_parallel_up_to_num_streams(core: vs.Core) -> None:
    images = image_frames(8, 48, 32)
    clip = clip_from_arrays(core, images)
    threads = core.num_threads
    core.num_threads = 4
    try:
        results = {}
        for streams in (1, 2):
            runner = FrameCallback(golden_upscaler(), clip, torch.device("cpu"), streams)
            out = frame_graph(clip, runner)
            requests = [out.get_frame_async(n) for n in range(len(images))]
            results[streams] = [frame_array(request.result()) for request in requests]
            assert runner.peak_active == streams
    finally:
        core.num_threads = threads
    for one, two, image in zip(results[1], results[2], images, strict=True):
        np.testing.assert_array_equal(one, two)
        np.testing.assert_allclose(two, engine_output(image), atol=1e-5)


def test_failed_frame_is_a_clean_error_and_the_clip_stays_usable(core: vs.Core) -> None:
    config = HATConfig(
        in_chans=1, embed_dim=16, depths=(1,), num_heads=(2,), window_size=8, upscale=2, squeeze_factor=4
    )
    grey_model = Upscaler(HAT(config), device="cpu")  # a real network that takes one channel, fed three
    clip = core.std.BlankClip(format=vs.RGBS, width=24, height=16, length=2)
    out = frame_graph(clip, FrameCallback(grey_model, clip, torch.device("cpu"), 1))
    for n in (0, 1):
        with pytest.raises(vs.Error) as info:
            out.get_frame(n)
        message = str(info.value)
        assert message.startswith(f"hat.Upscale: frame {n}: expected a (B, 1, H, W) tensor"), message
        assert "Traceback" not in message


def test_out_of_memory_is_explained(core: vs.Core) -> None:
    try:
        torch.empty(1 << 60, dtype=torch.uint8)  # a real allocation failure of the CPU allocator
    except RuntimeError as exc:
        failure = exc
    clip = core.std.BlankClip(format=vs.RGBS, width=24, height=16, length=1)
    runner = FrameCallback(golden_upscaler(), clip, torch.device("cpu"), 1)
    message = runner._describe(failure, 7)
    assert message.startswith("hat.Upscale: out of memory on cpu (frame 7, 24x16 -> 48x32")
    assert "smaller tile" in message and "num_streams" in message


HOST_WITHOUT_PYTHON = r"""
#include <dlfcn.h>
#include <stdio.h>
#include "VapourSynth4.h"

/* A VapourSynth host with no Python: loads the core and the shim, and calls hat.Upscale. */
int main(int argc, char **argv) {
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib || argc < 3) { printf("cannot load %s\n", argv[1]); return 2; }
    const VSAPI *api = ((VSGetVapourSynthAPI)dlsym(lib, "getVapourSynthAPI"))(VAPOURSYNTH_API_VERSION);
    VSCore *core = api->createCore(ccfDisableAutoLoading);
    VSPlugin *std = api->getPluginByID("com.vapoursynth.std", core);
    VSMap *args = api->createMap();
    api->mapSetData(args, "path", argv[2], -1, dtUtf8, maReplace);
    VSMap *res = api->invoke(std, "LoadPlugin", args);
    if (api->mapGetError(res)) { printf("LoadPlugin: %s\n", api->mapGetError(res)); return 3; }
    api->freeMap(res);
    api->clearMap(args);
    api->mapSetInt(args, "format", pfRGBS, maReplace);
    api->mapSetInt(args, "width", 24, maReplace);
    api->mapSetInt(args, "height", 16, maReplace);
    res = api->invoke(std, "BlankClip", args);
    api->clearMap(args);
    api->mapConsumeNode(args, "clip", api->mapGetNode(res, "clip", 0, NULL), maReplace);
    api->freeMap(res);
    api->mapSetData(args, "weights", "model.safetensors", -1, dtUtf8, maReplace);
    res = api->invoke(api->getPluginByNamespace("hat", core), "Upscale", args);
    const char *error = api->mapGetError(res);
    printf("%s\n", error ? error : "no error");
    int status = error ? 0 : 1;
    api->freeMap(res);
    api->freeMap(args);
    api->freeCore(core);
    return status;
}
"""


def test_shim_in_a_host_without_python_returns_an_error(tmp_path) -> None:
    source = tmp_path / "host.c"
    source.write_text(HOST_WITHOUT_PYTHON, encoding="utf-8")
    host = tmp_path / "host"
    subprocess.run(
        [build.find_compiler(), f"-I{vs.get_include()}", str(source), "-o", str(host), "-ldl"],
        check=True,
        capture_output=True,
    )
    library = Path(vs.__file__).parent / "libvapoursynth.so.4"  # the core library inside the vapoursynth wheel
    result = subprocess.run(
        [str(host), str(library), str(shim_dir() / build.LIBRARY_NAME)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hat.Upscale needs Python, and this program has no Python interpreter loaded" in result.stdout


def test_build_without_a_compiler_says_what_to_install(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(build.BuildError, match="no C compiler found .*apt install gcc"):
        build.build(tmp_path / "plugins")
    monkeypatch.setenv("CC", "no-such-cc")
    with pytest.raises(build.BuildError, match="CC='no-such-cc' is not an executable"):
        build.build(tmp_path / "plugins")
    assert not list((tmp_path / "plugins").iterdir())  # no half-written library left behind


def test_install_command_builds_into_a_folder_and_uninstall_removes_it(tmp_path) -> None:
    target = tmp_path / "plugins"
    run = [sys.executable, "-m", "vs_filter"]
    installed = subprocess.run([*run, "install", "--target", str(target)], capture_output=True, text=True, cwd=REPO)
    assert installed.returncode == 0, installed.stderr
    library = target / build.LIBRARY_NAME
    assert installed.stdout.strip() == f"installed {library}"
    assert build.source_hash().encode() in library.read_bytes()
    removed = subprocess.run([*run, "uninstall", "--target", str(target)], capture_output=True, text=True, cwd=REPO)
    assert removed.returncode == 0 and not library.exists()
    failed = subprocess.run(
        [*run, "install", "--target", str(target)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PATH": str(tmp_path), "PYTHONPATH": str(REPO)},
    )
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: no C compiler found"), failed.stderr
    assert failed.stdout == ""
