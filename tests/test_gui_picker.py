"""The app's first ten minutes with real widgets: a first launch offline with an empty cache picks the bundled model
and says why, the model box is grouped with friendly names and distinct marks, nothing is cut off, a scale picks
the model, and an unavailable model gets one sentence with actions instead of a wall of errors."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from gui_helpers import RUN_TIMEOUT_MS, bar_text, combo_fits, make_window, run, states, write_png
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QApplication, QStyle

from gui.model_items import status_icon
from gui.model_list import DOWNLOAD_GROUP, READY_GROUP
from gui.queue_model import ItemState
from hat_plugin import weights

NAME = Qt.ItemDataRole.UserRole


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """A first launch with no network: offline mode and an empty weights cache."""
    monkeypatch.setenv("HAT_PLUGIN_OFFLINE", "1")
    monkeypatch.setenv("HAT_PLUGIN_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("HAT_PLUGIN_MANIFEST", raising=False)


@pytest.fixture
def window(qtbot, tmp_path, offline):
    return make_window(qtbot, tmp_path)


def rows(combo) -> list[tuple[str, str | None]]:
    return [(combo.itemText(r), combo.itemData(r, NAME)) for r in range(combo.count())]


def test_first_launch_offline_uses_the_bundled_model_and_says_why(qtbot, window, tmp_path):
    picker = window.panel.models
    assert picker.shown_model == "hat-tiny-x4" and picker.automatic
    assert picker.info.text() == (
        "Picked for ×4: hat-tiny-x4 (bundled, works offline; the best x4 model available without downloading)."
    )
    assert picker.scale.currentText() == "×4"
    write_png(tmp_path / "a.png")
    window.add_paths([tmp_path / "a.png"])
    run(qtbot, window)
    assert states(window) == [ItemState.DONE]
    assert window.queue.items[0].output == tmp_path / "a_x4.png"
    assert window.runs.tracker.model.label == "hat-tiny-x4" and "works offline" in window.runs.tracker.model.why


def test_the_model_box_is_grouped_with_friendly_names_and_distinct_marks(window):
    combo = window.panel.models.combo
    listed = rows(combo)
    headers = [text for text, name in listed if name is None]
    assert headers == [READY_GROUP, DOWNLOAD_GROUP, "Other"]
    ready = listed[1 : listed.index((DOWNLOAD_GROUP, None))]
    assert ready == [
        ("HAT-tiny ×2 (1.3 MB)", "hat-tiny-x2"),
        ("HAT-tiny ×3 (1.5 MB)", "hat-tiny-x3"),
        ("HAT-tiny ×4 (1.4 MB)", "hat-tiny-x4"),
    ]
    assert ("HAT-S ×4 (81 MB)", "HAT-S_SRx4") in listed
    assert len({text for text, name in listed if name}) == len(weights.list_models()) + 1
    assert all(not combo.model().item(r).isEnabled() for r in range(combo.count()) if combo.itemData(r, NAME) is None)
    marks = {combo.itemData(r, NAME): combo.itemIcon(r).pixmap(16, 16).toImage() for r in range(combo.count())}
    assert marks["hat-tiny-x2"] == marks["hat-tiny-x4"] != marks["HAT-S_SRx4"]
    arrow = QApplication.style().standardIcon(QStyle.StandardPixmap.SP_ArrowDown).pixmap(16, 16).toImage()
    assert arrow not in (marks["hat-tiny-x2"], marks["HAT-S_SRx4"])
    assert status_icon(False).pixmap(16, 16).toImage() == marks["HAT_SRx3"]


def test_no_model_name_is_cut_off_at_the_default_window_size(window):
    picker = window.panel.models
    assert (window.width(), window.height()) == (1100, 660)
    for row in range(picker.combo.count()):
        if picker.combo.itemData(row, NAME) is not None:
            picker.combo.setCurrentIndex(row)
            assert combo_fits(picker.combo), picker.combo.currentText()
    view = picker.combo.view()
    assert view.minimumWidth() >= max(view.sizeHintForColumn(0), 0)


def test_a_scale_picks_the_model(qtbot, window):
    picker = window.panel.models
    picker.select_scale(2)
    assert picker.shown_model == "hat-tiny-x2" and picker.model == "" and window.panel.settings().scale == 2
    assert picker.info.text().startswith("Picked for ×2: hat-tiny-x2 (bundled, works offline")
    picker.select_scale(3)  # the bundled x3: no scale is a dead end offline
    assert picker.shown_model == "hat-tiny-x3" and picker.info.text().startswith("Picked for ×3: hat-tiny-x3 (bundled")
    assert not picker.use_button.isVisible()
    picker.select_model("HAT-S_SRx4")
    assert picker.scale.currentText() == "×4" and picker.model == "HAT-S_SRx4"
    assert "offline mode is on" in picker.info.text() and not picker.download_button.isEnabled()


def test_offline_with_an_unavailable_model_one_sentence_with_actions(qtbot, window, tmp_path):
    write_png(tmp_path / "a.png")
    window.add_paths([tmp_path / "a.png"])
    window.panel.models.select_model("HAT-S_SRx2")
    run(qtbot, window)
    assert bar_text(window) == (
        "HAT-S ×2 is not downloaded and offline mode is on (HAT_PLUGIN_OFFLINE). HAT-tiny ×2 works offline."
    )
    assert states(window) == [ItemState.QUEUED] and window.progress.value() == 0
    bar = window.message_bar
    assert [b.text() for b in bar.buttons] == ["Use HAT-tiny ×2", "Retry"]
    assert bar.details_button.isVisible() and not bar.details.isVisible()
    bar.details_button.click()
    assert bar.details.isVisible() and "HAT_PLUGIN_OFFLINE is set" in bar.details.toPlainText()
    assert bar.height() < window.height() / 2, "no wall of errors"
    with qtbot.waitSignal(window.run_finished, timeout=RUN_TIMEOUT_MS):
        bar.button("Use HAT-tiny ×2").click()
    assert states(window) == [ItemState.DONE] and window.panel.models.shown_model == "hat-tiny-x2"
    assert (tmp_path / "a_x2.png").is_file()


def test_offline_a_missing_model_offers_a_ready_one_of_the_nearest_scale(qtbot, window):
    """With x2, x3 and x4 bundled no scale is a dead end offline: a model that needs a download offers the bundled
    one of its scale, and x1 (only a community model, never picked automatically) the nearest bundled one."""
    picker = window.panel.models
    for name, expected in (
        ("HAT_SRx3", "hat-tiny-x3"),
        ("HAT-S_SRx4", "hat-tiny-x4"),
        ("4xNomos8kSCHAT-S", "hat-tiny-x4"),
    ):
        picker.select_model(name)
        assert picker.use_button.isVisible(), name
        qtbot.mouseClick(picker.use_button, Qt.MouseButton.LeftButton)
        assert picker.shown_model == expected and not picker.use_button.isVisible()
    picker.select_scale(1)
    assert picker.info.text() == "No model is picked automatically for ×1: choose one in the model box."
    assert picker.use_button.isVisible()
    qtbot.mouseClick(picker.use_button, Qt.MouseButton.LeftButton)
    assert weights.get_entry(picker.shown_model).bundled and picker.current_scale == 2
