"""Models fetched in the desktop app from a real HTTP server on 127.0.0.1 (``weights_server.py``): progress on the
item and in the model box, cancel, a failed download shown in one sentence (details folded away, the settings
panel never widened) with a working Retry, offline mode, and the model list checked again after a download."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import io
import json

import pytest
import torch
from gui_helpers import GOLDEN, ROOT, RUN_TIMEOUT_MS, bar_text, make_window, run, states, write_png
from PyQt6.QtCore import Qt
from safetensors.torch import load_file

from gui.queue_model import ItemState
from gui.settings import Settings
from hat_plugin import weights

pytest_plugins = ["weights_server"]

NAME = "tiny-x2"
URL_PATH = "/" + "weights/" * 20 + "tiny-x2.pth"
"""A long URL: error details name it, and must not widen the settings panel."""
PACE_S = 0.02
"""Seconds the paced server waits before each 16 KiB, so a download lasts long enough to cancel (~1.5 s)."""


def _pth_bytes() -> bytes:
    buffer = io.BytesIO()
    torch.save(load_file(GOLDEN), buffer)
    return buffer.getvalue()


PTH = _pth_bytes()


@pytest.fixture
def window(qtbot, tmp_path):
    return make_window(qtbot, tmp_path)


@pytest.fixture
def served(wenv, window, qtbot):
    """The golden x2 model published at URL_PATH and listed in the manifest; the window set to use it."""
    wenv.add_model(NAME, PTH, [wenv.server.add(URL_PATH, PTH)])
    window.panel.models.reload()
    window.panel.models.check_availability()
    qtbot.waitUntil(lambda: not window.panel.models.checking and NAME in window.panel.models.availability.ready)
    window.panel.set_settings(Settings(model=NAME, device="cpu", tile=16))
    assert window.panel.settings().model == NAME
    return wenv


def group_of(window, name: str) -> str:
    """The group heading above model ``name`` in the model box."""
    combo = window.panel.models.combo
    heading = ""
    for row in range(combo.count()):
        if combo.itemData(row, Qt.ItemDataRole.UserRole) is None:
            heading = combo.itemText(row)
        elif combo.itemData(row, Qt.ItemDataRole.UserRole) == name:
            return heading
    raise AssertionError(f"{name} is not listed")


def settings_fit(window) -> bool:
    """The settings panel, the model box and the message in it are no wider than the panel's scroll box."""
    scroll = window.settings_scroll.viewport()
    picker = window.panel.models
    right = max(w.mapTo(scroll, w.rect().topRight()).x() for w in (picker.combo, picker.error, picker.error.details))
    return window.panel.width() <= scroll.width() and right < scroll.width()


def serve(wenv, body: bytes = PTH, fault: str = "ok", **options) -> None:
    wenv.server.add(URL_PATH, body, fault, **options)


def test_run_downloads_the_missing_model_with_progress_then_upscales(qtbot, served, window, tmp_path):
    picker = window.panel.models
    assert group_of(window, NAME) == "Download (needs the internet)"
    assert picker.download_button.isVisible() and picker.download_button.isEnabled()
    write_png(tmp_path / "a.png")
    window.add_paths([tmp_path / "a.png"])
    seen = set()
    window.table_model.dataChanged.connect(
        lambda *_: seen.add((window.queue.items[0].state, window.queue.items[0].total))
    )
    run(qtbot, window)
    assert (ItemState.DOWNLOADING, len(PTH)) in seen
    assert (ItemState.RUNNING, 2) in seen
    assert states(window) == [ItemState.DONE]
    assert (tmp_path / "a_x2.png").is_file()
    assert weights.is_cached(NAME)
    qtbot.waitUntil(lambda: group_of(window, NAME) == "Ready to use"), "checked again after the run's download"
    assert not picker.download_button.isVisible()
    assert len(served.server.hits(URL_PATH)) == 1


def test_download_button_shows_progress_and_marks_the_model_downloaded(qtbot, served, window):
    picker = window.panel.models
    serve(served, fault="paced", delay=PACE_S)
    values = []
    picker.download_bar.valueChanged.connect(values.append)
    with qtbot.waitSignal(picker.downloaded, timeout=RUN_TIMEOUT_MS) as done:
        qtbot.mouseClick(picker.download_button, Qt.MouseButton.LeftButton)
        assert picker.cancel_button.isVisible() and not picker.combo.isEnabled()
    assert done.args == [NAME]
    assert values[-1] == len(PTH) and len(values) > 3 and values == sorted(values)
    assert weights.is_cached(NAME)
    qtbot.waitUntil(lambda: group_of(window, NAME) == "Ready to use")
    assert picker.shown_model == NAME and "Downloaded: works offline." in picker.info.text()
    assert picker.combo.isEnabled() and not picker.cancel_button.isVisible()


def test_corrupt_download_shows_one_sentence_and_retry_fetches_it_again(qtbot, served, window):
    picker = window.panel.models
    serve(served, body=bytes(len(PTH)))
    qtbot.mouseClick(picker.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: picker.error.isVisible() and not picker.downloading, timeout=RUN_TIMEOUT_MS)
    assert picker.error.text.text() == "HAT-S ×4 tiny is not downloaded and could not be downloaded."
    assert not picker.error.details.isVisible()
    qtbot.mouseClick(picker.error.details_button, Qt.MouseButton.LeftButton)
    assert picker.error.details.isVisible() and "sha256" in picker.error.details.toPlainText()
    assert URL_PATH in picker.error.details.toPlainText()
    qtbot.wait(20)
    assert settings_fit(window), "a long error never widens the settings panel"
    assert not weights.is_cached(NAME)
    serve(served)
    with qtbot.waitSignal(picker.downloaded, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(picker.error.button("Retry"), Qt.MouseButton.LeftButton)
    assert weights.is_cached(NAME)
    assert not picker.error.isVisible()


def test_a_failed_download_during_a_run_stops_it_without_failing_items(qtbot, served, window, tmp_path):
    serve(served, body=b"<html>quota exceeded</html>", fault="html")
    write_png(tmp_path / "a.png")
    write_png(tmp_path / "b.png", seed=1)
    window.add_paths([tmp_path / "a.png", tmp_path / "b.png"])
    run(qtbot, window)
    assert states(window) == [ItemState.QUEUED, ItemState.QUEUED], "a model problem is not the images' failure"
    assert bar_text(window) == "HAT-S ×4 tiny is not downloaded and could not be downloaded."
    assert "web page instead of the weights" in window.message_bar.details.toPlainText()
    assert window.progress.value() == 0
    assert [b.text() for b in window.message_bar.buttons] == ["Retry"], "no ready model of this scale to offer"
    serve(served)
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(window.message_bar.button("Retry"), Qt.MouseButton.LeftButton)
    assert states(window) == [ItemState.DONE, ItemState.DONE]


def test_cancelling_a_download_keeps_no_model_and_retry_resumes(qtbot, served, window, tmp_path):
    picker = window.panel.models
    serve(served, fault="paced", delay=PACE_S)
    qtbot.mouseClick(picker.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: picker.download_bar.value() > 0, timeout=RUN_TIMEOUT_MS)
    qtbot.mouseClick(picker.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not picker.downloading, timeout=RUN_TIMEOUT_MS)
    assert picker.error.text.text() == "Download cancelled."
    assert not weights.is_cached(NAME)
    assert not (served.cache / f"{NAME}.pth").exists()
    serve(served)
    with qtbot.waitSignal(picker.downloaded, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(picker.error.button("Retry"), Qt.MouseButton.LeftButton)
    resumed = served.server.hits(URL_PATH)[-1]
    assert resumed.range is not None and resumed.range.startswith("bytes="), "the second request resumed"


def test_cancelling_a_run_while_the_model_downloads(qtbot, served, window, tmp_path):
    serve(served, fault="paced", delay=PACE_S)
    write_png(tmp_path / "a.png")
    window.add_paths([tmp_path / "a.png"])
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        assert window.start()
        qtbot.waitUntil(lambda: window.queue.items[0].done > 0, timeout=RUN_TIMEOUT_MS)
        assert window.queue.items[0].state is ItemState.DOWNLOADING
        qtbot.mouseClick(window.cancel_button, Qt.MouseButton.LeftButton)
    assert states(window) == [ItemState.CANCELLED]
    assert not (tmp_path / "a_x2.png").exists()
    serve(served)
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(window.start_button, Qt.MouseButton.LeftButton)
    assert states(window) == [ItemState.DONE]


def test_offline_mode_never_downloads_and_says_so(qtbot, served, window, tmp_path, monkeypatch):
    monkeypatch.setenv("HAT_PLUGIN_OFFLINE", "1")
    picker = window.panel.models
    picker.check_availability()
    qtbot.waitUntil(lambda: picker.availability is not None and picker.availability.offline)
    assert not picker.download_button.isEnabled()
    assert "offline mode is on" in picker.info.text()
    write_png(tmp_path / "a.png")
    window.add_paths([tmp_path / "a.png"])
    run(qtbot, window)
    assert states(window) == [ItemState.QUEUED]
    assert bar_text(window) == "HAT-S ×4 tiny is not downloaded and offline mode is on (HAT_PLUGIN_OFFLINE)."
    assert "HAT_PLUGIN_OFFLINE" in window.message_bar.details.toPlainText()
    assert served.server.all_hits == []


def test_a_download_that_cannot_connect_offers_the_bundled_model_once(qtbot, wenv, window, tmp_path):
    """The Download button with no network: one message, in the model box, offering the bundled model of the
    nearest scale and saying what it gives; Start afterwards shows its own message instead, not a second one."""
    bundled = json.loads((ROOT / "hat_plugin" / "weights_manifest.json").read_text())["models"]
    wenv.put(next(entry for entry in bundled if entry["name"] == "hat-tiny-x4"))
    entry = wenv.add_model("far-x3", PTH, ["http://127.0.0.1:9/far-x3.pth"])  # nothing listens on port 9
    wenv.put({**entry, "scale": 3})
    picker = window.panel.models
    picker.reload()
    picker.check_availability()
    qtbot.waitUntil(lambda: not picker.checking and "far-x3" in picker.availability.ready)
    window.panel.set_settings(Settings(model="far-x3", device="cpu"))
    qtbot.mouseClick(picker.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: picker.error.isVisible() and not picker.downloading, timeout=RUN_TIMEOUT_MS)
    offer = "HAT-tiny ×4 works offline and gives ×4 instead of ×3."
    assert picker.error.text.text() == f"HAT-S ×3 far is not downloaded and this computer is offline. {offer}"
    assert [b.text() for b in picker.error.buttons] == ["Use HAT-tiny ×4", "Retry"]
    assert not window.message_bar.isVisible()
    write_png(tmp_path / "a.png")
    window.add_paths([tmp_path / "a.png"])
    run(qtbot, window)
    assert bar_text(window).endswith(offer) and not picker.error.isVisible(), "one message, never two"
    picker.select_model("far-x3")
    qtbot.mouseClick(picker.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: picker.error.isVisible() and not picker.downloading, timeout=RUN_TIMEOUT_MS)
    assert not window.message_bar.isVisible(), "the new message replaces the old one"
    picker.error.button("Use HAT-tiny ×4").click()
    assert picker.shown_model == "hat-tiny-x4" and not picker.error.isVisible()
