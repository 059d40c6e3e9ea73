"""The three front ends are thin: the CLI, the VapourSynth filter and the desktop app's run all produce the
engine's pixels for the same input and settings (bundled tiny x2 model, CPU, fp32)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import vapoursynth as vs
from conftest import DATA
from PIL import Image
from vs_helpers import clip_from_arrays, frame_array, hat_core

from gui.batch_run import ItemFinished, Job, RunConfig
from gui.runner import EngineCache, run_batch
from hat_plugin import Upscaler, images
from hat_plugin.batch import OutputOptions
from hat_plugin.cli import main as cli_main
from hat_plugin.options import EngineOptions

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

MODEL = "hat-tiny-x2"


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, object]:
    """A 40x56 crop of a held-out photo, as uint8 RGB and as a PNG file."""
    crop = images.read_image(DATA / "quality" / "coffee.png").pixels[60:100, 40:96]
    crop = np.ascontiguousarray(crop[..., :3])
    path = tmp_path_factory.mktemp("in") / "coffee.png"
    Image.fromarray(crop).save(path)
    return crop, path


@pytest.fixture(scope="module")
def expected(photo) -> np.ndarray:
    return Upscaler(MODEL, device="cpu", precision="fp32").upscale(photo[0])


def test_cli_gives_the_engines_pixels(photo, expected, tmp_path) -> None:
    code = cli_main([str(photo[1]), "-o", str(tmp_path), "--model", MODEL, "--device", "cpu", "--precision", "fp32"])
    assert code == 0
    out = np.asarray(Image.open(tmp_path / "coffee_x2.png"))
    assert out.shape == expected.shape and np.array_equal(out, expected)


def test_vapoursynth_filter_gives_the_engines_pixels(photo, expected) -> None:
    core = hat_core()
    clip = clip_from_arrays(core, [photo[0].astype(np.float32) / 255.0], vs.RGBS)
    up = core.hat.Upscale(clip, model=MODEL, device="cpu")
    planes = frame_array(up.get_frame(0))  # (3, H, W) float32 in [0, 1]
    out = np.rint(planes.transpose(1, 2, 0) * 255.0).astype(np.uint8)
    assert out.shape == expected.shape and np.array_equal(out, expected)


def test_gui_run_gives_the_engines_pixels(photo, expected, tmp_path) -> None:
    output = OutputOptions(folder=tmp_path, format="png")
    config = RunConfig(model=MODEL, engine=EngineOptions(device="cpu", precision="fp32"), output=output)
    events: list[object] = []
    run_batch([Job(1, photo[1])], config, EngineCache(), events.append, None)  # what the app's worker thread runs
    assert [e.state.value for e in events if isinstance(e, ItemFinished)] == ["done"]
    out = np.asarray(Image.open(tmp_path / "coffee_x2.png"))
    assert out.shape == expected.shape and np.array_equal(out, expected)
