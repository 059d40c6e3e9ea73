"""The window's layout at 800x500, 1280x800, 1920x1080 and 4K with real widgets: no cut text in the settings panel
(combo boxes elide with "…", labels fit), the panel widens again when the window does, Compare's toolbar fits
with its Close button, and new rows added while Compare is open are scrolled into view."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from gui_helpers import make_window, write_png
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QLabel

from gui.settings_controller import SETTINGS_WIDTH
from gui.settings_panel import ElidingComboBox

SIZES = [(800, 500), (1280, 800), (1920, 1080), (3840, 2160)]


def open_compare(window, tmp_path) -> None:
    """The Compare dock showing a pair of pictures, as after a double-click on a result."""
    write_png(tmp_path / "in.png")
    write_png(tmp_path / "out.png", height=32, width=48)
    window.compare.show_files(tmp_path / "in.png", tmp_path / "out.png", "a rather long file name " * 4)
    window.compare_dock.show()


def cut_texts(window) -> list[str]:
    """Texts in the settings panel drawn narrower than they are: labels that neither fit nor wrap."""
    cut = []
    for label in window.panel.findChildren(QLabel):
        shown = label.isVisibleTo(window.panel) and not label.wordWrap() and label.text()
        if shown and label.width() < label.fontMetrics().horizontalAdvance(label.text()):
            cut.append(label.text())
    edit = window.panel.output_dir
    if edit.width() < edit.fontMetrics().horizontalAdvance(edit.placeholderText()) + 8:
        cut.append(edit.placeholderText())
    return cut


@pytest.mark.parametrize("size", SIZES)
def test_no_cut_text_and_compare_fits_at_every_size(qtbot, tmp_path, size):
    window = make_window(qtbot, tmp_path)
    write_png(tmp_path / "v.png")
    window.add_paths([tmp_path / "v.png"])
    open_compare(window, tmp_path)
    window.resize(*size)
    qtbot.waitUntil(lambda: window.width() == size[0])
    qtbot.wait(30)
    assert cut_texts(window) == []
    combos = window.panel.findChildren(ElidingComboBox)
    assert len(combos) >= 4
    for combo in combos:
        shown = combo.shown_text()
        assert shown == combo.currentText() or shown.endswith("…"), "whole, or elided with …"
        room = combo.width() - 30
        assert combo.fontMetrics().horizontalAdvance(shown) <= room, shown
    precision = window.panel.precision
    if size[0] >= 1920:
        assert precision.shown_text() == precision.currentText(), "room enough: nothing elided"
    toolbar = window.compare.toolbar
    close = toolbar.widgetForAction(window.compare.close_action)
    assert close is not None and close.isVisible(), "Close is on the toolbar, not in its overflow menu"
    assert toolbar.rect().contains(close.geometry()), "the whole toolbar fits"


def test_the_settings_widen_again_when_a_shrunken_window_grows(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path)
    window.resize(800, 500)
    qtbot.waitUntil(lambda: window.settings_dock.width() <= 0.4 * 800)
    window.resize(1920, 1080)  # what maximising does
    qtbot.waitUntil(lambda: window.width() == 1920)
    qtbot.waitUntil(lambda: window.settings_dock.width() >= SETTINGS_WIDTH - 2)
    assert window.panel.precision.shown_text() == window.panel.precision.currentText()


def test_rows_added_while_compare_is_open_are_scrolled_into_view(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path)
    window.resize(800, 500)
    open_compare(window, tmp_path)
    window.resizeDocks([window.compare_dock], [300], Qt.Orientation.Vertical)
    files = []
    for index in range(30):
        files.append(tmp_path / f"f{index:02}.png")
        write_png(files[-1], seed=index)
    window.add_paths(files[:15])
    window.add_paths(files[15:])
    view = window.view

    def newest_in_view() -> bool:
        last = view.visualRect(window.table_model.index(len(window.queue) - 1, 0))
        return view.viewport().rect().intersects(last)

    qtbot.waitUntil(newest_in_view)
    first = view.visualRect(window.table_model.index(0, 0))
    assert not view.viewport().rect().contains(first), "the queue is longer than its view here"


def test_explain_fits_a_small_window_while_it_works_and_with_a_map(qtbot, tmp_path):
    window = make_window(qtbot, tmp_path)
    open_compare(window, tmp_path)
    window.compare.explain_action.trigger()
    bar = window.compare.explain_bar
    bar.running((8, 8), 16)
    bar.progressed(42, 500)
    window.resize(800, 500)
    qtbot.wait(30)
    assert window.width() == 800, "the Explain bar never forces the window wider"
    assert bar.progress.width() > bar.progress.fontMetrics().horizontalAdvance(bar.progress.text()) + 20
    bar.finished("DI 1.23")
    qtbot.wait(30)
    assert bar.map_tools.isVisible() and window.width() == 800
    assert bar.map_tools.geometry().right() <= bar.width(), "the legend and the opacity slider fit"
