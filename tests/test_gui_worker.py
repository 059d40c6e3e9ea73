"""The one worker base (superqt style) with real Qt signals: events are objects delivered on the UI thread in
order, an escaping exception becomes ``errored``, ``finished`` always comes last, cancel reaches the work, and a
worker stuck past a close is left behind without blocking."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading
import time
from dataclasses import dataclass

from gui_helpers import GOLDEN, write_png
from PyQt6.QtCore import QSize, QThread, QThreadPool

from gui.batch_run import ItemFinished, ItemUpdate, Job, ModelChosen, RunConfig
from gui.queue_model import ItemState
from gui.runner import EngineCache
from gui.worker import Thumbnail, ThumbnailTask, UpscaleTask, Worker, has_abandoned, wait_or_abandon
from hat_plugin.batch import OutputOptions
from hat_plugin.options import EngineOptions


@dataclass(frozen=True)
class Tick:
    n: int
    thread: object


class Counting(Worker):
    def __init__(self, fail: bool = False, hold: threading.Event | None = None) -> None:
        super().__init__()
        self.fail = fail
        self.hold = hold

    def work(self, emit, cancel) -> None:
        for n in range(3):
            emit(Tick(n, QThread.currentThread()))
        if self.hold is not None:
            self.hold.wait(30)  # ignores cancel, like a read stuck on a pipe
        if self.fail:
            raise RuntimeError("a bug")


def test_events_are_objects_delivered_in_order_then_finished(qtbot) -> None:
    pool = QThreadPool()
    task = Counting()
    got: list[Tick] = []
    task.signals.reported.connect(got.append)
    with qtbot.waitSignals([task.signals.reported] * 3 + [task.signals.finished], order="strict", timeout=10_000):
        pool.start(task)
    assert [t.n for t in got] == [0, 1, 2]
    assert all(t.thread is not QThread.currentThread() for t in got), "the work ran on the pool thread"
    pool.waitForDone()


def test_an_exception_in_the_work_is_errored_not_lost(qtbot, capsys) -> None:
    pool = QThreadPool()
    task = Counting(fail=True)
    with qtbot.waitSignals([task.signals.errored, task.signals.finished], order="strict", timeout=10_000) as got:
        pool.start(task)
    assert isinstance(got.all_signals_and_args[0].args[0], RuntimeError)
    assert "a bug" in capsys.readouterr().err
    pool.waitForDone()


def test_the_upscale_task_reports_batch_run_events(qtbot, tmp_path) -> None:
    write_png(tmp_path / "a.png")
    config = RunConfig(
        model=str(GOLDEN), from_file=True, engine=EngineOptions(device="cpu"), output=OutputOptions(tmp_path / "out")
    )
    task = UpscaleTask([Job(1, tmp_path / "a.png")], config, EngineCache())
    events: list[object] = []
    task.signals.reported.connect(events.append)
    pool = QThreadPool()
    with qtbot.waitSignal(task.signals.finished, timeout=60_000):
        pool.start(task)
    kinds = [type(e) for e in events]
    assert kinds[0] is ItemUpdate and ModelChosen in kinds and kinds[-1] is ItemFinished
    assert isinstance(events[-1], ItemFinished) and events[-1].state is ItemState.DONE
    assert (tmp_path / "out" / "a_x2.png").is_file()


def test_thumbnails_are_made_off_the_ui_thread_and_a_pipe_is_never_opened(qtbot, tmp_path) -> None:
    write_png(tmp_path / "a.png", height=60, width=90)
    os.mkfifo(tmp_path / "pipe.png")
    task = ThumbnailTask([tmp_path / "pipe.png", tmp_path / "a.png", tmp_path / "missing.png"], QSize(40, 30))
    got: list[Thumbnail] = []
    task.signals.reported.connect(got.append)
    pool = QThreadPool()
    with qtbot.waitSignal(task.signals.finished, timeout=10_000):
        pool.start(task)
    sizes = {t.path.name: (t.image.width(), t.image.height()) for t in got}
    assert sizes == {"pipe.png": (0, 0), "a.png": (40, 26), "missing.png": (0, 0)}


def test_a_stuck_worker_is_left_behind_without_waiting_and_reaches_nothing(qtbot) -> None:
    hold = threading.Event()
    pool = QThreadPool()
    task = Counting(hold=hold)
    late: list[object] = []
    with qtbot.waitSignals([task.signals.reported] * 3, timeout=10_000):
        pool.start(task)
    task.signals.finished.connect(lambda: late.append("finished"))
    started = time.monotonic()
    assert not wait_or_abandon(pool, [task], 200)
    assert time.monotonic() - started < 2.0
    assert task.cancelled and has_abandoned()
    hold.set()
    qtbot.waitUntil(lambda: pool.activeThreadCount() == 0, timeout=10_000)
    qtbot.wait(100)
    assert late == [], "a detached worker's signals reach no slot"
    assert not has_abandoned(), "once the left-behind work ends, nothing holds the process"
