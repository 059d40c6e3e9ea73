"""Stopping with real widgets: an image is either finished and marked done, or discarded with no file, also when
the window closes mid-run, and a restart shows which; cancelled and failed rows carry different marks; the overall
bar speaks of the next batch once files are queued."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading
import time

import numpy as np
import pytest
from gui_helpers import (
    RUN_TIMEOUT_MS,
    answer_question,
    as_array,
    bar_text,
    cancel_during_run,
    make_window,
    run,
    settings_store,
    states,
    use_golden,
    write_png,
)
from PyQt6.QtCore import Qt

from gui.queue_model import ItemState
from gui.queue_view import STATE
from hat_plugin import image_work


def test_cancel_after_the_last_tile_discards_the_image(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path)
    write_png(tmp_path / "a.png", height=48, width=64)
    use_golden(window, tmp_path / "out", tile=16)
    window.add_paths([tmp_path / "a.png"])

    def last_tile(event) -> bool:  # on the worker thread: the upscale has nothing left to check cancel at
        total = getattr(event, "total", 0)
        return total > 1 and getattr(event, "done", 0) == total

    cancel_during_run(qtbot, window, last_tile)
    item = window.queue.items[0]
    assert item.state is ItemState.CANCELLED and item.output is None
    assert "no output was written" in item.message
    out = tmp_path / "out"
    assert not out.exists() or list(out.iterdir()) == [], "no file, not even a temporary one"


def test_stop_and_quit_while_writing_keeps_the_image_done_and_a_restart_shows_it(qtbot, tmp_path, monkeypatch):
    window = make_window(qtbot, tmp_path)
    write_png(tmp_path / "a.png")
    use_golden(window, tmp_path / "out")
    window.add_paths([tmp_path / "a.png"])
    writing = threading.Event()
    real_write = image_work.write_image  # where the app's images are written

    def slow_write(*args, **kwargs):
        writing.set()
        time.sleep(0.5)  # the close arrives while the file is written
        return real_write(*args, **kwargs)

    monkeypatch.setattr(image_work, "write_image", slow_write)
    assert window.start()
    qtbot.waitUntil(writing.is_set, timeout=RUN_TIMEOUT_MS)
    answer_question("Stop and quit", [])
    window.close()
    assert not window.isVisible()
    output = tmp_path / "out" / "a_x2.png"
    assert output.is_file()
    assert window.queue.items[0].state is ItemState.DONE, "the file was written, so the row says done"

    again = make_window(qtbot, tmp_path, settings_store(tmp_path))
    restored = again.queue.items[0]
    assert (restored.state, restored.output) == (ItemState.DONE, output)
    assert not again.start() and bar_text(again).startswith("Nothing to process"), "not 'Skipped: exists'"


def test_cancelled_and_failed_rows_have_different_marks(window_pair):
    window, cancelled, failed = window_pair
    model = window.table_model
    marks = {}
    for item in (cancelled, failed):
        icon = model.data(model.index(window.queue.row_of(item.id), STATE), Qt.ItemDataRole.DecorationRole)
        marks[item.state] = as_array(icon.pixmap(32, 32).toImage()).astype(int)
    assert not np.array_equal(marks[ItemState.CANCELLED], marks[ItemState.FAILED])

    def redness(pixels: np.ndarray) -> float:
        coloured = pixels[pixels.sum(axis=-1) > 0]
        return float((coloured[:, 0] - coloured[:, 1:].mean(axis=-1)).mean())

    assert redness(marks[ItemState.FAILED]) > 40 > redness(marks[ItemState.CANCELLED]), "only failures are red"


def test_the_overall_bar_resets_when_a_new_batch_is_queued(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path)
    write_png(tmp_path / "a.png")
    write_png(tmp_path / "b.png", seed=1)
    use_golden(window, tmp_path / "out")
    window.add_paths([tmp_path / "a.png"])
    run(qtbot, window)
    assert window.progress.text() == "1 of 1 done" and window.progress.value() == window.progress.maximum()
    window.add_paths([tmp_path / "b.png"])
    assert window.progress.text() == "1 image to do" and window.progress.value() == 0
    run(qtbot, window)
    assert window.progress.text() == "1 of 1 done", "the second run counts its own batch"
    assert states(window) == [ItemState.DONE, ItemState.DONE]


@pytest.fixture
def window_pair(qtbot, tmp_path):
    """A window with one cancelled and one failed row (a bad file), both from real runs."""
    window = make_window(qtbot, tmp_path)
    write_png(tmp_path / "big.png", height=48, width=64)
    (tmp_path / "bad.png").write_bytes(b"not a PNG")
    use_golden(window, tmp_path / "out", tile=16)
    window.add_paths([tmp_path / "bad.png", tmp_path / "big.png"])
    cancel_during_run(qtbot, window, lambda event: getattr(event, "done", 0) >= 1)
    failed, cancelled = window.queue.items
    assert (failed.state, cancelled.state) == (ItemState.FAILED, ItemState.CANCELLED)
    return window, cancelled, failed
