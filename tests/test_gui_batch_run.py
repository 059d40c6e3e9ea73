"""The app's batch logic without Qt: planning through ``hat_plugin.batch.plan_outputs`` as the command line does,
the worker's events from the real engine (golden tiny model), the window's state transitions, overall progress
that counts finished work only, the time-left estimate, and per-item notices."""

from __future__ import annotations

import logging
import os
import threading
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import golden_weights
from PIL import Image
from video_helpers import make_clip

from gui.batch_run import (
    ItemFinished,
    ItemUpdate,
    Job,
    ModelChosen,
    RunConfig,
    RunStopped,
    RunTracker,
    TimeLeft,
    plan_jobs,
)
from gui.notices import collect_notices
from gui.queue_model import ItemState, QueueItem
from gui.runner import EngineCache, describe_error, run_batch
from gui.settings import Settings
from gui.wording import worded as app_worded
from hat_plugin.batch import OutputOptions
from hat_plugin.errors import OptionError
from hat_plugin.options import EngineOptions

S = ItemState


def _photo(path: Path, seed: int, size: tuple[int, int] = (8, 12)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)
    return path


def _golden(out: Path | None, **options) -> RunConfig:
    return RunConfig(
        model=str(golden_weights()),
        from_file=True,
        engine=EngineOptions(device="cpu"),
        output=OutputOptions(folder=out, **options),
    )


def _run(jobs: list[Job], config: RunConfig, engines: EngineCache | None = None) -> list[object]:
    events: list[object] = []
    run_batch(jobs, config, engines or EngineCache(), events.append, threading.Event())
    return events


def _finished(events: list[object]) -> dict[int, ItemFinished]:
    return {e.item_id: e for e in events if isinstance(e, ItemFinished)}


# ------------------------------------------------------------------------------------------------ planning


def test_planning_leaves_out_outputs_found_in_a_folder_but_keeps_files_dropped_themselves(tmp_path):
    """As the CLI: an earlier result inside a dropped folder is left out; the same file dropped by itself is an
    explicit input and is planned (its output name differs)."""
    a = _photo(tmp_path / "a.png", 1)
    earlier = _photo(tmp_path / "a_x2.png", 2)
    in_folder = [Job(1, a, tmp_path), Job(2, earlier, tmp_path)]
    todo, ended = plan_jobs(in_folder, OutputOptions(overwrite=True), scale=2, model="m")
    assert [(job.item_id, out.name) for job, out in todo] == [(1, "a_x2.png")]
    assert [(e.item_id, e.state) for e in ended] == [(2, S.SKIPPED)]
    assert ended[0].message.startswith("Left out: it is the output of another input")
    todo, ended = plan_jobs([Job(1, a), Job(2, earlier)], OutputOptions(overwrite=True), scale=2, model="m")
    assert [(job.item_id, out.name) for job, out in todo] == [(2, "a_x2_x2.png")], "dropped itself: kept"
    assert [(e.item_id, e.state) for e in ended] == [(1, S.FAILED)] and "would overwrite an input" in ended[0].message


def test_planning_refuses_clashes_skips_existing_and_fails_names_too_long(tmp_path):
    c_png, c_bmp = _photo(tmp_path / "c.png", 1), _photo(tmp_path / "c.bmp", 2)
    _photo(tmp_path / "out" / "e_x2.png", 3)
    e = _photo(tmp_path / "e.png", 4)
    long = tmp_path / ("n" * 250 + ".png")
    long.write_bytes(b"x")
    jobs = [Job(1, c_png), Job(2, c_bmp), Job(3, e), Job(4, long), Job(5, c_png)]
    todo, ended = plan_jobs(jobs, OutputOptions(folder=tmp_path / "out", format="png"), scale=2, model="m")
    assert [job.item_id for job, _ in todo] == [1]
    why = {e.item_id: (e.state, e.message) for e in ended}
    assert why[2][0] is S.FAILED and "already the output of" in why[2][1]
    assert why[3] == (S.SKIPPED, f"Skipped: {tmp_path / 'out' / 'e_x2.png'} exists (overwrite is off).")
    assert why[4][0] is S.FAILED and "bytes long" in why[4][1] and "rename the input" in why[4][1]
    assert why[5][0] is S.SKIPPED and "already in this run" in why[5][1]


def test_run_config_checks_the_suffix_before_any_work(tmp_path):
    with pytest.raises(OptionError, match="path separator"):
        RunConfig.from_settings(Settings(suffix="/../../x"))
    config = RunConfig.from_settings(Settings(model="HAT-S_SRx4", format="same", output_dir=str(tmp_path)))
    assert config.output == OutputOptions(folder=tmp_path, suffix="_x{scale}", format=None, overwrite=False)
    assert (config.model, config.from_file, config.scale) == ("HAT-S_SRx4", False, None)


def test_videos_are_planned_with_the_clis_container_rule_in_queue_order(tmp_path):
    """A video keeps its container when it can be written (else Matroska, WebM only for AV1); the image format
    setting is for images only; items stay in queue order."""
    names = ("a.png", "b.mp4", "c.avi", "d.webm", "e.jpg")
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    jobs = [Job(i + 1, tmp_path / name) for i, name in enumerate(names)]
    todo, ended = plan_jobs(jobs, OutputOptions(format="png"), scale=2, model="m", codec="x264")
    assert [out.name for _, out in todo] == ["a_x2.png", "b_x2.mp4", "c_x2.mkv", "d_x2.mkv", "e_x2.png"]
    assert ended == []
    todo, _ = plan_jobs(jobs[3:4], OutputOptions(), scale=2, model="m", codec="av1")
    assert [out.name for _, out in todo] == ["d_x2.webm"]


def test_run_config_takes_the_video_settings_and_refuses_bad_ones_before_any_work():
    config = RunConfig.from_settings(Settings(video_codec="x265", video_crf=22, video_preset="fast", video_chunk=60))
    assert (config.encoder.codec, config.encoder.crf, config.encoder.preset) == ("x265", 22, "fast")
    assert config.chunk_frames == 60
    default = RunConfig.from_settings(Settings(video_codec="ffv1", video_crf=22))
    assert default.encoder.codec == "ffv1" and default.encoder.crf is None, "a lossless codec takes no quality"
    with pytest.raises(OptionError, match="preset"):
        RunConfig.from_settings(Settings(video_codec="x264", video_preset="warp-speed"))


# --------------------------------------------------------------------------------------- the worker's events


def test_events_from_loading_to_done_through_the_real_engine(tmp_path):
    a = _photo(tmp_path / "in" / "a.png", 1, (16, 24))
    config = RunConfig(
        model=str(golden_weights()),
        from_file=True,
        engine=EngineOptions(device="cpu", tile=16),
        output=OutputOptions(tmp_path / "out"),
    )
    events = _run([Job(7, a)], config)
    steps = [(type(e).__name__, getattr(e, "state", None), getattr(e, "total", None)) for e in events]
    assert steps[0] == ("ItemUpdate", S.LOADING, 0), "progress from the first moment: the model is loading"
    chosen = next(e for e in events if isinstance(e, ModelChosen))
    assert (chosen.scale, chosen.device, chosen.label) == (2, "cpu", "weights")
    running = [e for e in events if isinstance(e, ItemUpdate) and e.state is S.RUNNING]
    assert running[0].total == 0 and running[-1].total == 2, "unknown amount until the first tile, then tiles"
    assert events.index(chosen) < events.index(running[0])
    done = _finished(events)[7]
    assert done.state is S.DONE and done.output == tmp_path / "out" / "a_x2.png" and done.seconds > 0
    assert np.asarray(Image.open(done.output)).shape == (32, 48, 3)


def test_the_memory_limit_setting_reaches_the_engines_tile(tmp_path):
    """The "Memory limit" setting is the engine's ``max_memory``: a limit below what the app already holds leaves
    the CPU's automatic tile its smallest (two 8-px windows), so a 32x48 photo runs in several tiles, where without
    a limit it runs whole; a limit that cannot be is refused before any work, in the panel's words."""
    a = _photo(tmp_path / "in" / "a.png", 1, (32, 48))
    base = Settings(weights_file=str(golden_weights()), use_weights_file=True, device="cpu")
    tiles = {}
    for gib in (0.0, 0.1):
        config = RunConfig.from_settings(replace(base, max_memory_gib=gib, output_dir=str(tmp_path / str(gib))))
        assert config.engine.max_memory == round(gib * (1 << 30))
        events = _run([Job(1, a)], config)
        assert _finished(events)[1].state is S.DONE
        tiles[gib] = max(e.total for e in events if isinstance(e, ItemUpdate) and e.state is S.RUNNING)
    assert tiles[0.0] == 1 and tiles[0.1] > 1, tiles
    with pytest.raises(OptionError) as caught:
        RunConfig.from_settings(replace(base, max_memory_gib=-1.0))
    assert app_worded(caught.value).startswith("the \u201cMemory limit\u201d setting must be 0 (no limit)")


def test_images_and_a_video_end_in_queue_order_and_an_images_warning_reaches_its_item(tmp_path):
    """Images go through the engine's image work around the video between them; a 16-bit image written as JPEG
    is done with the engine's warning on its item."""
    deep = tmp_path / "deep.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 65536, (8, 12), dtype=np.uint16)).save(deep)
    clip = make_clip(tmp_path / "clip.mkv", frames=2, width=16, height=12)
    plain = _photo(tmp_path / "plain.png", 4)
    events = _run([Job(1, deep), Job(2, clip.path), Job(3, plain)], _golden(tmp_path / "out", format="jpg"))
    finished = [e for e in events if isinstance(e, ItemFinished)]
    assert [(e.item_id, e.state) for e in finished] == [(1, S.DONE), (2, S.DONE), (3, S.DONE)]
    assert "holds only 8 bits per channel" in finished[0].message and finished[2].message == ""
    assert finished[0].output == tmp_path / "out" / "deep_x2.jpg" and finished[1].output.suffix == ".mkv"
    assert np.asarray(Image.open(finished[2].output)).shape == (16, 24, 3)


def test_the_engines_default_model_is_used_and_the_reason_reported(tmp_path):
    a = _photo(tmp_path / "a.png", 1)
    events = _run(
        [Job(1, a)], RunConfig(scale=2, engine=EngineOptions(device="cpu"), output=OutputOptions(tmp_path / "out"))
    )
    chosen = next(e for e in events if isinstance(e, ModelChosen))
    assert chosen.label == "hat-tiny-x2" and "bundled, works offline" in chosen.why
    assert _finished(events)[1].state is S.DONE


def test_an_unavailable_model_stops_the_run_with_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("HAT_PLUGIN_OFFLINE", "1")
    monkeypatch.setenv("HAT_PLUGIN_CACHE", str(tmp_path / "empty-cache"))
    a = _photo(tmp_path / "a.png", 1)
    events = _run([Job(1, a), Job(2, a)], RunConfig(model="HAT-S_SRx2", output=OutputOptions(tmp_path)))
    stopped = events[-1]
    assert isinstance(stopped, RunStopped) and stopped.model == "HAT-S_SRx2"
    assert stopped.reason == "HAT-S ×2 is not downloaded and offline mode is on (HAT_PLUGIN_OFFLINE)."
    assert "HAT_PLUGIN_OFFLINE" in stopped.details and "\n" not in stopped.reason
    assert not any(isinstance(e, ItemFinished) for e in events), "no item fails for a missing model"


def test_a_pipe_or_a_file_gone_fails_its_item_and_the_rest_goes_on(tmp_path):
    pipe = tmp_path / "x.png"
    os.mkfifo(pipe)
    good = _photo(tmp_path / "good.png", 2)
    events = _run([Job(1, pipe), Job(2, tmp_path / "gone.png"), Job(3, good)], _golden(tmp_path / "out"))
    finished = _finished(events)
    assert finished[1].state is S.FAILED and "not a regular file" in finished[1].message
    assert finished[2].state is S.FAILED and "file not found" in finished[2].message
    assert finished[3].state is S.DONE


def test_out_of_memory_fails_the_item_with_the_engines_text_and_the_queue_goes_on(tmp_path):
    """A model that runs out of memory above 8x8 inputs: the engine retries with smaller tiles, then gives up with
    its one out-of-memory text, shown as it comes; the small image after it is still upscaled."""
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "big.png")
    small = _photo(tmp_path / "small.png", 4, (8, 8))
    config = _golden(tmp_path / "out")
    engines = EngineCache()
    model = engines.get(golden_weights(), config).model
    forward = model.forward

    def limited(x):
        if x.shape[-1] * x.shape[-2] > 8 * 8:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
        return forward(x)

    model.forward = limited
    finished = _finished(_run([Job(1, tmp_path / "big.png"), Job(2, small)], config, engines))
    assert finished[1].state is S.FAILED and finished[1].message.startswith("out of memory on cpu")
    assert "smaller tile" in finished[1].message
    assert finished[2].state is S.DONE and (tmp_path / "out" / "small_x2.png").is_file()
    assert not (tmp_path / "out" / "big_x2.png").exists()


def test_cancel_before_the_model_is_loaded_loads_nothing_and_writes_nothing(tmp_path):
    a, b = _photo(tmp_path / "a.png", 1), _photo(tmp_path / "b.png", 2)
    cancel = threading.Event()
    cancel.set()
    events: list[object] = []
    engines = EngineCache()
    run_batch([Job(1, a), Job(2, b)], _golden(tmp_path / "out"), engines, events.append, cancel)
    assert [(e.item_id, e.state) for e in events if isinstance(e, ItemFinished)] == [(1, S.CANCELLED)]
    assert engines.loaded is None, "a cancelled run does not spend time loading the model"
    assert not (tmp_path / "out").exists()
    run = RunTracker(_items(2), Clock())
    run.cancelled = True
    for event in events:
        run.apply(event)
    run.end()
    assert [i.state for i in run.items] == [S.CANCELLED, S.QUEUED]


def test_error_messages_for_memory_and_disk_problems():
    assert "smaller tile" in describe_error(torch.OutOfMemoryError("CUDA out of memory"), "cuda:0", 256)
    assert "256px tiles" in describe_error(MemoryError(), "cpu", 256)
    full = OSError(28, "No space left on device", "/media/x/out.png")
    assert describe_error(full) == "Disk full while writing /media/x/out.png: free some space and retry."
    assert "choose another output folder" in describe_error(OSError(13, "Permission denied", "/srv/out"))
    assert describe_error(OptionError("the suffix 'x': lowercase as the engine says")).startswith("the suffix")


# --------------------------------------------------------------------------------------------- the tracker


class Clock:
    """A clock the test advances by hand, so estimates are exact."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _items(count: int, suffix: str = ".png") -> list[QueueItem]:
    return [QueueItem(id=i + 1, source=Path(f"/in/{i}{suffix}")) for i in range(count)]


def test_overall_progress_counts_finished_work_only():
    items = _items(3)
    run = RunTracker(items, Clock())
    run.apply(ItemUpdate(1, S.LOADING, "loading the model"))
    assert run.fraction() is None, "indeterminate while the model loads"
    run.apply(ItemUpdate(1, S.RUNNING, "working on the first tile"))
    assert run.fraction() is None, "indeterminate until the first tile"
    run.apply(ItemUpdate(1, S.RUNNING, "", 1, 4))
    assert run.fraction() == pytest.approx(0.25 / 3)
    run.apply(ItemFinished(1, S.DONE, output=Path("/out/0.png")))
    assert run.fraction() == pytest.approx(1 / 3)
    run.apply(ItemUpdate(2, S.RUNNING, "", 2, 4))
    run.apply(ItemFinished(2, S.FAILED, "not a readable image"))
    assert run.fraction() == pytest.approx(1 / 3), "a failure adds nothing"
    run.cancelled = True
    run.apply(ItemUpdate(3, S.RUNNING, "", 3, 4))
    run.apply(ItemFinished(3, S.CANCELLED, "Cancelled; no output was written."))
    assert run.fraction() == pytest.approx(1 / 3), "nor does a cancel"
    assert run.summary() == "Cancelled: 1 done, 1 failed, 1 cancelled"
    assert items[0].output == Path("/out/0.png") and items[1].message == "not a readable image"


def test_a_stopped_run_puts_the_item_back_and_counts_nothing():
    items = _items(2)
    run = RunTracker(items, Clock())
    run.apply(ItemUpdate(1, S.DOWNLOADING, "downloading HAT-S ×2", 10, 100))
    assert run.downloaded
    assert run.apply(RunStopped("HAT-S ×2 is not downloaded and this computer is offline.")) is None
    assert [i.state for i in items] == [S.QUEUED, S.QUEUED] and run.fraction() == 0.0
    assert run.summary() == "Stopped: 2 queued"
    assert run.apply(ItemUpdate(99, S.RUNNING)) is None, "events of items not in the run are ignored"


def test_an_item_left_busy_when_the_worker_ends_is_not_stuck():
    items = _items(2)
    run = RunTracker(items, Clock())
    run.apply(ItemUpdate(1, S.RUNNING, "", 1, 2))
    assert run.end() == [items[0]] and items[0].state is S.QUEUED
    run.apply(ItemUpdate(2, S.RUNNING, "", 1, 2))
    run.cancelled = True
    assert run.end() == [items[1]] and items[1].state is S.CANCELLED


def test_time_left_from_tiles_then_from_finished_items():
    clock = Clock()
    eta = TimeLeft(clock)
    assert eta.estimate(0, 0, waiting={"image": 3}) is None
    eta.start_item()
    clock.now += 2.0
    assert eta.estimate(1, 4, waiting={}) == pytest.approx(6.0)
    assert eta.estimate(1, 4, waiting={"image": 2}) == pytest.approx(6.0 + 2 * 8.0)
    clock.now += 6.0
    eta.finish_item(counted=True)
    eta.start_item()
    clock.now += 3.0
    assert eta.estimate(0, 0, waiting={"image": 1}) == pytest.approx(5.0 + 8.0)
    eta.finish_item(counted=False)
    assert eta.estimate(0, 0, waiting={"image": 2}) == pytest.approx(16.0)


def test_time_left_of_videos_counts_frames_after_a_resume_and_keeps_kinds_apart():
    """A resumed video's kept frames are not work of this run: the rate counts from the baseline. Images and videos
    are estimated from their own kind: one quick image says nothing about a video still to come."""
    clock = Clock()
    eta = TimeLeft(clock)
    eta.start_item("image")
    clock.now += 1.0
    eta.finish_item(counted=True, total=2)
    eta.start_item("video")
    clock.now += 4.0  # probing and indexing, before the baseline
    eta.rebase(40)  # 40 of 100 frames were kept from a cancelled run
    clock.now += 10.0
    assert eta.estimate(50, 100, waiting={"image": 1}) == pytest.approx(50.0 + 1.0)
    assert eta.estimate(50, 100, waiting={"video": 1}) == pytest.approx(50.0 + 100.0), "a whole video at this rate"
    clock.now += 50.0
    eta.finish_item(counted=True, total=100)
    assert eta.estimate(0, 0, waiting={"video": 2}) == pytest.approx(2 * 100.0), "counted as a whole video"
    fresh = TimeLeft(clock)
    fresh.start_item("image")
    clock.now += 1.0
    fresh.finish_item(counted=True)
    assert fresh.estimate(0, 0, waiting={"image": 1, "video": 1}) is None, "no video timed yet"


def test_the_tracker_estimates_from_the_running_item():
    clock = Clock()
    items = _items(2)
    run = RunTracker(items, clock)
    run.apply(ItemUpdate(1, S.LOADING))
    clock.now += 5.0  # loading the model does not count as image time
    run.apply(ItemUpdate(1, S.RUNNING, "", 0, 0))
    clock.now += 2.0
    run.apply(ItemUpdate(1, S.RUNNING, "", 1, 4))
    assert run.time_left() == pytest.approx(6.0 + 8.0)


def test_the_tracker_takes_a_resumed_videos_baseline():
    clock = Clock()
    items = _items(1, ".mkv")
    run = RunTracker(items, clock)
    run.apply(ItemUpdate(1, S.RUNNING, "reading the video"))
    clock.now += 3.0
    run.apply(ItemUpdate(1, S.RUNNING, "resuming: 1 of 3 chunks kept", 4, 12, baseline=4))
    assert run.fraction() == pytest.approx(4 / 12), "kept chunks are finished work"
    assert run.time_left() is None, "nothing measured in this run yet"
    clock.now += 2.0
    run.apply(ItemUpdate(1, S.RUNNING, "resuming: 1 of 3 chunks kept", 8, 12))
    assert run.time_left() == pytest.approx(2.0)


# ------------------------------------------------------------------------------------------------ notices


def test_notices_are_collected_per_thread(recwarn):
    """Warnings and engine log warnings of the worker's thread go to its item; a warning raised meanwhile on another
    thread goes to the handler that was there before (here pytest's recorder), not into the item's notes."""

    def elsewhere() -> None:
        warnings.warn("from the UI thread", UserWarning, stacklevel=1)

    with collect_notices() as notes:
        warnings.warn("16-bit output saved as 8-bit JPEG", UserWarning, stacklevel=1)
        warnings.warn("16-bit output saved as 8-bit JPEG", UserWarning, stacklevel=1)
        logging.getLogger("hat_plugin.engine").warning("out of memory: retrying with tile %d", 64)
        thread = threading.Thread(target=elsewhere)
        thread.start()
        thread.join(10)
    assert notes == ["16-bit output saved as 8-bit JPEG", "out of memory: retrying with tile 64"]
    assert [str(w.message) for w in recwarn] == ["from the UI thread"]
