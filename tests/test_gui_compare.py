"""The before/after view with real widgets: the right pixels on each side of the split, the input enlarged with
nearest neighbour (or smoothly, on request) to the output's scale, zoom and pan applied to both images, 1:1, the
split slider; and in the main window: docked, next/previous through the results, Esc closes it."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from PyQt6.QtCore import QPoint, QPointF, Qt
from PyQt6.QtGui import QImage, QWheelEvent
from PyQt6.QtWidgets import QApplication

from gui.compare_view import ComparePanel
from gui.qimage import array_to_qimage
from hat_plugin import images

SCALE = 2


@pytest.fixture
def pair(tmp_path):
    """An input and a distinct 2x "output" on disk, so each side's pixels are recognisable."""
    rng = np.random.default_rng(7)
    before = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    after = rng.integers(0, 256, (12 * SCALE, 16 * SCALE, 3), dtype=np.uint8)
    images.write_image(tmp_path / "in.png", images.Image(before))
    images.write_image(tmp_path / "out.png", images.Image(after))
    return tmp_path / "in.png", before, tmp_path / "out.png", after


@pytest.fixture
def compare(qtbot, pair) -> ComparePanel:
    window = ComparePanel()
    qtbot.addWidget(window)
    window.resize(640, 480)
    window.show_files(pair[0], pair[2])
    window.show()
    qtbot.waitExposed(window)
    return window


def shown(canvas, point: QPointF) -> tuple[int, int, int]:
    """The colour on screen at a widget point of the canvas."""
    shot = canvas.grab().toImage()
    ratio = shot.devicePixelRatio()
    colour = shot.pixelColor(int(point.x() * ratio), int(point.y() * ratio))
    return colour.red(), colour.green(), colour.blue()


def centre_of(canvas, ix: int, iy: int) -> QPointF:
    """Widget point at the centre of output pixel (ix, iy)."""
    return canvas.offset + QPointF(ix + 0.5, iy + 0.5) * canvas.zoom


def covered(canvas, point: QPointF) -> bool:
    """True where the split line, its round handle or the two labels are drawn over the images."""
    near_line = abs(point.x() - canvas.split_x()) < 3
    on_handle = abs(point.x() - canvas.split_x()) < 14 and abs(point.y() - canvas.height() / 2) < 14
    return near_line or on_handle or point.y() < 40


def assert_sides_match(canvas, before: np.ndarray, after: np.ndarray) -> None:
    """Every visible output pixel in a sample shows the output right of the split and the enlarged input left of
    it, both through the same zoom and pan."""
    checked = {"before": 0, "after": 0}
    split = canvas.split_x()
    for iy in range(0, after.shape[0], 5):
        for ix in range(0, after.shape[1], 3):
            point = centre_of(canvas, ix, iy)
            if not canvas.rect().contains(point.toPoint()) or covered(canvas, point):
                continue
            if point.x() < split:
                assert shown(canvas, point) == tuple(before[iy // SCALE, ix // SCALE]), (ix, iy)
                checked["before"] += 1
            else:
                assert shown(canvas, point) == tuple(after[iy, ix]), (ix, iy)
                checked["after"] += 1
    assert checked["before"] >= 3 and checked["after"] >= 3, checked


def test_images_are_the_input_and_output_at_the_same_scale(compare, pair):
    _, before, _, after = pair
    canvas = compare.canvas
    assert (canvas.before.width(), canvas.before.height()) == (16, 12)
    assert (canvas.after.width(), canvas.after.height()) == (32, 24)
    rect = canvas.image_rect()
    assert canvas.rect().toRectF().contains(rect), "fit shows the whole image"
    assert max(rect.width(), rect.height()) > 0.9 * min(canvas.width(), canvas.height())
    canvas.zoom_to(8.0, canvas.rect().center().toPointF())
    assert_sides_match(canvas, before, after)
    assert "16×12" in compare.info.text() and "32×24" in compare.info.text()


def test_one_to_one_shows_each_output_pixel_on_one_screen_pixel(compare, pair):
    _, before, _, after = pair
    canvas = compare.canvas
    compare.actual_action.trigger()
    assert canvas.zoom * canvas.devicePixelRatioF() == 1.0
    assert compare.zoom_label.text().strip() == "100%"
    top_left = canvas.offset
    assert top_left.x() == round(top_left.x()) and top_left.y() == round(top_left.y())
    canvas.pan_by(QPointF(0, 40))  # out from under the split handle
    top_left = canvas.offset
    checked = 0
    for iy in range(24):
        for ix in range(32):
            point = top_left + QPointF(ix + 0.5, iy + 0.5)
            if covered(canvas, point):
                continue
            expected = after[iy, ix] if point.x() >= canvas.split_x() else before[iy // SCALE, ix // SCALE]
            assert shown(canvas, point) == tuple(expected), (ix, iy)
            checked += 1
    assert checked > 600


def test_wheel_zoom_keeps_the_point_under_the_cursor_and_applies_to_both_sides(compare, pair):
    _, before, _, after = pair
    canvas = compare.canvas
    canvas.zoom_to(4.0, canvas.rect().center().toPointF())
    anchor = QPointF(canvas.split_x() + 10, canvas.height() / 2 - 7)
    under = canvas.map_to_image(anchor)
    wheel = QWheelEvent(
        anchor,
        canvas.mapToGlobal(anchor),
        QPoint(),
        QPoint(0, 120),
        Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier,
        Qt.ScrollPhase.NoScrollPhase,
        False,
    )
    QApplication.sendEvent(canvas, wheel)
    assert canvas.zoom == pytest.approx(5.0)
    moved = canvas.map_to_image(anchor)
    assert (moved.x(), moved.y()) == pytest.approx((under.x(), under.y()))
    assert_sides_match(canvas, before, after)


def test_dragging_pans_both_images_together(qtbot, compare, pair):
    _, before, _, after = pair
    canvas = compare.canvas
    canvas.zoom_to(6.0, canvas.rect().center().toPointF())
    start = canvas.offset
    grab = QPoint(int(canvas.split_x()) + 60, canvas.height() // 3)
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=grab)
    qtbot.mouseMove(canvas, grab + QPoint(-35, 22))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=grab + QPoint(-35, 22))
    assert (canvas.offset - start).x() == pytest.approx(-35) and (canvas.offset - start).y() == pytest.approx(22)
    assert canvas.split == 0.5, "panning does not move the split"
    assert_sides_match(canvas, before, after)


def test_split_follows_the_handle_and_the_slider(qtbot, compare, pair):
    _, before, _, after = pair
    canvas = compare.canvas
    handle = QPoint(int(canvas.split_x()), canvas.height() // 2)
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=handle)
    qtbot.mouseMove(canvas, QPoint(canvas.width() // 4, canvas.height() // 2))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=QPoint(canvas.width() // 4, canvas.height() // 2))
    quarter = canvas.fraction_at(canvas.width() // 4)
    assert canvas.split == pytest.approx(quarter, abs=0.01) and canvas.split_x() == pytest.approx(canvas.width() // 4)
    assert compare.slider.value() == pytest.approx(1000 * quarter, abs=10)
    compare.slider.setValue(600)
    assert canvas.split == pytest.approx(0.6)
    canvas.zoom_to(8.0, canvas.rect().center().toPointF())
    assert_sides_match(canvas, before, after)


@pytest.mark.parametrize(
    ("pixels", "expected"),
    [
        (np.array([[[65535, 32896, 0]]], dtype=np.uint16), (255, 128, 0, 255)),
        (np.array([[[10, 20, 30, 40]]], dtype=np.uint8), (10, 20, 30, 40)),
        (np.array([[200]], dtype=np.uint8), (200, 200, 200, 255)),
        (np.array([[[0.5, 0.0, 1.0]]], dtype=np.float32), (128, 0, 255, 255)),
    ],
)
def test_display_conversion_keeps_depth_channels_and_alpha(pixels, expected):
    colour = array_to_qimage(pixels).pixelColor(0, 0)
    assert (colour.red(), colour.green(), colour.blue(), colour.alpha()) == expected


def test_grey_with_alpha_is_displayed_as_rgba(qapp) -> None:
    from gui.qimage import array_to_qimage, qimage_to_array

    la = np.zeros((3, 4, 2), np.uint8)
    la[..., 0], la[..., 1] = 200, 255
    la[0, 0] = (10, 0)
    shown = qimage_to_array(array_to_qimage(la))
    assert shown.shape == (3, 4, 4)
    assert tuple(shown[1, 1]) == (200, 200, 200, 255) and shown[0, 0, 3] == 0


def test_the_smooth_toggle_blends_the_enlarged_input(compare, pair):
    """Nearest neighbour shows each input pixel as a flat block; smooth shows a blend at the block's edge."""
    _, before, _, _ = pair
    canvas = compare.canvas
    canvas.zoom_to(12.0, canvas.rect().center().toPointF())
    canvas.set_split(1.0)
    x, y = 4, 5  # an input pixel whose right neighbour differs
    assert tuple(before[y, x]) != tuple(before[y, x + 1])
    edge = canvas.offset + QPointF((x + 1) * SCALE - 0.1, (y + 0.5) * SCALE) * canvas.zoom
    assert shown(canvas, edge) == tuple(before[y, x])
    compare.smooth_action.trigger()
    assert canvas.smooth
    blended = shown(canvas, edge)
    assert blended != tuple(before[y, x]) and blended != tuple(before[y, x + 1])


# ------------------------------------------------------------------------------------------ in the window


def test_compare_is_docked_steps_through_results_and_closes_with_escape(qtbot, tmp_path):
    from gui_helpers import make_window, run, use_golden, write_png

    window = make_window(qtbot, tmp_path)
    for seed, name in enumerate(("a", "b", "c")):
        write_png(tmp_path / f"{name}.png", seed=seed)
    (tmp_path / "bad.png").write_bytes(b"not a PNG")
    use_golden(window, tmp_path / "out")
    window.add_paths([tmp_path / "a.png", tmp_path / "bad.png", tmp_path / "b.png", tmp_path / "c.png"])
    run(qtbot, window)
    window.view.selectRow(0)
    window.compare_action.trigger()
    dock = window.compare_dock
    assert (
        dock.isVisible()
        and not dock.isFloating()
        and window.dockWidgetArea(dock) == Qt.DockWidgetArea.BottomDockWidgetArea
    )
    assert window.compare.canvas.isVisible() and window.compare.canvas.window() is window
    ids = [item.id for item in window.queue.items]
    assert window.comparison.item == ids[0] and not window.compare.previous_action.isEnabled()
    qtbot.keyClick(window.compare.canvas, Qt.Key.Key_PageDown)
    assert window.comparison.item == ids[2], "next skips the failed item"
    assert "b.png" in window.compare.title.text()
    window.compare.next_action.trigger()
    assert window.comparison.item == ids[3] and not window.compare.next_action.isEnabled()
    window.compare.previous_action.trigger()
    assert window.comparison.item == ids[2]
    dock.setFloating(True)
    assert dock.isWindow(), "it can also be its own window"
    dock.setFloating(False)
    window.compare.canvas.setFocus()
    qtbot.keyClick(window.compare.canvas, Qt.Key.Key_Escape)
    assert not dock.isVisible() and window.comparison.item is None


def test_the_split_is_a_place_in_each_picture_and_labels_follow_the_sides(qtbot, tmp_path):
    """Each result keeps its own split as a fraction of its picture (the middle at first), also when the window is
    maximised or the view zoomed; a side's label shows only while that side does."""
    from gui_helpers import make_window, run, use_golden, write_png

    window = make_window(qtbot, tmp_path)
    for seed, name in enumerate(("a", "b")):
        write_png(tmp_path / f"{name}.png", seed=seed)
    use_golden(window, tmp_path / "out")
    window.add_paths([tmp_path / "a.png", tmp_path / "b.png"])
    run(qtbot, window)
    first, second = (item.id for item in window.queue.items)
    assert window.comparison.open(first)
    canvas = window.compare.canvas
    middle = canvas.image_rect().center().x()
    assert canvas.split == 0.5 and canvas.split_x() == pytest.approx(middle)
    press, to = (
        QPoint(round(canvas.split_x()), canvas.height() // 2),
        canvas.image_rect().left() + 0.3 * canvas.image_rect().width(),
    )
    qtbot.mousePress(canvas, Qt.MouseButton.LeftButton, pos=press)
    qtbot.mouseMove(canvas, QPoint(round(to), canvas.height() // 2))
    qtbot.mouseRelease(canvas, Qt.MouseButton.LeftButton, pos=QPoint(round(to), canvas.height() // 2))
    assert canvas.split == pytest.approx(0.3, abs=0.02)
    window.compare.next_action.trigger()
    assert window.comparison.item == second and canvas.split == 0.5, "the next picture starts in its middle"
    window.showMaximized()
    qtbot.waitUntil(lambda: canvas.image_rect().center().x() == pytest.approx(canvas.split_x(), abs=1))
    window.compare.previous_action.trigger()
    assert canvas.split == pytest.approx(0.3, abs=0.02), "the first picture keeps its own split"
    rect = canvas.image_rect()
    assert canvas.split_x() == pytest.approx(rect.left() + canvas.split * rect.width())
    canvas.zoom_to(canvas.zoom * 3, QPointF(canvas.split_x(), canvas.height() / 2))
    rect = canvas.image_rect()
    assert canvas.split_x() == pytest.approx(rect.left() + canvas.split * rect.width()), "zoom keeps the place"

    def label_shown(left: bool) -> bool:
        """White label text inside the dark box at that side's top corner."""
        picture = canvas.grab().toImage()
        rect = canvas.image_rect()
        xs = (
            range(round(rect.left()) + 10, round(rect.left()) + 60)
            if left
            else range(round(rect.right()) - 40, round(rect.right()) - 10)
        )
        colours = [picture.pixelColor(x, y) for x in xs for y in range(10, 26)]
        return sum(min(c.red(), c.green(), c.blue()) > 200 for c in colours) > 5

    plain = []  # dark pictures, so only a label puts white in a corner
    for colour in (Qt.GlobalColor.darkBlue, Qt.GlobalColor.darkGreen):
        picture = QImage(canvas.after.size(), QImage.Format.Format_RGB888)
        picture.fill(colour)
        plain.append(picture)
    canvas.set_images(*plain)
    canvas.set_split(1.0)  # all input: no "After" label over it
    assert label_shown(left=True) and not label_shown(left=False)
    canvas.set_split(0.0)
    assert label_shown(left=False) and not label_shown(left=True)
