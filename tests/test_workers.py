"""The work runner in this process: one progress figure, results per unit, cancel, and image groups (a bad image
fails alone, each output is what the engine makes). The same calls on a Ray cluster: tests/test_image_ray.py and
tests/test_video_ray.py."""

from __future__ import annotations

import threading
from collections import namedtuple
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from hat_plugin.batch import Input, OutputOptions, Planned, plan_outputs
from hat_plugin.cli.base import EXIT_FAILED, Console
from hat_plugin.cli.runs import Tally
from hat_plugin.errors import Cancelled, ClusterError, ImageError
from hat_plugin.files import atomic_write, remove_temporaries
from hat_plugin.image_work import ImageWork, group_images, upscale_images
from hat_plugin.images import read_image
from hat_plugin.options import EngineOptions
from hat_plugin.workers import Events, Model, Progress, run_units

REPO = Path(__file__).resolve().parent.parent
PHOTO = REPO / "samples" / "astronaut.png"


Piece = namedtuple("Piece", "key size")  # a unit: its key and size


@dataclass(frozen=True)
class Counting:
    """A work that counts through each unit, recording how it was called."""

    calls: list[list[int]]

    def run(self, engine, units, events):
        self.calls.append([unit.key for unit in units])
        for unit in units:
            for step in range(1, unit.size + 1):
                if events.cancel is not None and events.cancel.is_set():
                    raise Cancelled("upscaling cancelled")
                events.report(unit, step)
            events.done(unit, unit.size * 10)
            events.report(unit, unit.size)  # a late report of a finished unit must not count twice


def test_local_units_run_in_one_call_with_one_rising_figure(engine):
    calls: list[list[int]] = []
    figures: list[int] = []
    results: list[tuple[int, int]] = []
    units = [Piece(0, 3), Piece(1, 2), Piece(2, 4)]
    model = Model(None, EngineOptions(device="cpu"), "tiny", engine)
    run_units(
        Counting(calls), units, model=model, progress=figures.append, on_done=lambda u, r: results.append((u.key, r))
    )
    assert calls == [[0, 1, 2]]  # a local run hands every unit over at once (a video: one pipeline)
    assert results == [(0, 30), (1, 20), (2, 40)]
    assert figures[-1] == 9 and figures == sorted(figures)


def test_a_cancelled_local_run_stops_and_keeps_what_finished(engine):
    stop = threading.Event()
    finished: list[int] = []

    def on_done(unit, result):
        finished.append(unit.key)
        stop.set()

    model = Model(None, EngineOptions(device="cpu"), "tiny", engine)
    with pytest.raises(Cancelled):
        run_units(Counting([]), [Piece(0, 2), Piece(1, 2)], model=model, on_done=on_done, cancel=stop)
    assert finished == [0]


def test_progress_counts_a_unit_once():
    seen: list[int] = []
    progress = Progress(seen.append)
    unit = Piece(7, 5)
    progress.report(unit, 3)
    progress.finish(unit)
    progress.report(unit, 5)
    progress.replace({7: 4, 8: 1})
    assert seen == [3, 5, 6]  # the late report of the finished unit changes nothing; 7 is done, 8 at 1


def photos(root: Path, count: int = 3) -> list[Path]:
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    with PILImage.open(PHOTO) as photo:
        for number in range(count):
            path = root / f"p{number}.png"
            photo.convert("RGB").crop((number * 50, 0, number * 50 + 40, 32)).save(path)
            paths.append(path)
    return paths


def test_a_bad_image_fails_alone_and_the_others_are_the_engines_output(tmp_path, engine):
    good = photos(tmp_path / "in")
    bad = tmp_path / "in" / "p1b.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"truncated" * 4)
    inputs = [Input(path, explicit=False) for path in sorted([*good, bad])]
    plan = plan_outputs(inputs, OutputOptions(folder=tmp_path / "out"), scale=2, model="tiny")
    outcomes = []
    figures: list[int] = []
    model = Model(None, EngineOptions(device="cpu"), "tiny", engine)
    upscale_images(plan.todo, ImageWork(max_pixels=0), None, model, on_outcome=outcomes.append, progress=figures.append)
    assert [(o.source.name, o.error is None) for o in outcomes] == [
        ("p0.png", True),
        ("p1.png", True),
        ("p1b.png", False),
        ("p2.png", True),
    ]
    assert isinstance(outcomes[2].error, ImageError) and "p1b.png" in str(outcomes[2].error)
    assert figures[-1] == 4
    for outcome in outcomes:
        if outcome.error is None:
            expected = engine.upscale(read_image(outcome.source).pixels)
            written = np.asarray(PILImage.open(outcome.output))
            assert np.array_equal(written, expected) and outcome.size == (expected.shape[1], expected.shape[0])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0_x2.png", "p1_x2.png", "p2_x2.png"]


def test_images_go_to_groups_in_plan_order(tmp_path):
    inputs = [Input(path) for path in photos(tmp_path, 5)]
    plan = plan_outputs(inputs, OutputOptions(), scale=2, model="tiny")
    groups = group_images(plan.todo, 2)
    assert [group.size for group in groups] == [2, 2, 1]
    assert [source for group in groups for source, _ in group.images] == [item.input.source for item in plan.todo]


def test_an_earlier_attempts_output_is_kept_only_when_asked(tmp_path, engine):
    """Planned while the output did not exist; then it appeared. Locally that is another writer (refused); in a
    cluster task run again, it is the earlier attempt's (kept)."""
    source = photos(tmp_path / "in", 1)[0]
    output = tmp_path / "p0_x2.png"
    todo = [Planned(Input(source), output)]
    output.write_bytes(b"from the earlier attempt")
    work = ImageWork(max_pixels=0)
    model = Model(None, EngineOptions(device="cpu"), "tiny", engine)
    outcomes = []
    upscale_images(todo, work, None, model, on_outcome=outcomes.append)
    assert outcomes[0].error is not None and "already exists" in str(outcomes[0].error)
    outcomes.clear()
    again = replace(work, earlier_outputs=True)
    again.run(engine, group_images(todo, 1), Events(lambda unit, done: None, lambda unit, done: outcomes.extend(done)))
    assert outcomes[0].earlier and outcomes[0].error is None
    assert output.read_bytes() == b"from the earlier attempt"


@dataclass(frozen=True)
class Losing:
    """A runner that loses every unit for good, as a cluster does once a task's retries are spent."""

    def run(self, work, units, model, hooks):
        for unit in units:
            hooks.on_failed(unit, ClusterError("a task failed on the cluster after 3 retries: its node died"))


def test_a_group_lost_for_good_is_handed_over_once_without_what_it_wrote(tmp_path):
    """Five images, three to a task, both tasks lost; the first task's earlier attempt wrote one output."""
    todo = [Planned(Input(path), tmp_path / "out" / f"{path.stem}_x2.png") for path in photos(tmp_path / "in", 5)]
    todo[1].output.parent.mkdir()
    todo[1].output.write_bytes(b"from the earlier attempt")
    model = Model(None, EngineOptions(device="cpu"), "tiny")
    outcomes, lost = [], []
    upscale_images(
        todo, ImageWork(), Losing(), model, on_outcome=outcomes.append, on_lost=lost.append, images_per_task=3
    )
    assert [(o.source.name, o.earlier) for o in outcomes] == [("p1.png", True)]
    assert [[o.source.name for o in group] for group in lost] == [["p0.png", "p2.png"], ["p3.png", "p4.png"]]
    assert all(isinstance(o.error, ClusterError) and o.size is None for group in lost for o in group)

    one_by_one = []
    upscale_images(todo, ImageWork(), Losing(), model, on_outcome=one_by_one.append, images_per_task=3)
    assert [o.source.name for o in one_by_one if o.error is not None] == ["p0.png", "p2.png", "p3.png", "p4.png"]


def test_the_command_line_says_a_lost_group_once_and_counts_each_image(tmp_path, capsys):
    tally = Tally(Console())
    sources = [tmp_path / f"p{number}.png" for number in range(16)]
    tally.inputs_failed(sources, ClusterError("this worker runs hat-plugin 1.0, the driver 1.1: install the same"))
    tally.inputs_failed(sources[:1], ClusterError("a task failed on the cluster after 3 retries: its node died"))
    assert tally.finish() == EXIT_FAILED
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: 16 images failed ({sources[0]}, {sources[1]}, {sources[2]} and 13 more): this worker runs "
        "hat-plugin 1.0, the driver 1.1: install the same",
        f"error: {sources[0]}: a task failed on the cluster after 3 retries: its node died",
    ]
    assert len(tally.failed) == 17


def test_temporaries_of_killed_writers_are_removed_and_nothing_else(tmp_path):
    out = tmp_path / "a_x2.png"
    left = [tmp_path / ".a_x2.png.0123abcd.tmp", tmp_path / ".a_x2.png.ffffffff.tmp"]
    kept = [tmp_path / ".b_x2.png.0123abcd.tmp", tmp_path / ".a_x2.png.notatoken.tmp", tmp_path / "a_x2.png.tmp"]
    for path in left + kept:
        path.write_bytes(b"x")
    atomic_write(out, b"done")
    assert remove_temporaries([out]) == 2
    assert not any(path.exists() for path in left) and all(path.exists() for path in kept) and out.exists()
