"""Quality of the whole pipeline with the bundled tiny models on held-out photographs (never trained on), and the
tools that measure it: MATLAB-style bicubic, PSNR/SSIM on Y, the evaluation script. (Training: test_train*.py.)"""

from __future__ import annotations

import functools
import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from hat_plugin import Upscaler, load_model, weights
from hat_plugin.imresize import imresize, resize_weights
from hat_plugin.metrics import psnr_y, rgb_to_y, ssim_y
from hat_plugin.training.degrade import load_rgb8, make_lr
from hat_plugin.training.folders import image_files
from tools import evaluate

ROOT = Path(__file__).resolve().parents[1]
CROPS = ROOT / "tests" / "data" / "quality"
BUNDLED = ROOT / "hat_plugin" / "bundled"
MODELS = {2: "hat-tiny-x2", 3: "hat-tiny-x3", 4: "hat-tiny-x4"}
# Mean PSNR-Y gain over bicubic on the held-out crops; docs/quality.md has the full held-out images.
MIN_MEAN_GAIN = {2: 1.0, 3: 0.6, 4: 0.5}


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Small crops and a shared CI machine: one thread is fastest and keeps the timing predictable."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def crops() -> dict[str, np.ndarray]:
    found = {p.stem: load_rgb8(p) for p in image_files(CROPS)}
    assert len(found) == 4, f"expected the 4 held-out crops in {CROPS}"
    return found


@pytest.fixture(scope="module")
def whole(crops) -> dict[int, dict[str, tuple[np.ndarray, np.ndarray, float]]]:
    """Per scale and crop: the LR input, the engine's whole-image output and bicubic's PSNR-Y."""
    result = {}
    for scale, name in MODELS.items():
        up = Upscaler(name, device="cpu", precision="fp32", tile=0)
        result[scale] = {}
        for stem, hr in crops.items():
            lr = make_lr(hr, scale)
            result[scale][stem] = (lr, up.upscale(lr), psnr_y(evaluate.bicubic(lr, scale), hr, scale))
    return result


# ---- the bundled models -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", sorted(MODELS))
def test_bundled_model_is_in_the_manifest_and_verified(scale, monkeypatch):
    monkeypatch.setenv("HAT_PLUGIN_OFFLINE", "1")  # bundled: works without network
    entry = weights.get_entry(MODELS[scale])
    assert entry.bundled and not entry.urls and entry.scale == scale
    path = weights.fetch(entry.name)  # sha256 checked against the manifest
    assert path == BUNDLED / entry.filename
    data = path.read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry.sha256
    assert len(data) == entry.size
    model = load_model(path)
    assert model.config.upscale == scale
    assert model.conv_first.weight.dtype == torch.float32


def test_bundled_models_are_small():
    total = sum(weights.local_path(weights.get_entry(n)).stat().st_size for n in MODELS.values())
    assert total < 5 * 1024 * 1024


# ---- quality of the engine --------------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", sorted(MODELS))
def test_engine_beats_bicubic_on_held_out_photos(scale, crops, whole):
    gains = {}
    for stem, hr in crops.items():
        _lr, output, bicubic_psnr = whole[scale][stem]
        assert output.shape == hr.shape and output.dtype == np.uint8
        gains[stem] = psnr_y(output, hr, scale) - bicubic_psnr
    assert all(g > 0 for g in gains.values()), gains
    assert np.mean(list(gains.values())) >= MIN_MEAN_GAIN[scale], gains


def _record_total(calls: list[int | None], done: int, total: int | None) -> None:
    calls.append(total)


@pytest.mark.slow
@pytest.mark.parametrize("scale", sorted(MODELS))
def test_tiled_output_matches_whole_image(scale, crops, whole):
    # LR crops are 96 (x2), 64 (x3) and 48 (x4) pixels: 3x3, 3x3 and 2x2 tiles. Tiles at least twice the overlap,
    # so the tiler keeps the full default overlap of 16 (it caps it at half a tile).
    tile = 48 if scale == 2 else 32
    up = Upscaler(MODELS[scale], device="cpu", precision="fp32", tile=tile)  # default overlap
    assert up.overlap == 16
    for stem, hr in crops.items():
        lr, full, _ = whole[scale][stem]
        calls: list[int | None] = []
        tiled = up.upscale(lr, progress=functools.partial(_record_total, calls))
        assert calls and calls[-1] == {2: 9, 3: 9, 4: 4}[scale], f"{stem}: expected several tiles, got {calls}"
        difference = abs(psnr_y(tiled, hr, scale) - psnr_y(full, hr, scale))
        assert difference < 0.05, f"{stem}: tiled differs from whole by {difference:.3f} dB"


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("scale", sorted(MODELS))
def test_half_precision_loses_less_than_a_tenth_of_a_db(scale, precision, crops, whole, monkeypatch):
    # Run the half type even where the CPU would emulate it (the engine otherwise falls back to fp32).
    monkeypatch.setenv("HAT_PLUGIN_FORCE_PRECISION", "1")
    up = Upscaler(MODELS[scale], device="cpu", precision=precision)
    assert up.model.conv_first.weight.dtype == {"fp16": torch.float16, "bf16": torch.bfloat16}[precision]
    for stem, hr in crops.items():
        lr, full, _ = whole[scale][stem]
        loss = psnr_y(full, hr, scale) - psnr_y(up.upscale(lr), hr, scale)
        assert loss < 0.1, f"{stem}: {precision} loses {loss:.3f} dB"


# ---- MATLAB-style bicubic ---------------------------------------------------------------------------------------

# MATLAB's antialiased cubic (a = -0.5) for a 1/2 shrink: taps at 0.5, 1.5, 2.5 and 3.5 input pixels, halved.
_HALF_TAPS = np.array([-0.0234375, -0.0703125, 0.2265625, 0.8671875, 0.8671875, 0.2265625, -0.0703125, -0.0234375])


def test_imresize_shrink_uses_the_widened_matlab_kernel():
    indices, taps = resize_weights(32, 16, 0.5)
    np.testing.assert_allclose(taps[5], _HALF_TAPS / 2, atol=1e-12)
    np.testing.assert_array_equal(indices[5], np.arange(7, 15))
    impulse = np.zeros((32, 32))
    impulse[13, 13] = 1.0
    along = _HALF_TAPS[[6, 4, 2, 0]] / 2  # outputs 5..8 see input 13 at tap 6, 4, 2, 0
    np.testing.assert_allclose(imresize(impulse, 0.5)[5:9, 5:9], np.outer(along, along), atol=1e-12)


def test_imresize_enlarge_uses_plain_cubic_and_mirrors_the_border():
    indices, taps = resize_weights(8, 16, 2.0)
    np.testing.assert_allclose(taps[6], [-0.0234375, 0.2265625, 0.8671875, -0.0703125], atol=1e-12)
    np.testing.assert_array_equal(indices[0], [1, 0, 0, 1])  # symmetric padding repeats the edge pixel


def test_imresize_keeps_flat_images_flat_and_rounds_like_matlab():
    flat = np.full((30, 21, 3), 77, np.uint8)
    small = imresize(flat, 1 / 3)
    assert small.shape == (10, 7, 3) and small.dtype == np.uint8 and np.all(small == 77)
    assert imresize(np.full((4, 4), 65535, np.uint16), 2.0).max() == 65535  # overshoot clipped, not wrapped
    with pytest.raises(ValueError, match="scale must be positive"):
        imresize(flat, 0)


# ---- PSNR / SSIM on Y -------------------------------------------------------------------------------------------


def test_y_channel_is_bt601_studio_range():
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], np.uint8)
    np.testing.assert_allclose(rgb_to_y(rgb)[0], [16.0, 235.0, 16.0 + 65.481], atol=1e-9)


def test_psnr_matches_its_definition_and_ignores_the_border():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 250, (40, 40, 3), dtype=np.uint8)
    b = a + 1
    expected = 20 * math.log10(255 / (219 / 255))  # every Y differs by 219/255
    assert psnr_y(a, b, 4) == pytest.approx(expected, abs=1e-9)
    c = a.copy()
    c[:4] = 255 - c[:4]  # damage only the cropped border rows
    assert psnr_y(a, c, 4) == math.inf
    with pytest.raises(ValueError, match="differ in shape"):
        psnr_y(a, a[:-1], 4)


def test_ssim_matches_its_definition():
    a = np.full((32, 32, 3), 100, np.uint8)
    y_a, y_b = 16 + 219 / 255 * 100, 16 + 219 / 255 * 101  # flat images: only the luminance term is left
    c1 = (0.01 * 255) ** 2
    assert ssim_y(a, a + 1, 2) == pytest.approx((2 * y_a * y_b + c1) / (y_a**2 + y_b**2 + c1), abs=1e-12)
    rng = np.random.default_rng(2)
    b = rng.integers(30, 220, (48, 48, 3), dtype=np.uint8)
    slightly, badly = (np.clip(b + rng.normal(0, sd, b.shape), 0, 255).astype(np.uint8) for sd in (3, 30))
    assert ssim_y(b, b, 2) == pytest.approx(1.0)
    assert 1.0 > ssim_y(b, slightly, 2) > ssim_y(b, badly, 2)
    assert ssim_y(b, badly, 2) == pytest.approx(ssim_y(badly, b, 2))


# ---- the scripts ------------------------------------------------------------------------------------------------


def test_evaluate_script_scores_a_folder_and_reports_bad_files(tmp_path, capsys, crops):
    folder = tmp_path / "hr"
    folder.mkdir()
    for stem in ("chelsea", "coffee"):
        (folder / f"{stem}.png").write_bytes((CROPS / f"{stem}.png").read_bytes())
    (folder / "broken.png").write_bytes(b"not an image")
    report = tmp_path / "scores.json"
    status = evaluate.main(["hat-tiny-x2", "--images", str(folder), "--json", str(report)])
    out, err = capsys.readouterr()
    assert status == 1  # one file could not be scored
    assert "broken.png" in err
    assert "| hat-tiny-x2 | chelsea.png | x2 |" in out and "**mean**" in out
    records = json.loads(report.read_text())
    assert [r["image"] for r in records] == ["chelsea.png", "coffee.png"]
    assert all(r["gain"] > 0 for r in records)
    assert evaluate.main(["hat-tiny-x2", "--images", str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err


def test_evaluate_script_centre_crops_and_pillow_degradation(tmp_path, capsys, crops):
    """The check of the bundled models on photographs: the centred crop, LR and baseline by Pillow's bicubic."""
    hr = crops["coffee"]
    assert evaluate.centre_crop(hr, 96).shape == (96, 96, 3)
    assert np.array_equal(evaluate.centre_crop(hr, 96), hr[48:144, 48:144])
    lr = np.asarray(PILImage.fromarray(hr).resize((96, 96), PILImage.Resampling.BICUBIC))
    assert np.array_equal(evaluate.bicubic(lr, 2, "pil"), np.asarray(PILImage.fromarray(lr).resize((192, 192), 3)))
    report = tmp_path / "scores.json"
    status = evaluate.main(
        ["hat-tiny-x2", "--images", str(CROPS), "--crop", "96", "--degrade", "pil", "--json", str(report)]
    )
    assert status == 0 and "| hat-tiny-x2 | coffee.png | x2 |" in capsys.readouterr().out
    records = {r["image"]: r for r in json.loads(report.read_text())}
    pil_lr = np.asarray(PILImage.fromarray(hr[48:144, 48:144]).resize((48, 48), PILImage.Resampling.BICUBIC))
    baseline = evaluate.score(evaluate.bicubic(pil_lr, 2, "pil"), hr[48:144, 48:144], 2)
    assert records["coffee.png"]["bicubic"]["psnr"] == pytest.approx(baseline.psnr)
