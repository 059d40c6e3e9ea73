"""The parts of ``hat-upscale train`` (``hat_plugin.training``): the official recipe, the starting network, data
folders, on-the-fly degradation, the deterministic batches, checkpoint state, settings, log and plot; bad folders
through the command line. End-to-end runs (loss, resume after SIGKILL, fine-tuning, front ends): test_train_run.py.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from hat_plugin import DataError, OptionError, TrainingError, Upscaler, weights
from hat_plugin.checkpoint import read_state_dict
from hat_plugin.cli import main as cli_main
from hat_plugin.config import PRESETS, detect_config
from hat_plugin.errors import CheckpointError
from hat_plugin.imresize import imresize
from hat_plugin.metrics import psnr_y
from hat_plugin.training import Kind, create_run, plan_run, read_settings
from hat_plugin.training.degrade import load_rgb8, lr_window, make_lr, mod_crop
from hat_plugin.training.folders import scan_folder
from hat_plugin.training.logbook import Logbook
from hat_plugin.training.patches import PatchBatches, TrainingImages
from hat_plugin.training.plot import write_progress
from hat_plugin.training.recipe import lr_at, preset_config, recipe_for
from hat_plugin.training.start import starting_model
from hat_plugin.training.state import capture_rng, load_state, restore_rng, save_state

ROOT = Path(__file__).resolve().parents[1]
CROPS = ROOT / "tests" / "data" / "quality"  # four 192x192 photographs


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # training at one thread: deterministic and fair


def _photo_folder(folder: Path, names: tuple[str, ...] = ("chelsea", "coffee")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.png").write_bytes((CROPS / f"{name}.png").read_bytes())
    return folder


# ---- the recipe -------------------------------------------------------------------------------------------------


def test_learning_rate_halves_at_the_official_milestones():
    official = recipe_for(Kind.SCRATCH)
    assert (official.lr, official.steps) == (2e-4, 500_000)
    milestones = [round(f * official.steps) for f in official.milestones]
    assert milestones == [250_000, 400_000, 450_000, 475_000]  # train_HAT_SRx2_from_scratch.yml
    # BasicSR steps the scheduler before iteration i (1-based): iteration 250000 (step 249999) runs halved.
    assert lr_at(249_998, official.steps, official.lr, official.milestones) == 2e-4
    assert lr_at(249_999, official.steps, official.lr, official.milestones) == 1e-4
    assert lr_at(499_999, official.steps, official.lr, official.milestones) == 2e-4 / 16
    assert recipe_for(Kind.FINETUNE).lr == 1e-5 and recipe_for(Kind.NEW_SCALE).lr == 1e-4
    assert round(recipe_for(Kind.PRETRAIN).milestones[0] * 800_000) == 300_000


@pytest.mark.parametrize("scale", [2, 4])
def test_tiny_preset_is_the_bundled_architecture(scale):
    bundled = detect_config(read_state_dict(weights.resolve(f"hat-tiny-x{scale}")))
    assert preset_config("tiny", scale) == bundled
    assert preset_config("hat-s", scale) == PRESETS[f"HAT-S_SRx{scale}"]
    assert preset_config("HAT-L", scale) == PRESETS[f"HAT-L_SRx{scale}"]
    assert preset_config("HAT_SRx4", scale) is None  # a model name, not a preset


def test_plan_uses_the_official_numbers_for_each_kind_of_start(tmp_path):
    scratch = plan_run("tiny", 2, tmp_path, check_data=False)
    assert [(s.kind, s.lr, s.steps) for s in scratch.stages] == [("scratch", 2e-4, 500_000)]
    assert (scratch.batch, scratch.patch, scratch.ema_decay, scratch.seed) == (4, 64, 0.999, 0)
    finetune = plan_run("hat-tiny-x2", 2, tmp_path, steps=10, check_data=False)
    assert [(s.kind, s.lr, s.steps) for s in finetune.stages] == [("finetune", 1e-5, 10)]
    assert plan_run("hat-tiny-x2", 4, tmp_path, check_data=False).stages[0].lr == 1e-4  # x4 from x2
    two = plan_run(
        "HAT-S", 4, tmp_path / "mine", pretrain=tmp_path / "big", pretrain_steps=5, lr=3e-5, check_data=False
    )
    assert [(s.name, s.kind, s.steps, s.lr) for s in two.stages] == [
        ("pretrain", "pretrain", 5, 2e-4),
        ("train", "finetune", 250_000, 3e-5),
    ]
    with pytest.raises(OptionError, match="multiple of the model's window size"):
        plan_run("tiny", 2, tmp_path, patch=12, check_data=False)
    with pytest.raises(OptionError, match="ema_decay must be in"):
        plan_run("tiny", 2, tmp_path, ema_decay=1.0, check_data=False)
    with pytest.raises(OptionError, match="^steps must be 1 or more"):
        plan_run("tiny", 2, tmp_path, steps=0, check_data=False)


def test_run_folder_is_never_reused_and_settings_round_trip(tmp_path):
    data = str(tmp_path / "data")  # not the run's parent: a run folder inside its image folders is refused
    settings = plan_run("tiny", 3, data, steps=7, val=data, seed=5, check_data=False)
    run_dir = create_run(tmp_path / "run", settings)
    assert read_settings(run_dir) == settings
    with pytest.raises(TrainingError, match="already holds a training run: continue it with resume "):
        create_run(run_dir, settings)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(TrainingError, match="not an empty folder"):
        create_run(tmp_path / "busy", settings)
    with pytest.raises(TrainingError, match="not a training run folder"):
        read_settings(tmp_path / "busy")


# ---- the starting network ---------------------------------------------------------------------------------------


def test_fine_tuning_starts_from_params_ema_not_params(tmp_path):
    ema = read_state_dict(weights.resolve("hat-tiny-x2"))
    noisy = {k: v + 0.5 if v.is_floating_point() else v for k, v in ema.items()}
    both = tmp_path / "both.pth"
    torch.save({"params": noisy, "params_ema": ema}, both)
    start = starting_model(both, 2)
    assert start.kind == Kind.FINETUNE and start.fresh == []
    own = start.model.state_dict()
    assert all(torch.equal(own[k], ema[k]) for k in ema)


@pytest.mark.slow
def test_a_new_scale_keeps_the_body_and_starts_the_new_stage_as_bicubic():
    x2 = read_state_dict(weights.resolve("hat-tiny-x2"))
    start = starting_model("hat-tiny-x2", 4)
    assert start.kind == Kind.NEW_SCALE and start.fresh == ["upsample.2.bias", "upsample.2.weight"]
    own = start.model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in x2.items())
    # The x4 network starts as "the x2 model's features, then bicubic": near bicubic-of-x2 on a photo (the two differ
    # by where the interpolation happens, before or after the last convolution) and well above plain bicubic.
    hr = mod_crop(load_rgb8(CROPS / "coffee.png"), 4)
    lr = make_lr(hr, 4)
    start_psnr = psnr_y(Upscaler(start.model.eval(), device="cpu", precision="fp32").upscale(lr), hr, 4)
    via_x2 = psnr_y(imresize(Upscaler("hat-tiny-x2", device="cpu", precision="fp32").upscale(lr), 2.0), hr, 4)
    assert abs(start_psnr - via_x2) < 0.5
    assert start_psnr > psnr_y(imresize(lr, 4.0), hr, 4) + 0.5


def test_x3_starts_from_the_x2_body_with_a_bicubic_x3_stage():
    """The bundled x3 is made this way: every x2 tensor that fits is kept, the x3 stage starts as bicubic, so the
    network starts close to "the x2 body's features, interpolated" and well above a random x3 stage."""
    x2 = read_state_dict(weights.resolve("hat-tiny-x2"))
    start = starting_model("hat-tiny-x2", 3)
    assert start.kind == Kind.NEW_SCALE and start.fresh == ["upsample.0.bias", "upsample.0.weight"]
    own = start.model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in x2.items() if not k.startswith("upsample."))
    hr = mod_crop(load_rgb8(CROPS / "coffee.png"), 3)
    lr = make_lr(hr, 3)
    start_psnr = psnr_y(Upscaler(start.model.eval(), device="cpu", precision="fp32").upscale(lr), hr, 3)
    assert start_psnr > psnr_y(imresize(lr, 3.0), hr, 3) - 1.5


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_initialisation_starts_close_to_bicubic(scale):
    torch.manual_seed(0)
    model = starting_model("tiny", scale, init="bicubic").model.eval()
    up = Upscaler(model, device="cpu", precision="fp32")
    hr = mod_crop(load_rgb8(CROPS / "coffee.png"), scale)
    lr = make_lr(hr, scale)
    assert abs(psnr_y(up.upscale(lr), hr, scale) - psnr_y(imresize(lr, float(scale)), hr, scale)) < 0.5


def test_bad_starts_are_clear_errors(tmp_path):
    bogus = tmp_path / "bogus.safetensors"
    bogus.write_bytes(b"not weights")
    with pytest.raises(CheckpointError, match="bogus.safetensors"):
        starting_model(bogus, 2)
    with pytest.raises(Exception, match="presets to train from scratch: HAT-S, HAT, HAT-L, tiny"):
        starting_model("HAT-XL", 2)
    with pytest.raises(OptionError, match="unknown init"):
        starting_model("tiny", 3, init="nearest")


# ---- data -------------------------------------------------------------------------------------------------------


def test_folder_scan_recurses_skips_and_counts(tmp_path):
    data = _photo_folder(tmp_path / "data")
    _photo_folder(data / "more" / "deeper", ("rocket",))
    _photo_folder(data / ".hidden", ("camera",))
    (data / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    Image.new("RGB", (40, 300)).save(data / "thumb.png")
    (data / "notes.txt").write_text("not an image")
    scan = scan_folder(data, 64)
    assert [p.relative_to(data).as_posix() for p in scan.files] == [
        "chelsea.png",
        "coffee.png",
        "more/deeper/rocket.png",
    ]
    assert scan.sizes == [(192, 192)] * 3
    assert [p.name for p, _ in scan.corrupt] == ["broken.jpg"]
    assert [p.name for p in scan.too_small] == ["thumb.png"]
    assert scan.summary("train") == f"train: 3 images in {data}, 1 too small skipped, 1 unreadable skipped"


def test_empty_or_useless_folders_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="has no images"):
        scan_folder(tmp_path / "empty", 64)
    with pytest.raises(DataError, match="does not exist"):
        scan_folder(tmp_path / "missing", 64)
    small = tmp_path / "small"
    small.mkdir()
    Image.new("RGB", (50, 50)).save(small / "a.png")
    (small / "b.png").write_bytes(b"broken")
    with pytest.raises(DataError, match="none of the 2 images .* usable: 1 unreadable, 1 smaller than 64 pixels"):
        scan_folder(small, 64)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_on_the_fly_degradation_equals_degrading_the_whole_image(scale):
    hr = mod_crop(load_rgb8(CROPS / "chelsea.png"), scale)
    whole = make_lr(hr, scale)
    rng = random.Random(scale)
    size = 16
    corners = [(0, 0), (whole.shape[0] - size, whole.shape[1] - size)]
    for top, left in corners + [(rng.randrange(whole.shape[0] - size), rng.randrange(whole.shape[1] - size))] * 6:
        window = lr_window(hr, scale, top, left, size)
        np.testing.assert_array_equal(window, whole[top : top + size, left : left + size])


def _batches(cache: bool, steps: range, workers: int = 0) -> list:
    scan = scan_folder(CROPS, 32)
    images = TrainingImages(scan.files, scan.sizes, 2, 1 << 30 if cache else 0)
    assert images.cached == cache
    data = PatchBatches(images, patch=16, batch=3, seed=7, stage=0)
    loader = DataLoader(data, batch_size=None, sampler=steps, num_workers=workers)
    return [(b.lr.clone(), b.hr.clone()) for b in loader]


def test_batches_depend_only_on_the_step_not_on_workers_cache_or_resume():
    reference = _batches(True, range(0, 6))
    assert reference[0][0].shape == (3, 3, 16, 16) and reference[0][1].shape == (3, 3, 32, 32)
    assert reference[0][0].dtype == torch.uint8
    assert not torch.equal(reference[0][0], reference[1][0])
    for other in (_batches(False, range(0, 6)), _batches(True, range(0, 6), workers=2)):
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(reference, other, strict=True))
    resumed = _batches(True, range(4, 6), workers=1)  # a resume at step 4
    assert all(torch.equal(a[0], b[0]) for a, b in zip(reference[4:], resumed, strict=True))
    # Each LR patch is the bicubic shrink of its HR patch's surroundings: close to shrinking the patch itself.
    lr, hr = reference[2]
    shrunk = imresize(hr[0].permute(1, 2, 0).numpy(), 0.5)
    assert np.abs(shrunk[2:-2, 2:-2].astype(int) - lr[0].permute(1, 2, 0).numpy()[2:-2, 2:-2]).max() <= 1


def test_every_image_is_visited_once_per_epoch():
    scan = scan_folder(CROPS, 32)
    images = TrainingImages(scan.files, scan.sizes, 2, 1 << 30)
    data = PatchBatches(images, patch=16, batch=1, seed=3, stage=1)
    order = [data._image_at(n) for n in range(12)]
    assert all(sorted(order[i : i + 4]) == [0, 1, 2, 3] for i in (0, 4, 8))
    assert order[:4] != order[4:8] or order[4:8] != order[8:12]


def test_a_file_that_breaks_after_the_scan_is_skipped_and_reported(tmp_path):
    data = _photo_folder(tmp_path / "data", ("chelsea", "coffee", "camera"))
    scan = scan_folder(data, 32)
    (data / "coffee.png").write_bytes((data / "coffee.png").read_bytes()[:300])  # truncated after the scan
    images = TrainingImages(scan.files, scan.sizes, 2, 0)  # decoded per patch
    batches = [PatchBatches(images, patch=16, batch=2, seed=0, stage=0)[t] for t in range(4)]
    failed = {f for b in batches for f in b.failed}
    assert failed == {str(data / "coffee.png")}
    assert all(b.lr.shape == (2, 3, 16, 16) for b in batches)


# ---- state, log, plot -------------------------------------------------------------------------------------------


def test_checkpoint_state_round_trips_random_states_safely(tmp_path):
    torch.manual_seed(1)
    np.random.seed(2)
    random.seed(3)
    saved = capture_rng()
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    save_state(tmp_path / "c.pt", {"rng": saved, "step": 5, "weights": {"w": torch.ones(2)}})
    torch.manual_seed(9)
    np.random.seed(9)
    random.seed(9)
    state = load_state(tmp_path / "c.pt")
    assert state["step"] == 5 and torch.equal(state["weights"]["w"], torch.ones(2))
    restore_rng(state["rng"])
    assert torch.equal(torch.rand(3), expected[0])
    np.testing.assert_array_equal(np.random.rand(3), expected[1])
    assert [random.random() for _ in range(3)] == expected[2]
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a hat-plugin training checkpoint"):
        load_state(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="not a readable training checkpoint"):
        load_state(tmp_path / "junk.pt")


def test_log_and_plot_files(tmp_path):
    log = Logbook()
    for step in range(10, 110, 10):
        log.add("train", step, loss=0.2 / step, lr=2e-4)
    log.add("val", 0, psnr=20.0, ssim=0.5)
    log.add("val", 100, psnr=float("inf"), ssim=1.0)
    log.write(tmp_path / "log.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert len(lines) == 12 and lines[-1]["psnr"] is None and lines[0]["kind"] == "train"
    write_progress(tmp_path / "p.png", log.series("train", "loss"), log.series("val", "psnr"), 100)
    with Image.open(tmp_path / "p.png") as im:
        assert im.format == "PNG" and im.size == (960, 320)
        pixels = np.asarray(im.convert("RGB")).reshape(-1, 3)
    colours = {tuple(p) for p in pixels}
    assert (31, 119, 180) in colours and (214, 39, 40) in colours  # both curves drawn


# ---- bad data through the command line --------------------------------------------------------------------------


def _train(tmp_path: Path, data: Path, *extra: str) -> int:
    args = ["train", "--data", str(data), "--from", "tiny", "--scale", "2", "--out", str(tmp_path / "run")]
    return cli_main([*args, "--steps", "2", "--patch", "8", "--batch", "1", "--threads", "1", *extra])


def test_command_line_reports_bad_data_folders(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert _train(tmp_path, tmp_path / "empty") == 1
    err = capsys.readouterr().err
    assert "error: train data folder" in err and "has no images" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing written: the same command works once the folder is fixed
    mixed = _photo_folder(tmp_path / "mixed", ("chelsea",))
    (mixed / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    Image.new("RGB", (10, 10)).save(mixed / "tiny.png")
    assert _train(tmp_path / "second", mixed, "--log-every", "1") == 0
    err = capsys.readouterr().err
    assert "warning: skipped unreadable" in err and "broken.png" in err
    assert f"train data: 1 images in {mixed}, 1 too small skipped, 1 unreadable skipped" in err
    assert (tmp_path / "second" / "run" / "model.safetensors").is_file()


def test_command_line_usage_errors(tmp_path, capsys):
    assert cli_main(["train", "--data", str(CROPS), "--from", "tiny", "--out", str(tmp_path / "r")]) == 2
    assert "give --scale" in capsys.readouterr().err
    assert cli_main(["train", "--data", str(CROPS), "--scale", "2"]) == 2
    assert "a new run needs --data DIR, --from" in capsys.readouterr().err
    assert cli_main(["train", "--resume", str(tmp_path / "r"), "--from", "tiny", "--threads", "3"]) == 2
    assert "--from, --threads cannot change them" in capsys.readouterr().err
    assert cli_main(["train", "--resume", str(tmp_path / "nothing")]) == 1
    assert "not a training run folder" in capsys.readouterr().err
    assert _train(tmp_path, CROPS, "--patch", "12") == 2
    assert "multiple of the model's window size (8)" in capsys.readouterr().err
