"""Image folders on a real Ray cluster on this machine: two nodes (``ray.cluster_utils.Cluster``), one CPU each.
The cluster must write exactly the files a local run writes, byte for byte, also when a worker is killed in the
middle of a group of images (Ray runs the group again; what the killed attempt wrote counts, its half-written file
does not stay); a bad image fails alone and a rerun skips what is done."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image as PILImage
from ray_helpers import REPO, two_node_cluster

from hat_plugin import image_work
from hat_plugin.batch import Input, OutputOptions, plan_outputs
from hat_plugin.checkpoint import load_model
from hat_plugin.cli import EXIT_FAILED, main
from hat_plugin.errors import Cancelled
from hat_plugin.image_work import ImageWork, upscale_images
from hat_plugin.options import EngineOptions
from hat_plugin.workers import Model, RayRunner, ray_runner

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow
WEIGHTS = REPO / "tests" / "data" / "golden" / "tiny-x2-w8" / "weights.safetensors"
PHOTO = REPO / "samples" / "astronaut.png"
BAD = "p1b.png"  # sorts between p1 and p2: in a group of good images


def test_ray_without_a_cluster_is_one_clear_error(tmp_path, capsys, monkeypatch):
    """(Runs before the cluster below starts: this process is not connected to Ray yet.)"""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    photos = photo_folder(tmp_path / "photos")
    code = main([str(photos), "-o", str(tmp_path / "out"), "--weights", str(WEIGHTS), "--ray", "auto"])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == EXIT_FAILED
    assert len(errors) == 1 and "cannot reach a Ray cluster at auto" in errors[0], errors
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*"))


@pytest.fixture(scope="module")
def cluster():
    with two_node_cluster() as nodes:
        yield nodes


def photo_folder(root: Path, size: int = 256) -> Path:
    """Crops of the sample photo (PNG and JPEG, one in a subfolder) and one file that is not an image; 256 px, so a
    worker takes long enough over a group for the driver to see it under way even on a loaded machine."""
    with PILImage.open(PHOTO) as opened:
        photo = opened.convert("RGB")
        for number in range(6):
            crop = photo.crop((number * 40, number * 30, number * 40 + size, number * 30 + size))
            folder = root / "sub" if number == 4 else root
            folder.mkdir(parents=True, exist_ok=True)
            crop.save(folder / (f"p{number}.jpg" if number % 3 == 2 else f"p{number}.png"))
    (root / BAD).write_bytes(b"\x89PNG\r\n\x1a\n" + b"not the rest of a PNG" * 8)
    return root


def local_reference(photos: Path, out: Path) -> subprocess.CompletedProcess[str]:
    """The same folder upscaled on this machine as each single-CPU worker runs it: a fresh process on one thread."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "hat_plugin", str(photos), "-r", "-o", str(out), "--weights", str(WEIGHTS)]
    command += ["--device", "cpu", "--precision", "fp32"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` (hidden ones too) -> its sha256."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The photo folder and its local run's outputs."""
    root = tmp_path_factory.mktemp("reference")
    photos = photo_folder(root / "photos")
    done = local_reference(photos, root / "out")
    assert done.returncode == EXIT_FAILED and BAD in done.stderr, done.stderr
    assert len(tree(root / "out")) == 6
    return photos, root / "out"


def test_a_folder_on_the_cluster_writes_the_local_files_and_a_rerun_skips_them(tmp_path, cluster, reference, capsys):
    photos, expected = reference
    out = tmp_path / "out"
    command = [str(photos), "-r", "-o", str(out), "--weights", str(WEIGHTS), "--device", "cpu", "--precision", "fp32"]
    assert main([*command, "--ray", "auto"]) == EXIT_FAILED  # the bad image fails, as locally
    printed = capsys.readouterr()
    assert "6 written, 1 failed" in printed.out + printed.err
    assert [line for line in printed.err.splitlines() if line.startswith("error:") and BAD in line], printed.err
    assert tree(out) == tree(expected)

    written = {path: path.stat().st_mtime_ns for path in out.rglob("*")}
    assert main([*command, "--ray", "auto"]) == EXIT_FAILED
    printed = capsys.readouterr()
    assert "0 written, 6 skipped, 1 failed" in printed.out + printed.err
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*")} == written


def test_a_worker_killed_mid_group_is_retried_and_the_files_are_unchanged(tmp_path, cluster, reference, monkeypatch):
    monkeypatch.setattr(ray_runner, "_POLL", 0.03)  # the driver looks often, to catch a group under way
    photos, expected = reference
    out = tmp_path / "out"
    inputs = [Input(path, path.parent.relative_to(photos), explicit=False) for path in sorted(photos.rglob("*.*"))]
    plan = plan_outputs(inputs, OutputOptions(folder=out), scale=2, model="tiny")
    assert len(plan.todo) == 7
    net = load_model(WEIGHTS)
    model = Model(net, EngineOptions(device="cpu", precision="fp32"), "tiny")
    runner = RayRunner("auto")
    killed: list[int] = []
    outcomes = []

    def progress(done):
        for status in runner.workers.values():
            if not killed and status.done == 1 and status.pid != os.getpid():  # one written, two to go
                os.kill(status.pid, signal.SIGKILL)
                killed.append(status.pid)

    upscale_images(
        plan.todo, ImageWork(), runner, model, on_outcome=outcomes.append, progress=progress, images_per_task=3
    )
    assert killed, "no worker was seen in the middle of a group"
    assert [outcome.output.name for outcome in outcomes if outcome.earlier], "the retried group wrote everything again"
    failed = [outcome for outcome in outcomes if outcome.error is not None]
    assert [outcome.source.name for outcome in failed] == [BAD]
    assert BAD in str(failed[0].error)
    assert sorted(outcome.source for outcome in outcomes) == sorted(item.input.source for item in plan.todo)
    assert tree(out) == tree(expected)


def test_a_cancelled_cluster_run_stops_and_keeps_only_whole_files(tmp_path, cluster, reference):
    photos, expected = reference
    out = tmp_path / "out"
    inputs = [Input(path, path.parent.relative_to(photos), explicit=False) for path in sorted(photos.rglob("*.*"))]
    plan = plan_outputs(inputs, OutputOptions(folder=out), scale=2, model="tiny")
    model = Model(load_model(WEIGHTS), EngineOptions(device="cpu", precision="fp32"), "tiny")
    stop = threading.Event()
    outcomes = []

    def on_outcome(outcome):
        outcomes.append(outcome)
        stop.set()

    with pytest.raises(Cancelled):
        upscale_images(plan.todo, ImageWork(), RayRunner("auto"), model, on_outcome=on_outcome, cancel=stop)
    assert 0 < len(outcomes) < len(plan.todo)
    written, wanted = tree(out), tree(expected)
    assert written and len(written) < len(wanted)
    assert all(wanted.get(name) == digest for name, digest in written.items())  # whole files only, no temporaries


def test_workers_of_another_version_fail_each_group_in_one_line(tmp_path, cluster, capsys, monkeypatch):
    """Every task refuses the driver's version: each group of images is said once, each image counts as failed."""
    monkeypatch.setattr(ray_runner, "__version__", "0.0.0-driver")  # the driver's; the workers import their own
    monkeypatch.setattr(image_work, "TASKS_WANTED", 2)  # 7 images, 3 to a task: groups of 3, 3 and 1
    photos = photo_folder(tmp_path / "photos")
    out = tmp_path / "out"
    code = main([str(photos), "-r", "-o", str(out), "--weights", str(WEIGHTS), "--device", "cpu", "--ray", "auto"])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == EXIT_FAILED and "0 written, 7 failed" in err
    assert len(errors) == 3 and sum(line.startswith("error: 3 images failed (") for line in errors) == 2, errors
    assert all("the driver 0.0.0-driver: install the same" in line for line in errors), errors
    assert not out.exists() or not any(out.rglob("*")), "nothing written"
