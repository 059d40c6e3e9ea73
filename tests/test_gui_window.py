"""The desktop app's main window with real widgets under the offscreen platform: drops, paste, a real run with the
golden tiny model, cancel, errors on items, settings that survive a restart, entry points, and screenshots."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from gui_helpers import GOLDEN, ROOT, RUN_TIMEOUT_MS, make_window, run, settings_store, states, use_golden, write_png
from PIL import Image
from PyQt6.QtCore import QMimeData, QPoint, QRunnable, QSettings, Qt, QThreadPool, QTimer, QUrl
from PyQt6.QtGui import QColor, QDragEnterEvent, QDropEvent, QImage, QPalette
from PyQt6.QtWidgets import QApplication

from gui.app import main
from gui.main_window import MainWindow
from gui.queue_model import ItemState
from gui.queue_view import DETAILS
from gui.settings import Settings
from gui.worker import describe_error
from hat_plugin import images

# Screenshots for a reviewer land in out/screenshots (ignored by git); HAT_PLUGIN_SCREENSHOTS=docs/screenshots
# refreshes the committed ones.
SCREENSHOTS = ROOT / os.environ.get("HAT_PLUGIN_SCREENSHOTS", "out/screenshots")


@pytest.fixture
def window(qtbot, tmp_path) -> MainWindow:
    return make_window(qtbot, tmp_path)


def drop(win: MainWindow, mime: QMimeData) -> tuple[bool, bool]:
    """Send a real drag-enter and drop of ``mime`` to the window; returns whether each was accepted."""
    point = win.rect().center()
    enter = QDragEnterEvent(
        point, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(win, enter)
    dropped = QDropEvent(
        point.toPointF(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    )
    QApplication.sendEvent(win, dropped)
    return enter.isAccepted(), dropped.isAccepted()


def file_mime(*paths: Path) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


# ------------------------------------------------------------------------------------------------ adding


def test_dropping_files_and_folders_adds_them(window, tmp_path):
    a = tmp_path / "a.png"
    write_png(a)
    write_png(tmp_path / "album" / "one.png")
    write_png(tmp_path / "album" / "deep" / "two.png")
    assert drop(window, file_mime(a, tmp_path / "album")) == (True, True)
    names = sorted(item.source.name for item in window.queue.items)
    assert names == ["a.png", "one.png", "two.png"]
    assert window.table_model.rowCount() == 3
    assert window.pages.currentWidget() is window.view
    assert window.start_button.isEnabled()


def test_dropping_a_non_image_shows_a_message_and_adds_nothing(window, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    assert drop(window, file_mime(text)) == (True, True)
    assert len(window.queue) == 0
    assert window.message_bar.isVisible()
    assert window.message_bar.kind == "error"
    assert "notes.txt" in window.message_bar.text.text()
    assert "not an image" in window.message_bar.text.text()


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


# ----------------------------------------------------------------------------------------------- running


def test_run_two_images_produces_outputs_and_states(qtbot, window, tmp_path):
    inputs = tmp_path / "in"
    first, second = inputs / "a.png", inputs / "b.png"
    write_png(first, seed=1)
    write_png(second, seed=2)
    out = tmp_path / "out"
    use_golden(window, out, tile=16)
    window.add_paths([first, second])
    seen: dict[int, set] = {}
    shown = set()

    def record(top, _bottom) -> None:
        item = window.table_model.item_at(top.row())
        seen.setdefault(item.id, set()).add((item.state, item.total))
        shown.update((window.table_model.index(top.row(), DETAILS).data(), window.time_left.text()))

    window.table_model.dataChanged.connect(record)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(20)
    run(qtbot, window)
    timer.stop()
    assert states(window) == [ItemState.DONE, ItemState.DONE]
    for item, name in zip(window.queue.items, ("a_x2.png", "b_x2.png"), strict=True):
        assert item.output == out / name
        assert images.read_image(item.output).pixels.shape == (32, 48, 3)
        assert (ItemState.RUNNING, 2) in seen[item.id]  # tile progress: 2 tiles of 16 px
    assert sorted(p.name for p in out.iterdir()) == ["a_x2.png", "b_x2.png"]
    assert "tile 1 of 2" in shown
    assert any(text.endswith(" s left") for text in shown if text), shown
    assert len(ticks) >= 2, "the UI thread kept running its event loop during the run"
    assert window.progress.value() == window.progress.maximum()
    assert "2 done" in window.statusBar().currentMessage()


class Blocker(QRunnable):
    """Occupies the window's one worker thread until released, so a test can attach hooks before a task runs."""

    def __init__(self, pool: QThreadPool) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.released = threading.Event()
        pool.start(self)

    def run(self) -> None:
        self.released.wait(30)


def test_cancel_mid_run_stops_within_a_tile_and_writes_nothing(qtbot, window, tmp_path):
    big, small = tmp_path / "big.png", tmp_path / "small.png"
    write_png(big, height=48, width=64)
    write_png(small)
    out = tmp_path / "out"
    use_golden(window, out, tile=16)
    window.add_paths([big, small])
    blocker = Blocker(window.pool)
    assert window.start()
    task = window.task
    seen = []

    def on_progress(_item_id: int, done: int, total: int) -> None:  # runs on the worker thread
        seen.append((done, total))
        if done >= 1:
            task.cancel()

    task.signals.progress.connect(on_progress, Qt.ConnectionType.DirectConnection)
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        blocker.released.set()
    assert states(window) == [ItemState.CANCELLED, ItemState.QUEUED]
    first, total = seen[0]
    assert total > 10 and first == 1
    assert max(done for done, _ in seen) <= first + 1, "stopped within a tile"
    assert not out.exists() or list(out.iterdir()) == [], "no output and no temporary file left"
    assert "no output" in window.queue.items[0].message
    assert window.start_button.isEnabled() and not window.cancel_button.isEnabled()


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
    assert re.search(r"not (a readable image|an image)", window.queue.items[0].message)
    assert (tmp_path / "out" / "good_x2.png").is_file()
    assert window.retry_action.isEnabled()


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


def test_existing_output_is_skipped_unless_overwrite(qtbot, window, tmp_path):
    source = tmp_path / "a.png"
    write_png(source)
    existing = tmp_path / "a_x2.png"
    existing.write_bytes(b"keep me")
    use_golden(window, None)
    window.add_paths([source])
    run(qtbot, window)
    assert states(window) == [ItemState.SKIPPED]
    assert existing.read_bytes() == b"keep me"
    window.queue.items[0].state = ItemState.FAILED
    window.panel.existing.setCurrentIndex(window.panel.existing.findData("overwrite"))
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        window.retry_failed()
    assert states(window) == [ItemState.DONE]
    assert images.read_image(existing).pixels.shape == (32, 48, 3)


def test_an_output_that_would_replace_its_input_is_refused(qtbot, window, tmp_path):
    source = tmp_path / "a.png"
    original = source.read_bytes() if write_png(source) is not None else b""
    use_golden(window, None, suffix="")
    window.add_paths([source])
    run(qtbot, window)
    assert states(window) == [ItemState.FAILED]
    assert "would replace the input" in window.queue.items[0].message
    assert source.read_bytes() == original


def test_missing_weights_file_is_reported_before_starting(window, tmp_path):
    write_png(tmp_path / "a.png")
    use_golden(window, None, weights_file=str(tmp_path / "nope.safetensors"))
    window.add_paths([tmp_path / "a.png"])
    assert not window.start()
    assert "nope.safetensors" in window.message_bar.text.text()
    assert states(window) == [ItemState.QUEUED]


def test_error_messages_for_memory_and_disk_problems():
    assert "smaller tile" in describe_error(torch.OutOfMemoryError("CUDA out of memory"))
    assert "smaller tile" in describe_error(MemoryError())
    full = OSError(28, "No space left on device", "/media/x/out.png")
    assert describe_error(full) == "Disk full while writing /media/x/out.png: free some space and retry."
    denied = OSError(13, "Permission denied", "/srv/out")
    assert "choose another output folder" in describe_error(denied)


# ---------------------------------------------------------------------------------------------- settings


def test_settings_survive_a_restart(qtbot, tmp_path):
    first = make_window(qtbot, tmp_path)
    panel = first.panel
    panel.models.combo.setCurrentIndex(panel.models.combo.findData("\0weights-file"))
    panel.models.file_edit.setText(str(GOLDEN))
    panel.models.file_edit.editingFinished.emit()
    panel.device.setCurrentIndex(panel.device.findData("cpu"))
    panel.precision.setCurrentIndex(panel.precision.findData("bf16"))
    panel.tile.setValue(128)
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
        model=chosen.model,
        weights_file=str(GOLDEN),
        use_weights_file=True,
        device="cpu",
        precision="bf16",
        tile=128,
        output_dir=str(tmp_path / "results"),
        format="webp",
        quality=80,
        suffix="-big",
        overwrite=True,
        recursive=False,
    )


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


# ------------------------------------------------------------------------------------------- screenshots


def test_screenshots_of_the_main_window_and_the_comparison(qtbot, window, tmp_path):
    """Saves docs/screenshots/main_window_running.png (mid-run), main_window.png (after the run) and
    compare_view.png for a reviewer to look at."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pictures = tmp_path / "holiday"
    photo = Image.open(ROOT / "samples" / "astronaut.png").convert("RGB")
    pictures.mkdir()
    photo.crop((40, 20, 88, 52)).save(pictures / "beach.png")
    photo.crop((30, 60, 94, 108)).save(pictures / "harbour.png")
    (pictures / "scan-damaged.png").write_bytes(b"\x89PNG truncated")
    write_png(pictures / "later" / "sunset.png", seed=6)
    bundled = ROOT / "hat_plugin" / "bundled" / "hat-tiny-x2.safetensors"  # a trained model: a real result
    use_golden(window, tmp_path / "upscaled", tile=16, weights_file=str(bundled))
    window.resize(1100, 600)
    window.add_paths([pictures / "beach.png", pictures / "harbour.png", pictures / "scan-damaged.png"])
    mid_run = []

    def grab_mid_run(top, _bottom) -> None:
        item = window.table_model.item_at(top.row())
        if not mid_run and item.state is ItemState.RUNNING and item.total > 10 and item.done >= item.total // 2:
            mid_run.append(window.grab().save(str(SCREENSHOTS / "main_window_running.png")))

    window.table_model.dataChanged.connect(grab_mid_run)
    run(qtbot, window)
    assert mid_run == [True]
    window.add_paths([pictures / "later"])
    window.view.selectRow(0)
    qtbot.wait(50)
    assert window.grab().save(str(SCREENSHOTS / "main_window.png"))
    compare = window.open_compare(window.queue.items[0].id)
    qtbot.addWidget(compare)
    compare.resize(760, 560)
    qtbot.waitExposed(compare)
    compare.canvas.zoom_to(8.0, compare.canvas.rect().center().toPointF())
    compare.canvas.set_split(0.45)
    qtbot.wait(50)
    assert compare.grab().save(str(SCREENSHOTS / "compare_view.png"))
    assert QImage(str(SCREENSHOTS / "main_window.png")).width() >= 1000
    assert QImage(str(SCREENSHOTS / "compare_view.png")).height() >= 500


def test_a_dark_system_palette_is_followed(qtbot, window, tmp_path):
    """Nothing paints a fixed light background: under a dark palette (as a dark system theme gives) the window is
    dark. Saves docs/screenshots/main_window_dark.png."""
    app = QApplication.instance()
    light = app.palette()
    dark = QPalette()
    for role, colour in (
        (QPalette.ColorRole.Window, "#2b2b2b"),
        (QPalette.ColorRole.WindowText, "#e8e8e8"),
        (QPalette.ColorRole.Base, "#1e1e1e"),
        (QPalette.ColorRole.AlternateBase, "#262626"),
        (QPalette.ColorRole.Text, "#e8e8e8"),
        (QPalette.ColorRole.Button, "#353535"),
        (QPalette.ColorRole.ButtonText, "#e8e8e8"),
        (QPalette.ColorRole.Highlight, "#3d7bd9"),
        (QPalette.ColorRole.HighlightedText, "#ffffff"),
    ):
        dark.setColor(role, QColor(colour))
    write_png(tmp_path / "a.png")
    window.add_paths([tmp_path / "a.png", tmp_path / "notes.txt"])
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    app.setPalette(dark)
    try:
        window.resize(1100, 600)
        qtbot.wait(50)
        shot = window.grab()
        assert shot.save(str(SCREENSHOTS / "main_window_dark.png"))
        image = shot.toImage()
        corner = window.view.viewport().mapTo(window, window.view.viewport().rect().bottomRight()) - QPoint(5, 5)
        assert image.pixelColor(corner).lightness() < 80, "the queue's background follows the palette"
        assert image.pixelColor(window.statusBar().geometry().center()).lightness() < 80
    finally:
        app.setPalette(light)
