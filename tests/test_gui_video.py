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
    RUN_TIMEOUT_MS,
    as_array,
    bar_text,
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
from gui.batch_run import RunConfig
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

    assert window.comparison.open(item.id)
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
    assert window.explainer.explanation.overlay.shape == (2 * HEIGHT, 2 * WIDTH, 4)
    assert compare.canvas.overlay is not None and compare.canvas.overlay.width() == 2 * WIDTH
    compare.next_frame_action.trigger()
    assert window.explainer.explanation is None, "another frame: the map is dropped"
    qtbot.waitUntil(lambda: compare.frame == FRAMES - 1, timeout=30_000)
    assert np.array_equal(as_array(compare.canvas.after), last)
    window.comparison.close()
    assert window.comparison.video is None


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


def test_cancel_before_the_first_chunk_says_how_far_it_got_and_that_nothing_is_kept(
    qtbot, window, tmp_path, monkeypatch
):
    monkeypatch.setattr(runner, "EMIT_INTERVAL_S", 0.0)
    clip = make_clip(tmp_path / "clip.mp4", frames=FRAMES, width=WIDTH, height=HEIGHT, codec="libx264")
    use_golden(window, tmp_path / "out", video_chunk=FRAMES)
    window.add_paths([clip.path])

    def after_a_frame(event) -> bool:  # on the worker thread, between frames
        return getattr(event, "state", None) is ItemState.RUNNING and getattr(event, "done", 0) >= 1

    cancel_during_run(qtbot, window, after_a_frame)
    [item] = window.queue.items
    assert item.state is ItemState.CANCELLED
    assert item.message.startswith("Cancelled after 1 of ") and f"first chunk of {FRAMES} frames" in item.message
    assert "nothing is kept" in item.message


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
    panel.deinterlace.setCurrentIndex(panel.deinterlace.findData("yadif"))
    panel.on_damage.setCurrentIndex(panel.on_damage.findData("stop"))
    window.close()
    again = make_window(qtbot, tmp_path, settings_store(tmp_path)).panel
    saved = again.settings()
    assert (saved.video_codec, saved.video_crf, saved.video_preset, saved.video_chunk) == ("x265", 24, "fast", 120)
    assert (saved.video_deinterlace, saved.video_on_damage) == ("yadif", "stop")
    config = RunConfig.from_settings(saved)
    assert (config.deinterlace, config.on_damage) == ("yadif", "stop")
    again.codec.setCurrentIndex(again.codec.findData("ffv1"))
    assert not again.crf.isEnabled() and again.crf.text() == "lossless" and not again.preset.isEnabled()
    assert again.settings().video_crf == -1


def test_estimate_times_a_few_frames_before_starting(qtbot, window, tmp_path):
    """Queue > Estimate video time upscales a few frames with the run's settings and says how long the whole
    video would take, before anything is started; nothing is written and the item stays queued."""
    clip = make_clip(tmp_path / "clip.mp4", frames=FRAMES, width=WIDTH, height=HEIGHT, codec="libx264")
    out = tmp_path / "out"
    use_golden(window, out)
    window.add_paths([clip.path])
    assert not window.estimate_action.isEnabled(), "nothing selected"
    window.view.selectRow(0)
    assert window.estimate_action.isEnabled()
    window.estimate_action.trigger()
    qtbot.waitUntil(lambda: "about" in bar_text(window) or "Cannot" in bar_text(window), timeout=RUN_TIMEOUT_MS)
    text = bar_text(window)
    assert text.startswith("clip.mp4: about ") and "on this CPU" in text and f"({FRAMES} frames, " in text, text
    per_frame = float(text.split(" frames, ")[1].split(" s a frame")[0])
    assert 0 < per_frame < 60
    assert states(window) == [ItemState.QUEUED] and not out.exists(), "an estimate writes nothing"
    window.panel.set_settings(replace(window.panel.settings(), use_weights_file=False, model="HAT-S_SRx4"))
    window.estimate_action.trigger()
    qtbot.waitUntil(lambda: bar_text(window).startswith("Cannot do that"), timeout=RUN_TIMEOUT_MS)
    assert "not downloaded yet" in bar_text(window), "nothing is downloaded for an estimate"


@pytest.mark.slow
def test_preview_upscales_the_first_seconds_before_the_whole_video(qtbot, window, tmp_path):
    """Queue > Preview video writes the first 5 s upscaled with the run's settings, beside the outputs, and
    offers to open it; the queued item itself is not started."""
    clip = make_clip(tmp_path / "long.mp4", frames=140, width=WIDTH, height=HEIGHT, codec="libx264")  # 5.6 s
    out = tmp_path / "out"
    use_golden(window, out)
    window.add_paths([clip.path])
    window.view.selectRow(0)
    assert window.preview_action.isEnabled()
    window.preview_action.trigger()
    qtbot.waitUntil(lambda: "upscaled:" in bar_text(window) or "Cannot" in bar_text(window), timeout=RUN_TIMEOUT_MS)
    preview = out / "long_x2_preview-5s.mp4"
    assert bar_text(window) == f"The first 5 s of long.mp4 upscaled: {preview.name}."
    assert [b.text() for b in window.message_bar.buttons] == ["Open"]
    with FrameReader(preview) as result:
        assert result.frames == 125 and (result.info.width, result.info.height) == (2 * WIDTH, 2 * HEIGHT)
    assert states(window) == [ItemState.QUEUED], "the video itself waits for Start"
    assert not (out / "long_x2.mp4").exists()


def test_a_video_that_cannot_be_upscaled_fails_in_one_sentence_without_retry(qtbot, window, tmp_path):
    """A file named like a video that is none: the message names the file once and says why; Retry is not
    offered (running it again cannot end otherwise)."""
    bad = tmp_path / "holiday.mkv"
    bad.write_text("not a video\n" * 50)
    use_golden(window, tmp_path / "out")
    assert drop(window, file_mime(bad)) == (True, True)
    run(qtbot, window)
    [item] = window.queue.items
    assert item.state is ItemState.FAILED and not item.retry
    assert str(bad) not in item.message and "not a video file" in item.message
    assert not window.retry_action.isEnabled()
    window.queueing._on_double_click(window.table_model.index(0, 0))
    assert window.message_bar.text.text().count("holiday.mkv") == 1
    assert [button.text() for button in window.message_bar.buttons] == []
