"""Make the desktop app's screenshots in ``docs/screenshots/`` from a realistic use, as a new user would see it.

A first launch with no network and an empty weights cache (``HAT_PLUGIN_OFFLINE=1``): the app picks the bundled
model and says why; real photographs (``samples/`` and the held-out crops of ``tests/data/quality``) are upscaled
with it; the compare view shows a result at a zoom where the difference is visible, then the LAM map of a window
(Explain); a model that is not downloaded gives the one-sentence offline message. Settings go to a throw-away
folder, never the user's.

    QT_QPA_PLATFORM=offscreen .venv/bin/python -m tools.screenshots            # -> docs/screenshots/*.png
    xvfb-run .venv/bin/python -m tools.screenshots --out /tmp/shots           # under a real X server
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = (
    ROOT / "tests" / "data" / "quality" / "chelsea.png",
    ROOT / "tests" / "data" / "quality" / "coffee.png",
    ROOT / "tests" / "data" / "quality" / "rocket.png",
    ROOT / "tests" / "data" / "quality" / "camera.png",
    ROOT / "samples" / "astronaut.png",
)
"""Photographs only: four held out from the bundled models' training, and the sample portrait."""
SIZE = (1100, 660)
LAYOUTS = ((800, 500), (1280, 800), (1920, 1080), (3840, 2160))
"""Window sizes whose layout is shown (the smallest supported up to 4K)."""


def _wait(app: object, done: Callable[[], bool], timeout_s: float = 600.0) -> None:
    """Run the event loop until ``done()`` (the app stays live, as for a user)."""
    from PyQt6.QtCore import QCoreApplication, QThread

    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("the app did not get there in time")
        QCoreApplication.processEvents()
        QThread.msleep(10)


def _settle(app: object, ms: int = 150) -> None:
    end = time.monotonic() + ms / 1000
    _wait(app, lambda: time.monotonic() > end)


def main(argv: list[str] | None = None) -> int:
    """Make every screenshot; returns 0 when all were written."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots", help="where the PNGs go")
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    work = Path(tempfile.mkdtemp(prefix="hat-screenshots-"))
    os.environ["HAT_PLUGIN_CACHE"] = str(work / "cache")  # empty: nothing downloaded yet
    os.environ["HAT_PLUGIN_OFFLINE"] = "1"  # and no network
    os.environ.pop("HAT_PLUGIN_MANIFEST", None)
    try:
        return _make(args.out, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _make(out: Path, work: Path) -> int:
    from PyQt6.QtCore import QPointF, QSettings
    from PyQt6.QtWidgets import QApplication

    from gui.main_window import MainWindow
    from gui.queue_model import ItemState
    from hat_plugin.runtime import configure_process

    configure_process()
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("HAT Upscaler")
    out.mkdir(parents=True, exist_ok=True)
    photos = work / "Pictures" / "Holiday"
    photos.mkdir(parents=True)
    for photo in PHOTOS:
        shutil.copy(photo, photos / photo.name)
    store = QSettings(str(work / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(store=store, paste_dir=work / "pasted")
    window.resize(*SIZE)
    window.show()
    picker = window.panel.models
    _wait(app, lambda: picker.availability is not None and not picker.checking)
    written: list[str] = []

    def shot(name: str, widget: object = window) -> None:
        _settle(app)
        image = widget.grab()  # type: ignore[attr-defined]
        if not image.save(str(out / name)):
            raise OSError(f"cannot write {out / name}")
        written.append(name)

    shot("first_launch.png")
    picker.combo.showPopup()
    _settle(app, 300)
    popup = picker.combo.view().window()
    shot("model_picker.png", popup)
    picker.combo.hidePopup()

    window.add_paths([photos])
    mid_run: list[bool] = []

    def grab_mid_run(top: object, _bottom: object) -> None:
        """The second photo on its first tile: a moving bar, time left from the first photo."""
        item = window.table_model.item_at(top.row())  # type: ignore[attr-defined]
        second = window.queue.items[1]
        if not mid_run and item is second and item.state is ItemState.RUNNING and item.message.endswith("tile"):
            _settle(app, 200)
            mid_run.append(window.grab().save(str(out / "main_window_running.png")))

    window.table_model.dataChanged.connect(grab_mid_run)
    window.start()
    _wait(app, lambda: window.runs.task is None)
    window.table_model.dataChanged.disconnect(grab_mid_run)
    if mid_run:
        written.append("main_window_running.png")
    if [item.state for item in window.queue.items] != [ItemState.DONE] * len(PHOTOS):
        raise RuntimeError(f"the run did not finish: {[i.message for i in window.queue.items]}")
    window.view.selectRow(0)
    shot("main_window.png")

    window.resize(1100, 820)
    cat = next(item for item in window.queue.items if item.source.name == "chelsea.png")  # held out of training
    window.view.selectRow(window.queue.row_of(cat.id))
    window.comparison.open(cat.id)
    canvas = window.compare.canvas
    _settle(app)
    canvas.zoom_to(2.5, QPointF(0, 0))  # 250 %: each input pixel is 10 screen pixels wide
    centre = QPointF(canvas.width() / 2, canvas.height() / 2)
    canvas.pan_by(centre - (canvas.offset + QPointF(170, 215) * canvas.zoom))  # the left eye (output pixels)
    canvas.set_split(canvas.fraction_at(canvas.offset.x() + 110 * canvas.zoom))  # the split through the pupil
    shot("compare_view.png")
    compare = window.compare
    compare.explain_action.trigger()  # Explain: the LAM map of the window on the eye, in Quick mode (10 steps)
    compare.explain_bar.quick.setChecked(True)
    canvas.set_split(canvas.fraction_at(canvas.offset.x() + 230 * canvas.zoom))  # the map beside the window
    window.explainer.explain_at(170, 215)
    _wait(app, lambda: window.explainer.explanation is not None or not compare.explain_bar.busy)
    if window.explainer.explanation is None:
        raise RuntimeError(f"explain failed: {compare.explain_bar.status.text()}")
    shot("explain.png")
    compare.explain_action.trigger()
    window.comparison.close()

    window.resize(*SIZE)
    window.set_theme("dark", save=False)
    shot("main_window_dark.png")
    window.set_theme("system", save=False)

    window.add_paths([photos / "coffee.png"])
    picker.select_model("HAT-S_SRx2")
    window.start()
    _wait(app, lambda: window.runs.task is None)
    shot("offline_message.png")
    window.message_bar.dismiss()

    for width, height in LAYOUTS:  # the layout at each size, the comparison open below the queue
        window.resize(width, height)
        window.comparison.open(cat.id)
        _settle(app, 300)
        shot(f"layout_{width}x{height}.png")
    window.comparison.close()

    window.queue.items.clear()
    window.close()
    print(f"wrote {len(written)} screenshots to {out}: {', '.join(written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
