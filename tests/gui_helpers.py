"""Shared pieces of the desktop-app tests: a main window on a throw-away settings file, tiny test images, and
the golden x2 weights picked as a user would."""

from __future__ import annotations

import os
import threading
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PyQt6.QtCore import QMimeData, QPoint, QRectF, QRunnable, QSettings, Qt, QThreadPool, QTimer, QUrl
from PyQt6.QtGui import QDragEnterEvent, QDropEvent, QImage
from PyQt6.QtWidgets import QApplication, QMessageBox, QStyle, QStyleOptionComboBox

from gui.main_window import MainWindow
from gui.queue_model import ItemState
from gui.settings import Settings
from hat_plugin import images

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "data" / "golden" / "tiny-x2-w8" / "weights.safetensors"
RUN_TIMEOUT_MS = 120_000


def write_png(path: Path, height: int = 16, width: int = 24, seed: int = 0) -> np.ndarray:
    """A small colourful test image: gradients plus a little noise, so every pixel differs."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    pixels = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) * 5 % 256], axis=-1)
    pixels = np.clip(pixels + rng.integers(-12, 12, pixels.shape), 0, 255).astype(np.uint8)
    images.write_image(path, images.Image(pixels))
    return pixels


def settings_store(folder: Path) -> QSettings:
    """A settings file of its own, so tests never read or write the user's configuration."""
    return QSettings(str(folder / "settings.ini"), QSettings.Format.IniFormat)


def make_window(qtbot, folder: Path, store: QSettings | None = None) -> MainWindow:
    """A shown main window keeping its settings and pasted images under ``folder``, once its check of which
    models are ready has answered."""
    win = MainWindow(store=store or settings_store(folder), paste_dir=folder / "pasted")
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    qtbot.waitUntil(lambda: win.panel.models.availability is not None and not win.panel.models.checking)
    return win


def use_golden(win: MainWindow, out: Path | None, **changes) -> None:
    """Point the settings panel at the golden x2 weights file on the CPU, as a user would pick it."""
    values: dict[str, Any] = dict(weights_file=str(GOLDEN), use_weights_file=True, device="cpu", tile=0)
    values["output_dir"] = str(out) if out else ""
    values.update(changes)
    win.panel.set_settings(Settings(**values))


def run(qtbot, win: MainWindow) -> None:
    with qtbot.waitSignal(win.run_finished, timeout=RUN_TIMEOUT_MS):
        if not win.start():
            raise AssertionError(f"the run did not start: {win.message_bar.text.text()}")


def states(win: MainWindow) -> list[ItemState]:
    """The state of every queue item, in order."""
    return [item.state for item in win.queue.items]


def bar_text(win: MainWindow) -> str:
    """The message bar's sentence."""
    return win.message_bar.text.text()


def combo_fits(combo) -> bool:
    """The combo box shows its whole current text (icon included) without eliding it."""
    option = QStyleOptionComboBox()
    combo.initStyleOption(option)
    field = combo.style().subControlRect(
        QStyle.ComplexControl.CC_ComboBox, option, QStyle.SubControl.SC_ComboBoxEditField, combo
    )
    needed = combo.fontMetrics().horizontalAdvance(combo.currentText()) + combo.iconSize().width() + 4
    return field.width() >= needed


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
    """Drag data naming local files, as a file manager sends it."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


class Blocker(QRunnable):
    """Occupies the window's one worker thread until released, so a test can act while a run is queued."""

    def __init__(self, pool: QThreadPool) -> None:
        super().__init__()
        self.setAutoDelete(False)
        self.released = threading.Event()
        pool.start(self)

    def run(self) -> None:
        self.released.wait(30)


def as_array(image: QImage) -> np.ndarray:
    """A shown picture's RGB pixels."""
    rgb = image.convertToFormat(QImage.Format.Format_RGB888)
    data = np.frombuffer(rgb.constBits().asarray(rgb.sizeInBytes()), np.uint8)  # type: ignore[call-overload]
    return data.reshape(rgb.height(), rgb.bytesPerLine())[:, : rgb.width() * 3].reshape(rgb.height(), rgb.width(), 3)


def click_output(qtbot, window: MainWindow, x: int, y: int) -> None:
    """Click output pixel ``(x, y)`` on the canvas, as the user would."""
    canvas = window.compare.canvas
    point = canvas.offset + (QRectF(x, y, 1, 1).center()) * canvas.zoom
    qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=QPoint(round(point.x()), round(point.y())))


def cancel_during_run(qtbot, win: MainWindow, when: Callable[[object], bool]) -> None:
    """Start a run and cancel it as the Cancel button does, but only once ``when(event)`` holds for an event of
    the worker (checked on the worker thread, so the work stops right there); returns when the run has ended."""
    blocker = Blocker(win.runs.pool)
    if not win.start():
        raise AssertionError(f"the run did not start: {win.message_bar.text.text()}")
    task = win.runs.task
    assert task is not None

    def on_event(event: object) -> None:
        if when(event):
            task.cancel()

    task.signals.reported.connect(on_event, Qt.ConnectionType.DirectConnection)  # type: ignore[call-arg]
    with qtbot.waitSignal(win.run_finished, timeout=RUN_TIMEOUT_MS):
        win.cancel()  # what the Cancel button does, so the run is known as cancelled
        task._cancel.clear()  # ...but let the work go on until ``when``
        blocker.released.set()


def answer_question(button_text: str, seen: list[str]) -> None:
    """Click ``button_text`` in the modal question box as soon as it shows, recording its text."""

    def click() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, click)
            return
        seen.append(box.text())
        next(b for b in box.buttons() if b.text() == button_text).click()

    QTimer.singleShot(20, click)
