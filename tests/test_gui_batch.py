"""The desktop app plans a run like the command line: no two inputs write the same output, and outputs of an
earlier run that are queued again (a folder dropped twice) are not upscaled a second time."""

from __future__ import annotations

import os

import numpy as np
import torch
from conftest import golden_weights
from PIL import Image

from gui.queue_model import JobQueue
from gui.worker import EngineCache, Job, RunConfig, UpscaleTask

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def _run(jobs: list[Job], out, **changes) -> dict[str, tuple[str, str]]:
    config = RunConfig(model=str(golden_weights()), from_file=True, device="cpu", output_dir=out, **changes)
    task = UpscaleTask(jobs, config, EngineCache())
    finished: dict[int, tuple[str, str]] = {}
    task.signals.item_finished.connect(lambda item_id, state, message, *_: finished.update({item_id: (state, message)}))
    task.run()
    return {jobs[i - 1].source.name: finished[i] for i in finished}


def _photo(path, seed: int) -> None:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (8, 12, 3), dtype=np.uint8)).save(path)


def test_two_inputs_never_write_the_same_output(qapp, tmp_path) -> None:
    _photo(tmp_path / "c.png", 1)
    _photo(tmp_path / "c.bmp", 2)
    out = tmp_path / "out"
    result = _run([Job(1, tmp_path / "c.png"), Job(2, tmp_path / "c.bmp")], out, format="png", overwrite=True)
    assert result["c.png"][0] == "done"
    assert result["c.bmp"][0] == "failed" and "already the output of" in result["c.bmp"][1]
    expected = np.asarray(Image.open(out / "c_x2.png"))
    assert expected.shape == (16, 24, 3)


def test_outputs_queued_again_are_left_out(qapp, tmp_path) -> None:
    _photo(tmp_path / "a.png", 3)
    first = _run([Job(1, tmp_path / "a.png")], None)
    assert first["a.png"][0] == "done" and (tmp_path / "a_x2.png").is_file()
    queue = JobQueue()
    (tmp_path / ".hidden.png").write_bytes(b"not shown")
    added = queue.add_paths([tmp_path])
    assert sorted(i.source.name for i in added.added) == ["a.png", "a_x2.png"]  # hidden files are not inputs
    again = _run([Job(i + 1, item.source, item.root) for i, item in enumerate(added.added)], None, overwrite=True)
    assert again["a.png"][0] == "done"
    assert again["a_x2.png"][0] == "skipped" and "output of another image" in again["a_x2.png"][1]
    assert not (tmp_path / "a_x2_x2.png").exists()


def test_out_of_memory_fails_the_item_and_the_queue_goes_on(qapp, tmp_path) -> None:
    """Through the real engine: a model that runs out of memory above 8x8 inputs fails the large image with the
    app's advice, and the small image after it is still upscaled."""
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "big.png")
    _photo(tmp_path / "small.png", 4)
    Image.fromarray(np.asarray(Image.open(tmp_path / "small.png"))[:8, :8]).save(tmp_path / "small.png")
    config = RunConfig(model=str(golden_weights()), from_file=True, device="cpu", output_dir=tmp_path / "out")
    engines = EngineCache()
    model = engines.get(str(golden_weights()), config).model
    forward = model.forward

    def limited(x):
        if x.shape[-1] * x.shape[-2] > 8 * 8:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
        return forward(x)

    model.forward = limited
    task = UpscaleTask([Job(1, tmp_path / "big.png"), Job(2, tmp_path / "small.png")], config, engines)
    finished: dict[int, tuple[str, str]] = {}
    task.signals.item_finished.connect(lambda item_id, state, message, *_: finished.update({item_id: (state, message)}))
    task.run()
    assert finished[1][0] == "failed" and finished[1][1].startswith("Out of memory")
    assert finished[2][0] == "done" and (tmp_path / "out" / "small_x2.png").is_file()
    assert not (tmp_path / "out" / "big_x2.png").exists()


def test_a_suffix_with_a_folder_in_it_fails_the_item(qapp, tmp_path) -> None:
    _photo(tmp_path / "a.png", 5)
    result = _run([Job(1, tmp_path / "a.png")], tmp_path / "out", suffix="/../../x")
    assert result["a.png"][0] == "failed" and "path separator" in result["a.png"][1]
    assert not list(tmp_path.parent.glob("x.png")) and not list(tmp_path.rglob("*x.png"))
