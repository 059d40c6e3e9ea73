"""The desktop app's main window with real widgets under the offscreen platform: drops (pipes too), paste, real runs
with the golden tiny model, progress from the first moment, Cancel/Start/Retry, errors on items, the queue's
thumbnails, names and context menu, opening folders, Help > About, themes, layouts from 800x500 to 4K, closing
during a run, the queue restored at the next start, settings that survive a restart, and the entry points."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from gui_helpers import (
    GOLDEN,
    ROOT,
    RUN_TIMEOUT_MS,
    Blocker,
    answer_question,
    bar_text,
    cancel_during_run,
    combo_fits,
    drop,
    file_mime,
    make_window,
    run,
    settings_store,
    states,
    use_golden,
    write_png,
)
from PyQt6.QtCore import QObject, QSettings, Qt, QTimer, QUrl, pyqtSlot
from PyQt6.QtGui import QDesktopServices, QImage
from PyQt6.QtWidgets import QApplication

from gui.app import main
from gui.main_window import MainWindow
from gui.queue_model import ItemState
from gui.queue_view import BUSY, DETAILS, FILE, PROGRESS, PROGRESS_ROLE
from gui.settings import Settings
from hat_plugin import image_work, images


@pytest.fixture
def window(qtbot, tmp_path) -> MainWindow:
    return make_window(qtbot, tmp_path)


class UrlCatcher(QObject):
    """Stands in for the desktop: file URLs that the app asks to open are recorded instead."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[Path] = []

    @pyqtSlot(QUrl)
    def open(self, url: QUrl) -> None:
        self.urls.append(Path(url.toLocalFile()))


@pytest.fixture
def opened():
    catcher = UrlCatcher()
    QDesktopServices.setUrlHandler("file", catcher, "open")
    yield catcher.urls
    QDesktopServices.unsetUrlHandler("file")


# ------------------------------------------------------------------------------------------------ adding


def test_dropping_files_and_folders_adds_them_with_thumbnails(qtbot, window, tmp_path):
    a = tmp_path / "a.png"
    write_png(a, height=30, width=60)
    write_png(tmp_path / "album" / "one.png")
    write_png(tmp_path / "album" / "deep" / "two.png")
    assert drop(window, file_mime(a, tmp_path / "album")) == (True, True)
    names = sorted(item.source.name for item in window.queue.items)
    assert names == ["a.png", "one.png", "two.png"]
    assert window.table_model.rowCount() == 3
    assert window.pages.currentWidget() is window.view
    assert window.start_button.isEnabled()
    model = window.table_model
    qtbot.waitUntil(lambda: all(model.index(r, FILE).data(Qt.ItemDataRole.DecorationRole) for r in range(3)))
    icon = model.index(0, FILE).data(Qt.ItemDataRole.DecorationRole)
    picture = icon.pixmap(icon.availableSizes()[0]).toImage()
    assert picture.width() >= 40 and picture.height() >= 20 and picture.pixelColor(5, 5).alpha() == 255


def test_dropping_a_non_image_shows_a_message_and_adds_nothing(window, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    assert drop(window, file_mime(text)) == (True, True)
    assert len(window.queue) == 0
    assert window.message_bar.isVisible() and window.message_bar.kind == "error"
    assert "notes.txt" in bar_text(window) and "not an image" in bar_text(window)


def test_a_named_pipe_dropped_alone_or_in_a_folder_does_not_hang(window, tmp_path):
    album = tmp_path / "album"
    write_png(album / "real.png")
    os.mkfifo(album / "x.png")
    os.mkfifo(tmp_path / "x.png")
    started = time.monotonic()
    drop(window, file_mime(tmp_path / "x.png"))
    assert len(window.queue) == 0 and "not a regular file" in bar_text(window)
    drop(window, file_mime(album))
    assert [item.source.name for item in window.queue.items] == ["real.png"]
    assert "x.png (not a regular file" in bar_text(window)
    assert time.monotonic() - started < 5


def test_unchecking_subfolders_adds_only_the_top_folder(window, tmp_path):
    write_png(tmp_path / "album" / "one.png")
    write_png(tmp_path / "album" / "deep" / "two.png")
    window.panel.recursive.setChecked(False)
    window.add_paths([tmp_path / "album"])
    assert [item.source.name for item in window.queue.items] == ["one.png"]


def test_pasting_an_image_saves_it_and_queues_it(window, tmp_path):
    image = QImage(20, 10, QImage.Format.Format_RGB888)
    image.fill(Qt.GlobalColor.darkCyan)
    QApplication.clipboard().setImage(image)
    result = window.paste()
    assert result is not None and len(result.added) == 1
    saved = result.added[0].source
    assert saved.parent == tmp_path / "pasted" and saved.suffix == ".png"
    pixels = images.read_image(saved).pixels
    assert pixels.shape == (10, 20, 3)
    assert tuple(pixels[5, 5]) == (0, 128, 128)


def test_pasting_copied_files_queues_them(window, tmp_path):
    write_png(tmp_path / "b.png")
    QApplication.clipboard().setMimeData(file_mime(tmp_path / "b.png"))
    window.paste()
    assert [item.source.name for item in window.queue.items] == ["b.png"]


def test_repeated_names_show_their_folders(window, tmp_path):
    write_png(tmp_path / "2023" / "rose.png")
    write_png(tmp_path / "2024" / "rose.png", seed=1)
    write_png(tmp_path / "2024" / "tulip.png", seed=2)
    window.add_paths([tmp_path / "2023" / "rose.png", tmp_path / "2024"])
    shown = [window.table_model.index(r, FILE).data() for r in range(3)]
    assert shown == ["2023/rose.png", "2024/rose.png", "tulip.png"]
    tips = [window.table_model.index(r, FILE).data(Qt.ItemDataRole.ToolTipRole) for r in range(3)]
    assert tips[0] == str(tmp_path / "2023" / "rose.png")


# ----------------------------------------------------------------------------------------------- running


def test_a_run_shows_progress_from_the_first_moment_and_writes_the_outputs(qtbot, window, tmp_path):
    inputs = tmp_path / "in"
    first, second = inputs / "a.png", inputs / "b.png"
    write_png(first, seed=1)
    write_png(second, seed=2)
    out = tmp_path / "out"
    use_golden(window, out, tile=16)
    window.add_paths([first, second])
    seen: list[tuple] = []
    shown = set()

    def record(top, _bottom) -> None:
        item = window.table_model.item_at(top.row())
        bar = window.progress
        cell = window.table_model.index(top.row(), PROGRESS).data(PROGRESS_ROLE)
        seen.append((item.id, item.state, item.total, cell, bar.maximum()))
        shown.update((window.table_model.index(top.row(), DETAILS).data(), window.time_left.text()))

    window.table_model.dataChanged.connect(record)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(20)
    run(qtbot, window)
    timer.stop()
    assert states(window) == [ItemState.DONE, ItemState.DONE]
    a_id = window.queue.items[0].id
    first_seen = next(s for s in seen if s[0] == a_id and s[1] is not ItemState.QUEUED)
    assert first_seen[1:] == (ItemState.LOADING, 0, BUSY, 0), "loading the model: a busy cell and a busy bar"
    assert any(s[1:] == (ItemState.RUNNING, 0, BUSY, 0) for s in seen), "busy until the first tile"
    assert any(s[1] is ItemState.RUNNING and s[2] == 2 and s[3] == 50 for s in seen), "then tiles"
    for item, name in zip(window.queue.items, ("a_x2.png", "b_x2.png"), strict=True):
        assert item.output == out / name
        assert images.read_image(item.output).pixels.shape == (32, 48, 3)
    assert sorted(p.name for p in out.iterdir()) == ["a_x2.png", "b_x2.png"]
    assert "tile 1 of 2" in shown and "loading model…" in shown
    assert any(text.endswith(" s left") for text in shown if text), shown
    assert len(ticks) >= 2, "the UI thread kept running its event loop during the run"
    assert window.progress.value() == window.progress.maximum() and window.progress.text() == "2 of 2 done"
    assert window.statusBar().currentMessage() == "Finished: 2 done"


def test_cancel_stops_within_a_tile_then_start_runs_the_cancelled_image_again(qtbot, window, tmp_path):
    big, small = tmp_path / "big.png", tmp_path / "small.png"
    write_png(big, height=48, width=64)
    write_png(small)
    out = tmp_path / "out"
    use_golden(window, out, tile=16)
    window.add_paths([big, small])
    seen = []

    def after_a_tile(event) -> bool:  # runs on the worker thread
        if getattr(event, "done", 0) >= 1 and getattr(event, "state", None) is ItemState.RUNNING:
            seen.append((event.done, event.total))
            return True
        return False

    cancel_during_run(qtbot, window, after_a_tile)
    assert states(window) == [ItemState.CANCELLED, ItemState.QUEUED]
    first, total = seen[0]
    assert total > 10 and first == 1
    assert max(done for done, _ in seen) <= first + 1, "stopped within a tile"
    assert not out.exists() or list(out.iterdir()) == [], "no output and no temporary file left"
    assert "no output" in window.queue.items[0].message
    assert window.progress.value() == 0 and window.progress.text() == "0 of 2 done", "a cancel counts nothing"
    assert window.start_button.isEnabled() and not window.cancel_button.isEnabled()
    assert not window.retry_action.isEnabled(), "nothing failed"
    run(qtbot, window)
    assert states(window) == [ItemState.DONE, ItemState.DONE], "Start runs the cancelled image too"


def test_errors_show_on_the_item_and_the_queue_goes_on(qtbot, window, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"this is not a PNG")
    good = tmp_path / "good.png"
    write_png(good)
    use_golden(window, tmp_path / "out")
    window.add_paths([broken, good])
    run(qtbot, window)
    assert states(window) == [ItemState.FAILED, ItemState.DONE]
    assert "broken.png" in window.queue.items[0].message
    assert (tmp_path / "out" / "good_x2.png").is_file()
    assert window.retry_action.isEnabled()
    assert window.progress.value() == window.progress.maximum() // 2, "one of two finished: 50 %"
    assert window.statusBar().currentMessage() == "Finished: 1 done, 1 failed"


def test_a_file_name_of_250_characters_fails_its_item_and_the_rest_goes_on(qtbot, window, tmp_path):
    """Its output name would pass the 255 bytes file systems allow: that item fails with a clear message; a name
    of 250 characters in all still fits with the suffix, and the rest of the queue goes on."""
    too_long = tmp_path / ("a" * 250 + ".png")
    fits = tmp_path / ("b" * 246 + ".png")
    for seed, path in enumerate((too_long, fits, tmp_path / "short.png")):
        write_png(path, seed=seed)
    use_golden(window, None)
    window.add_paths([too_long, fits, tmp_path / "short.png"])
    run(qtbot, window)
    assert states(window) == [ItemState.FAILED, ItemState.DONE, ItemState.DONE], "nothing stuck queued"
    message = window.queue.items[0].message
    assert "257 bytes long" in message and "rename the input or use a shorter suffix" in message
    assert "Traceback" not in message and "\n" not in message
    assert (tmp_path / "short_x2.png").is_file() and (tmp_path / ("b" * 246 + "_x2.png")).is_file()


def test_unwritable_output_folder_fails_each_item_with_a_clear_reason(qtbot, window, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("in the way")
    write_png(tmp_path / "a.png")
    write_png(tmp_path / "b.png", seed=3)
    use_golden(window, blocker / "out")
    window.add_paths([tmp_path / "a.png", tmp_path / "b.png"])
    run(qtbot, window)
    assert states(window) == [ItemState.FAILED, ItemState.FAILED]
    assert all(
        item.message.startswith(f"Cannot create the output folder {blocker / 'out'}") for item in window.queue.items
    )
    assert all("choose another" in item.message for item in window.queue.items)
    assert window.progress.value() == 0, "nothing written: the bar stays empty"


def test_existing_output_is_skipped_unless_overwrite(qtbot, window, tmp_path):
    source = tmp_path / "a.png"
    write_png(source)
    existing = tmp_path / "a_x2.png"
    existing.write_bytes(b"keep me")
    use_golden(window, None)
    window.add_paths([source])
    run(qtbot, window)
    assert states(window) == [ItemState.SKIPPED]
    assert "exists (overwrite is off)" in window.queue.items[0].message
    assert existing.read_bytes() == b"keep me"
    window.panel.existing.setCurrentIndex(window.panel.existing.findData("overwrite"))
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        window.runs.retry([window.queue.items[0].id])
    assert states(window) == [ItemState.DONE]
    assert images.read_image(existing).pixels.shape == (32, 48, 3)


def test_an_output_that_would_replace_its_input_is_refused(qtbot, window, tmp_path):
    source = tmp_path / "a.png"
    write_png(source)
    original = source.read_bytes()
    use_golden(window, None, suffix="")
    window.add_paths([source])
    run(qtbot, window)
    assert states(window) == [ItemState.FAILED]
    assert "would overwrite an input" in window.queue.items[0].message
    assert source.read_bytes() == original


def test_problems_with_the_settings_are_reported_before_starting(window, tmp_path):
    write_png(tmp_path / "a.png")
    use_golden(window, None, weights_file=str(tmp_path / "nope.safetensors"))
    window.add_paths([tmp_path / "a.png"])
    assert not window.start()
    assert "nope.safetensors" in bar_text(window)
    use_golden(window, None, suffix="/../../x")
    assert not window.start()
    assert bar_text(window).startswith("Cannot start: the suffix '/../../x' contains a path separator")
    assert states(window) == [ItemState.QUEUED] and window.runs.task is None


# ------------------------------------------------------------------------------------ menus and folders


def test_context_menu_opens_shows_compares_retries_and_removes(qtbot, window, tmp_path, opened):
    write_png(tmp_path / "good.png")
    (tmp_path / "bad.png").write_bytes(b"not a PNG")
    out = tmp_path / "out"
    use_golden(window, out)
    window.add_paths([tmp_path / "good.png", tmp_path / "bad.png"])
    run(qtbot, window)
    rect = window.view.visualRect(window.table_model.index(0, DETAILS))
    window.view.customContextMenuRequested.emit(rect.center())
    menu = window.queueing.context_menu
    assert menu is not None and menu.isVisible()
    actions = {a.text(): a for a in menu.actions() if a.text()}
    assert list(actions) == ["Open", "Show in folder", "Compare", "Retry", "Remove"]
    assert [actions[t].isEnabled() for t in actions] == [True, True, True, False, True]
    actions["Open"].trigger()
    actions["Show in folder"].trigger()
    assert opened == [out / "good_x2.png", out]
    actions["Compare"].trigger()
    assert window.compare_dock.isVisible() and window.comparison.item == window.queue.items[0].id
    menu.close()
    failed = window.queueing.build_context_menu([window.queue.items[1].id])
    retry = next(a for a in failed.actions() if a.text() == "Retry")
    assert retry.isEnabled()
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        retry.trigger()
    assert states(window) == [ItemState.DONE, ItemState.FAILED]
    next(
        a for a in window.queueing.build_context_menu([window.queue.items[1].id]).actions() if a.text() == "Remove"
    ).trigger()
    assert [i.source.name for i in window.queue.items] == ["good.png"]


def test_open_output_folder(qtbot, window, tmp_path, opened):
    write_png(tmp_path / "a.png")
    window.add_paths([tmp_path / "a.png"])
    use_golden(window, tmp_path / "results")
    assert not window.queueing.open_output_folder(), "the chosen folder does not exist yet"
    assert "does not exist yet" in bar_text(window)
    run(qtbot, window)
    window.open_output_action.trigger()
    use_golden(window, None)
    window.open_output_action.trigger()
    assert opened == [tmp_path / "results", tmp_path / "results"], "beside the input: the last result's folder"


def test_help_about_names_the_versions_and_the_model_licence(qtbot, window):
    window.panel.models.select_model("hat-tiny-x2")
    dialog = window.show_about()
    qtbot.waitExposed(dialog)
    text = dialog.label.text()
    for needle in ("HAT Upscaler", "hat-plugin", "Python", "PyTorch", "Qt", "HAT-tiny ×2", "licence: Apache-2.0"):
        assert needle in text
    assert "XPixelGroup/HAT" in text
    dialog.reject()


# ------------------------------------------------------------------------------------- layout and themes


@pytest.mark.parametrize("size", [(800, 500), (1100, 660), (3840, 2160)])
def test_the_layout_holds_from_800x500_to_4k(qtbot, window, tmp_path, size):
    for name in ("a", "b"):
        write_png(tmp_path / f"{name}.png")
    window.add_paths([tmp_path / "a.png", tmp_path / "b.png"])
    window.queue.items[0].message = "a long message " * 20
    window.resize(*size)
    qtbot.waitUntil(lambda: window.width() == size[0])
    qtbot.wait(20)
    view = window.view
    header = view.horizontalHeader()
    widths = [header.sectionSize(c) for c in range(4)]
    assert sum(widths) <= view.viewport().width() + 1, "every column fits: no sideways scrolling"
    assert widths[FILE] >= 150 and widths[DETAILS] >= 150, f"names stay readable: {widths}"
    assert widths[PROGRESS] >= view.fontMetrics().horizontalAdvance("100%") + 16, widths
    scroll = window.settings_scroll
    assert window.panel.width() <= scroll.viewport().width(), "the settings panel is never wider than its box"
    assert combo_fits(window.panel.models.combo)
    button = window.start_button
    corner = button.mapTo(window, button.rect().bottomRight())
    assert window.rect().contains(corner), "Start stays on screen"
    if size[0] <= 800:
        queue_width = view.width()
        window.settings_action.trigger()
        qtbot.waitUntil(lambda: view.width() > queue_width + 200)  # hiding the settings gives the queue the room
        assert not window.settings_dock.isVisible()


def test_dark_and_light_themes(qtbot, window, tmp_path):
    write_png(tmp_path / "a.png")
    window.add_paths([tmp_path / "a.png"])

    def lightness() -> int:
        shot = window.grab().toImage()
        corner = window.view.viewport().mapTo(window, window.view.viewport().rect().bottomRight())
        ratio = shot.devicePixelRatio()
        return shot.pixelColor(int((corner.x() - 5) * ratio), int((corner.y() - 5) * ratio)).lightness()

    try:
        window.theme_actions["dark"].trigger()
        qtbot.wait(20)
        assert lightness() < 80
        assert window.store.value("ui/theme") == "dark"
        window.theme_actions["light"].trigger()
        qtbot.wait(20)
        assert lightness() > 200
    finally:
        window.set_theme("system", save=False)


# ------------------------------------------------------------------------------------- closing and restarting


def test_closing_during_a_run_asks_and_the_queue_comes_back_at_the_next_start(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path)
    write_png(tmp_path / "done.png")
    write_png(tmp_path / "later.png", seed=1)
    (tmp_path / "bad.png").write_bytes(b"not a PNG")
    use_golden(window, tmp_path / "out")
    window.add_paths([tmp_path / "done.png", tmp_path / "bad.png"])
    run(qtbot, window)
    window.add_paths([tmp_path / "later.png"])
    blocker = Blocker(window.runs.pool)
    assert window.start()
    asked: list[str] = []
    answer_question("Keep running", asked)
    window.close()
    assert asked == ["Files are being upscaled. Stop and quit?"] and window.isVisible() and window.running
    answer_question("Stop and quit", asked)
    blocker.released.set()
    window.close()
    assert len(asked) == 2 and not window.isVisible()
    again = make_window(qtbot, tmp_path, settings_store(tmp_path))
    restored = [(i.source.name, i.state, i.output) for i in again.queue.items]
    assert restored[:2] == [
        ("done.png", ItemState.DONE, tmp_path / "out" / "done_x2.png"),
        ("bad.png", ItemState.FAILED, None),
    ]
    # The blocked worker is let go just before the stop, so the tiny model may still finish later.png first; either
    # way it comes back in a state that says what happened, with its output only if it was written.
    name, state, output = restored[2]
    assert name == "later.png" and state in (ItemState.CANCELLED, ItemState.QUEUED, ItemState.DONE)
    assert (output is not None and output.is_file()) if state is ItemState.DONE else output is None
    assert "Restored the queue" in again.statusBar().currentMessage()
    assert again.comparison.open(again.queue.items[0].id), "a restored result can be compared"


def test_closing_never_waits_forever_for_a_stuck_worker(qtbot, tmp_path, monkeypatch):
    """A read that ignores cancel (like one stuck on a network drive) must not keep the window from closing."""
    window = make_window(qtbot, tmp_path)
    window.close_wait_ms = 300
    write_png(tmp_path / "a.png")
    use_golden(window, tmp_path / "out")
    window.add_paths([tmp_path / "a.png"])
    stuck = threading.Event()
    release = threading.Event()
    real_read = image_work.read_image  # where the app's images are read

    def slow_read(path, **options):
        stuck.set()
        release.wait(30)
        return real_read(path, **options)

    monkeypatch.setattr(image_work, "read_image", slow_read)
    assert window.start()
    qtbot.waitUntil(stuck.is_set, timeout=RUN_TIMEOUT_MS)
    answer_question("Stop and quit", [])
    started = time.monotonic()
    window.close()
    assert not window.isVisible() and time.monotonic() - started < 3
    assert window.queue.items[0].state is ItemState.CANCELLED, "saved as cancelled, not stuck running"
    release.set()
    qtbot.waitUntil(lambda: all(p.activeThreadCount() == 0 for p in (window.runs.pool,)), timeout=RUN_TIMEOUT_MS)
    assert not (tmp_path / "out" / "a_x2.png").exists()


def test_settings_survive_a_restart(qtbot, tmp_path):
    first = make_window(qtbot, tmp_path)
    panel = first.panel
    panel.models.select_model("\0weights-file")
    panel.models.file_edit.setText(str(GOLDEN))
    panel.models.file_edit.editingFinished.emit()
    panel.device.setCurrentIndex(panel.device.findData("cpu"))
    panel.precision.setCurrentIndex(panel.precision.findData("bf16"))
    panel.tile.setValue(128)
    panel.max_memory.setValue(3.5)
    panel.output_dir.setText(str(tmp_path / "results"))
    panel.output_dir.editingFinished.emit()
    panel.format.setCurrentIndex(panel.format.findData("webp"))
    panel.quality.setValue(80)
    panel.suffix.clear()
    qtbot.keyClicks(panel.suffix, "-big")
    qtbot.keyClick(panel.suffix, Qt.Key.Key_Return)
    panel.existing.setCurrentIndex(panel.existing.findData("overwrite"))
    panel.recursive.setChecked(False)
    chosen = panel.settings()
    first.close()

    second = make_window(qtbot, tmp_path, settings_store(tmp_path))
    assert second.panel.settings() == chosen
    assert chosen == Settings(
        model="",
        scale=chosen.scale,
        weights_file=str(GOLDEN),
        use_weights_file=True,
        device="cpu",
        precision="bf16",
        tile=128,
        max_memory_gib=3.5,
        output_dir=str(tmp_path / "results"),
        format="webp",
        quality=80,
        suffix="-big",
        overwrite=True,
        recursive=False,
    )
    second.panel.models.select_model("HAT-S_SRx4")
    third_store = settings_store(tmp_path)
    second.close()
    third = make_window(qtbot, tmp_path, third_store)
    assert (third.panel.settings().model, third.panel.models.shown_model) == ("HAT-S_SRx4", "HAT-S_SRx4")


# ------------------------------------------------------------------------------------------- entry points


def test_python_m_gui_help():
    done = subprocess.run(
        [sys.executable, "-m", "gui", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "hat-gui" in done.stdout and "--start" in done.stdout


def test_main_opens_the_window_with_the_given_files(qtbot, tmp_path):
    for fmt in (QSettings.Format.NativeFormat, QSettings.Format.IniFormat):
        QSettings.setPath(fmt, QSettings.Scope.UserScope, str(tmp_path / "config"))
    write_png(tmp_path / "a.png")
    found = []

    def close_it() -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        found.extend((w.windowTitle(), len(w.queue)) for w in windows)
        for w in windows:
            w.close()

    QTimer.singleShot(300, close_it)
    assert main([str(tmp_path / "a.png")]) == 0
    assert found == [("HAT Upscaler", 1)]
    assert (tmp_path / "config").exists(), "settings went to the redirected folder, not the user's"
