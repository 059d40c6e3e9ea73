"""Videos in the desktop app, with real widgets under the offscreen platform and the golden tiny x2 model: a
dropped video runs with frame progress to a whole output, a cancelled one keeps its finished chunks and the next
Start continues from them, the compare view shows source frame k beside output frame k (and explains it), and the
Video settings fit the codec."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from dataclasses import replace

import numpy as np
import pytest
from gui_helpers import (
    as_array,
    cancel_during_run,
    click_output,
    drop,
    file_mime,
    make_window,
    run,
    settings_store,
    states,
    use_golden,
)
from video_helpers import make_clip

from gui import runner
from gui.main_window import MainWindow
from gui.queue_model import ItemState
from gui.queue_view import DETAILS
from hat_plugin.video import WORK_SUFFIX, FrameReader

FRAMES, WIDTH, HEIGHT = 6, 32, 24


@pytest.fixture
def window(qtbot, tmp_path) -> MainWindow:
    return make_window(qtbot, tmp_path)


def test_a_dropped_video_runs_with_frame_progress_and_its_frames_are_compared(qtbot, window, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "EMIT_INTERVAL_S", 0.0)
    clip = make_clip(tmp_path / "clip.mkv", frames=FRAMES, width=WIDTH, height=HEIGHT)
    out = tmp_path / "out"
    use_golden(window, out, video_chunk=4)
    assert drop(window, file_mime(clip.path)) == (True, True)
    [item] = window.queue.items
    assert item.is_video and window.panel.video_box.isVisibleTo(window.panel), "the Video settings show"
    details: list[str] = []
    window.table_model.dataChanged.connect(
        lambda *_: details.append(str(window.table_model.data(window.table_model.index(0, DETAILS))))
    )
    run(qtbot, window)
    assert states(window) == [ItemState.DONE]
    target = out / "clip_x2.mkv"
    assert item.output == target and target.is_file()
    assert not target.with_name(target.name + WORK_SUFFIX).exists(), "the chunks are removed once joined"
    with FrameReader(target) as result:
        assert result.frames == FRAMES
        assert (result.info.width, result.info.height) == (2 * WIDTH, 2 * HEIGHT)
        last = result.read(FRAMES - 1)
    assert any(f"frame {n} of {FRAMES}" in text for text in details for n in range(1, FRAMES)), details
    assert window.progress.text() == "1 of 1 done"

    assert window.open_compare(item.id)
    compare = window.compare
    assert compare.frame_bar.isVisibleTo(compare)
    qtbot.waitUntil(lambda: compare.frame >= 0, timeout=30_000)
    assert compare.frames == FRAMES and compare.frame == FRAMES // 10
    assert compare.canvas.before.size().width() == WIDTH and compare.canvas.after.size().width() == 2 * WIDTH
    compare.frame_slider.setValue(FRAMES - 1)
    qtbot.waitUntil(lambda: compare.frame == FRAMES - 1, timeout=30_000)
    assert np.array_equal(as_array(compare.canvas.after), last), "output frame k is shown"
    with FrameReader(clip.path) as source:
        assert np.array_equal(as_array(compare.canvas.before), source.read(FRAMES - 1)), "beside source frame k"
    assert not compare.next_frame_action.isEnabled() and compare.previous_frame_action.isEnabled()
    compare.previous_frame_action.trigger()
    qtbot.waitUntil(lambda: compare.frame == FRAMES - 2, timeout=30_000)
    assert f"frame {FRAMES - 2}" in compare.frame_label.text()

    compare.canvas.set_split(1.0)
    compare.explain_action.trigger()  # Explain works on the frame shown
    compare.explain_bar.steps.setValue(2)
    compare.explain_bar.window_size.setValue(8)
    click_output(qtbot, window, 2 * WIDTH // 2, 2 * HEIGHT // 2)
    qtbot.waitUntil(lambda: window.explainer.explanation is not None, timeout=30_000)
    assert window.explainer.explanation.heat.shape == (2 * HEIGHT, 2 * WIDTH, 3)
    assert np.array_equal(as_array(compare.canvas.before), window.explainer.explanation.heat)
    compare.next_frame_action.trigger()
    assert window.explainer.explanation is None, "another frame: the map is dropped"
    qtbot.waitUntil(lambda: compare.frame == FRAMES - 1, timeout=30_000)
    assert np.array_equal(as_array(compare.canvas.after), last)
    window.close_compare()
    assert window.compared_video is None


def test_cancel_keeps_the_finished_chunks_and_start_continues_from_them(qtbot, window, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "EMIT_INTERVAL_S", 0.0)
    clip = make_clip(tmp_path / "clip.mp4", frames=FRAMES, width=WIDTH, height=HEIGHT, codec="libx264")
    out = tmp_path / "out"
    use_golden(window, out, video_chunk=2)
    window.add_paths([clip.path])
    target = out / "clip_x2.mp4"
    work = target.with_name(target.name + WORK_SUFFIX)
    first_chunk = work / "chunk-000000.mkv"
    seen: list[int] = []

    def after_a_chunk(event) -> bool:  # on the worker thread, between frames
        if getattr(event, "state", None) is ItemState.RUNNING and getattr(event, "total", None):
            seen.append(event.done)
            return first_chunk.is_file()
        return False

    cancel_during_run(qtbot, window, after_a_chunk)
    [item] = window.queue.items
    assert item.state is ItemState.CANCELLED, item.message
    assert "chunks are kept" in item.message and "Start continues" in item.message
    assert not target.exists(), "no output yet"
    kept = sorted(p.name for p in work.glob("chunk-*.mkv"))
    assert kept and len(kept) < FRAMES // 2, kept
    assert max(seen) < FRAMES

    run(qtbot, window)
    assert states(window) == [ItemState.DONE]
    assert f"{len(kept)} of {FRAMES // 2} chunks reused" in item.message
    with FrameReader(target) as result:
        assert result.frames == FRAMES and (result.info.width, result.info.height) == (2 * WIDTH, 2 * HEIGHT)
    assert not work.exists()


def test_the_video_settings_fit_the_codec_and_survive_a_restart(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path)
    panel = window.panel
    assert not panel.video_box.isVisibleTo(panel), "hidden while the queue holds no video"
    panel.set_settings(replace(panel.settings(), video_codec="x265", video_crf=20, video_preset="fast"))
    assert (panel.crf.minimum(), panel.crf.maximum(), panel.crf.value()) == (-1, 51, 20)
    assert panel.preset.currentData() == "fast" and panel.preset.isEnabled()
    panel.crf.setValue(panel.crf.minimum())
    assert panel.crf.text() == "default (18)" and panel.settings().video_crf == -1
    panel.crf.setValue(24)
    panel.chunk.setValue(120)
    window.close()
    again = make_window(qtbot, tmp_path, settings_store(tmp_path)).panel
    saved = again.settings()
    assert (saved.video_codec, saved.video_crf, saved.video_preset, saved.video_chunk) == ("x265", 24, "fast", 120)
    again.codec.setCurrentIndex(again.codec.findData("ffv1"))
    assert not again.crf.isEnabled() and again.crf.text() == "lossless" and not again.preset.isEnabled()
    assert again.settings().video_crf == -1
