"""Models fetched in the desktop app from a real HTTP server on 127.0.0.1 (``weights_server.py``): progress on the
item and in the model box, cancel, a corrupt download shown with a working Retry, and offline mode."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import io

import pytest
import torch
from gui_helpers import GOLDEN, RUN_TIMEOUT_MS, make_window, run, states, write_png
from PyQt6.QtCore import Qt
from safetensors.torch import load_file

from gui.queue_model import ItemState
from gui.settings import Settings
from hat_plugin import weights

pytest_plugins = ["weights_server"]

NAME = "tiny-x2"
URL_PATH = "/tiny-x2.pth"
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
def served(wenv, window):
    """The golden x2 model published at URL_PATH and listed in the manifest; the window set to use it."""
    wenv.add_model(NAME, PTH, [wenv.server.add(URL_PATH, PTH)])
    window.panel.models.reload()
    window.panel.set_settings(Settings(model=NAME, device="cpu", tile=16))
    assert window.panel.settings().model == NAME
    return wenv


def model_text(window) -> str:
    return window.panel.models.combo.currentText()


def serve(wenv, body: bytes = PTH, fault: str = "ok", **options) -> None:
    wenv.server.add(URL_PATH, body, fault, **options)


def test_run_downloads_the_missing_model_with_progress_then_upscales(qtbot, served, window, tmp_path):
    picker = window.panel.models
    assert "not downloaded" in model_text(window)
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
    assert "downloaded" in model_text(window) and "not downloaded" not in model_text(window)
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
    assert "not downloaded" not in model_text(window)
    assert picker.combo.isEnabled() and not picker.cancel_button.isVisible()


def test_corrupt_download_shows_the_error_and_retry_fetches_it_again(qtbot, served, window):
    picker = window.panel.models
    serve(served, body=bytes(len(PTH)))
    qtbot.mouseClick(picker.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: picker.error.isVisible() and not picker.downloading, timeout=RUN_TIMEOUT_MS)
    assert "Download failed" in picker.error.text.text() and "sha256" in picker.error.text.text()
    assert picker.error.action.isVisible() and picker.error.action.text() == "Retry"
    assert not weights.is_cached(NAME)
    serve(served)
    with qtbot.waitSignal(picker.downloaded, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(picker.error.action, Qt.MouseButton.LeftButton)
    assert weights.is_cached(NAME)
    assert not picker.error.isVisible()


def test_corrupt_download_during_a_run_fails_the_item_and_retry_completes_it(qtbot, served, window, tmp_path):
    serve(served, body=b"<html>quota exceeded</html>", fault="html")
    write_png(tmp_path / "a.png")
    write_png(tmp_path / "b.png", seed=1)
    window.add_paths([tmp_path / "a.png", tmp_path / "b.png"])
    run(qtbot, window)
    assert states(window) == [ItemState.FAILED, ItemState.QUEUED]
    assert "web page instead of the weights" in window.queue.items[0].message
    assert window.message_bar.isVisible() and window.message_bar.action.text() == "Retry"
    serve(served)
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        qtbot.mouseClick(window.message_bar.action, Qt.MouseButton.LeftButton)
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
        qtbot.mouseClick(picker.error.action, Qt.MouseButton.LeftButton)
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
        window.retry_failed()
    assert states(window) == [ItemState.DONE]


def test_offline_mode_never_downloads_and_says_so(qtbot, served, window, tmp_path, monkeypatch):
    monkeypatch.setenv("HAT_PLUGIN_OFFLINE", "1")
    picker = window.panel.models
    picker.reload()
    assert not picker.download_button.isEnabled()
    assert "offline" in picker.info.text().lower()
    write_png(tmp_path / "a.png")
    window.add_paths([tmp_path / "a.png"])
    run(qtbot, window)
    assert states(window) == [ItemState.FAILED]
    assert "HAT_PLUGIN_OFFLINE" in window.queue.items[0].message
    assert served.server.all_hits == []
