"""``hat-upscale train`` end to end on CPU with the tiny preset: training improves the model, a run killed with
SIGKILL (or stopped with Ctrl-C) and resumed ends bit for bit where an uninterrupted run ends, fine-tuning starts
from the checkpoint's EMA, two stages hand over, and every front end loads the result."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from hat_plugin import Upscaler, load_model
from hat_plugin.cli import main as cli_main
from hat_plugin.images import read_image
from hat_plugin.metrics import psnr_y
from hat_plugin.training import Trainer, create_run, plan_run
from hat_plugin.training.degrade import load_rgb8, make_lr, mod_crop
from hat_plugin.training.folders import image_files
from hat_plugin.training.recipe import lr_at
from hat_plugin.training.start import starting_model
from hat_plugin.training.state import load_state

ROOT = Path(__file__).resolve().parents[1]
CROPS = ROOT / "tests" / "data" / "quality"  # four 192x192 photographs
SMALL = ["--patch", "8", "--batch", "2", "--threads", "1"]


# training at one thread: deterministic and fair; seconds per test
pytestmark = [pytest.mark.usefixtures("one_torch_thread"), pytest.mark.slow]


def _records(run_dir: Path, kind: str) -> list[dict]:
    lines = (run_dir / "log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """100 steps of the tiny preset from scratch at x2, validated at steps 0, 50 and 100."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    args = ["train", "--data", str(CROPS), "--val", str(CROPS), "--from", "tiny", "--scale", "2"]
    args += ["--out", str(run_dir), "--steps", "100", "--val-every", "50", "--log-every", "10", "--ema-decay", "0.9"]
    assert cli_main([*args, *SMALL]) == 0
    return run_dir


def test_a_hundred_steps_lower_the_loss_and_raise_validation_psnr(trained):
    losses = [r["loss"] for r in _records(trained, "train")]
    assert len(losses) == 10
    assert np.mean(losses[-3:]) < 0.7 * np.mean(losses[:3]), losses
    scores = {r["step"]: r["psnr"] for r in _records(trained, "val")}
    assert sorted(scores) == [0, 50, 100]
    assert scores[100] > scores[0] + 3.0, scores
    files = {p.name for p in trained.iterdir()}
    assert {"run.json", "checkpoint.pt", "model.safetensors", "best.safetensors", "log.jsonl", "progress.png"} <= files
    assert not [n for n in files if n.endswith(".tmp")]  # atomic writes leave no temporary files
    state = load_state(trained / "checkpoint.pt")
    assert state["done"] and state["step"] == 100 and state["best"]["step"] == 100


def test_the_result_loads_in_every_front_end(trained, tmp_path, capsys):
    weights = trained / "model.safetensors"
    header = safe_open(weights, "pt").metadata()
    assert json.loads(header["hat_config"])["embed_dim"] == 48 and header["steps_done"] == "100"
    model = load_model(weights)
    assert model.config.upscale == 2
    ema = load_state(trained / "checkpoint.pt")["ema"]
    assert all(torch.equal(v, ema[k]) for k, v in load_file(weights).items())  # the file is the EMA
    photo = CROPS / "coffee.png"
    engine = Upscaler(weights, device="cpu", precision="fp32").upscale(read_image(photo).pixels)
    # the command line
    out = tmp_path / "out"
    assert cli_main([str(photo), "--weights", str(weights), "-o", str(out), "--device", "cpu", "--quiet"]) == 0
    produced = read_image(next(out.iterdir())).pixels
    np.testing.assert_array_equal(produced, engine)
    # the VapourSynth filter, in this process's core
    import vapoursynth as vs
    from vs_helpers import clip_from_arrays, frame_array, hat_core

    frame = read_image(photo).pixels.astype(np.float32) / 255.0
    core = hat_core()
    clip = core.hat.Upscale(clip_from_arrays(core, [frame]), weights=str(weights), device="cpu")
    filtered = frame_array(clip.get_frame(0))
    expected = Upscaler(weights, device="cpu", precision="fp32").upscale(frame)
    assert clip.format.id == vs.RGBS and filtered.shape == (3, 384, 384)
    np.testing.assert_allclose(filtered, np.moveaxis(expected, -1, 0), atol=1e-5)


def _mean_psnr(model: str | Path, scale: int) -> float:
    up = Upscaler(model, device="cpu", precision="fp32")
    scores = []
    for path in image_files(CROPS):
        hr = mod_crop(load_rgb8(path), scale)
        scores.append(psnr_y(up.upscale(make_lr(hr, scale)), hr, scale))
    return float(np.mean(scores))


def test_fine_tuning_starts_from_the_checkpoints_ema(tmp_path):
    from hat_plugin.checkpoint import read_state_dict
    from hat_plugin.weights import resolve

    ema = read_state_dict(resolve("hat-tiny-x2"))
    both = tmp_path / "both.pth"
    torch.save({"params": {k: v * 0.5 for k, v in ema.items()}, "params_ema": ema}, both)
    run_dir = tmp_path / "ft"
    args = ["train", "--data", str(CROPS), "--val", str(CROPS), "--from", str(both), "--out", str(run_dir)]
    assert cli_main([*args, "--steps", "2", *SMALL]) == 0
    settings = json.loads((run_dir / "run.json").read_text())
    assert settings["scale"] == 2 and settings["stages"][0]["lr"] == 1e-5  # the official fine-tuning rate
    first = _records(run_dir, "val")[0]
    assert first["step"] == 0
    assert first["psnr"] == pytest.approx(_mean_psnr("hat-tiny-x2", 2), abs=1e-6)


def test_two_stages_hand_over_the_pretrained_ema(tmp_path):
    big, mine = tmp_path / "big", tmp_path / "mine"
    for folder, names in ((big, ("camera", "rocket")), (mine, ("chelsea", "coffee"))):
        folder.mkdir()
        for name in names:
            (folder / f"{name}.png").write_bytes((CROPS / f"{name}.png").read_bytes())
    settings = plan_run(
        "tiny", 2, mine, pretrain=big, pretrain_steps=4, steps=3, lr=5e-5, patch=8, batch=2, threads=1, log_every=1
    )
    run_dir = create_run(tmp_path / "run", settings)
    handover = []

    def watch(event):
        if event.message.startswith("stage train"):
            handover.append(
                all(torch.equal(v, trainer.ema.state_dict()[k]) for k, v in trainer.model.state_dict().items())
            )

    trainer = Trainer(run_dir, on_event=watch)
    trainer.run()
    assert handover == [True]  # stage 2 starts from the EMA of stage 1
    train = _records(run_dir, "train")
    expected = [("pretrain", lr_at(t, 4, 2e-4, settings.stages[0].milestones)) for t in range(4)]
    expected += [("train", lr_at(t, 3, 5e-5, settings.stages[1].milestones)) for t in range(3)]
    assert [(r["stage"], r["lr"]) for r in train] == expected
    assert expected[0][1] == 2e-4 and expected[4][1] == 5e-5  # each stage starts at its own rate


# ---- resume after SIGKILL and Ctrl-C ----------------------------------------------------------------------------

STEPS = 30
RESUMABLE = ["--from", "tiny", "--scale", "2", "--steps", str(STEPS), "--save-every", "4", "--log-every", "1"]
RESUMABLE += ["--seed", "3", "--ema-decay", "0.9", *SMALL]


def _spawn(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "hat_plugin", "train", *args]
    return subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _stop_at(process: subprocess.Popen[str], step: int, sig: int) -> str:
    """Send ``sig`` once the run reports ``step``; returns everything it wrote to stderr."""
    assert process.stderr is not None
    seen = []
    deadline = time.monotonic() + 120
    for line in process.stderr:
        seen.append(line)
        if line.startswith(f"step {step}/{STEPS} "):
            if sig == signal.SIGINT:  # Ctrl-C reaches the whole process group, data workers included
                os.killpg(process.pid, sig)
            else:
                process.send_signal(sig)
            break
        assert time.monotonic() < deadline, "".join(seen)
    seen += process.stderr.read()
    process.wait(timeout=120)
    return "".join(seen)


def _state(run_dir: Path) -> dict:
    return load_state(run_dir / "checkpoint.pt")


def _same_tensors(a: dict, b: dict) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same_tensors(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same_tensors(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_sigkill_and_ctrl_c_then_resume_give_bit_identical_weights(tmp_path):
    rng = random.Random(time.time_ns())
    kill_at, stop_at = rng.randint(5, 14), rng.randint(17, 26)
    note = f"SIGKILL at step {kill_at}, SIGINT at step {stop_at}"
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    assert cli_main(["train", "--data", str(CROPS), "--out", str(whole), *RESUMABLE, "-q"]) == 0

    killed = _spawn("--data", str(CROPS), "--out", str(broken), *RESUMABLE, "--workers", "2")
    _stop_at(killed, kill_at, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL, note
    after_kill = _state(broken)
    assert not after_kill["done"] and after_kill["step"] % 4 == 0, note  # the last checkpoint (every 4 steps)
    assert kill_at - 4 <= after_kill["step"] < STEPS, note  # (the line of step k comes before its checkpoint)

    stopped = _spawn("--resume", str(broken), "--workers", "1")
    err = _stop_at(stopped, stop_at, signal.SIGINT)
    assert stopped.returncode == 130, err
    assert "stopping after this step with a checkpoint" in err and f"continue with --resume {broken}" in err
    after_stop = _state(broken)
    assert not after_stop["done"] and stop_at <= after_stop["step"] < STEPS, note  # saved where it stopped

    resumed = _spawn("--resume", str(broken), "--workers", "0")
    assert resumed.wait(timeout=120) == 0, resumed.stderr.read() if resumed.stderr else note

    a, b = _state(whole), _state(broken)
    assert a["done"] and b["done"] and a["step"] == b["step"] == STEPS
    for key in ("model", "ema", "optimizer"):
        assert _same_tensors(a[key], b[key]), f"{key} differs ({note})"
    wa, wb = load_file(whole / "model.safetensors"), load_file(broken / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa), note
    assert [r["step"] for r in _records(broken, "train")] == list(range(1, STEPS + 1))  # the log has no gaps


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_paths_train_and_checkpoint(tmp_path, precision):
    # The GPU paths (bf16 autocast; fp16 autocast with a loss scaler) run on the CPU here, for two steps.
    run_dir = tmp_path / precision
    args = ["train", "--data", str(CROPS), "--from", "tiny", "--scale", "2", "--out", str(run_dir)]
    assert cli_main([*args, "--steps", "2", "--log-every", "1", "--precision", precision, *SMALL]) == 0
    assert json.loads((run_dir / "run.json").read_text())["precision"] == precision
    state = load_state(run_dir / "checkpoint.pt")
    assert (state["scaler"] is not None) == (precision == "fp16")  # the loss scaler's state is resumable
    assert all(torch.isfinite(v).all() for v in state["ema"].values() if v.is_floating_point())
    assert all(
        v.dtype == torch.float32 for k, v in load_file(run_dir / "model.safetensors").items() if "index" not in k
    )
    assert all(np.isfinite(r["loss"]) for r in _records(run_dir, "train"))


def test_channels_last_layout_does_not_change_the_training(tmp_path):
    # channels_last is the GPU default; the result must not depend on the memory layout.
    results = []
    for layout in (False, True):
        settings = plan_run("tiny", 2, CROPS, steps=3, patch=8, batch=2, threads=1, channels_last=layout)
        run_dir = create_run(tmp_path / str(layout), settings)
        results.append(load_file(Trainer(run_dir).run()))
    plain, last = results
    torch.manual_seed(0)  # the run's seed: its starting weights
    start = starting_model("tiny", 2).model.state_dict()
    assert all(torch.allclose(plain[k], last[k], atol=1e-6) for k in plain)
    assert any(not torch.equal(plain[k], start[k]) for k in plain)  # and it did train


def test_images_from_disk_with_workers_train_exactly_like_images_in_memory(tmp_path):
    results, messages = [], []
    for cache_mb in (2048, 0):  # held in memory (no workers by default) / decoded per patch (workers by default)
        settings = plan_run("tiny", 2, CROPS, steps=3, patch=8, batch=2, threads=1, cache_mb=cache_mb, seed=4)
        run_dir = create_run(tmp_path / str(cache_mb), settings)
        results.append(load_file(Trainer(run_dir, on_event=lambda e: messages.append(e.message)).run()))
    assert "train images held in memory, 0 data workers" in messages
    assert any(m.startswith("train images decoded from disk per patch, ") and " 0 data" not in m for m in messages)
    memory, disk = results
    assert all(torch.equal(memory[k], disk[k]) for k in memory)
