"""Explain mode of the compare view (LAM): the Qt-free ``gui.explain`` with the golden tiny x2 model, and the real
window under the offscreen platform: a click on the output computes the map in the background with progress, the
heat map and the DI are shown, Cancel stops it, Save map writes the PNG."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading
from pathlib import Path

import numpy as np
import pytest
from gui_helpers import (
    GOLDEN,
    as_array,
    click_output,
    make_window,
    run,
    settings_store,
    use_golden,
    write_png,
)
from PyQt6.QtCore import QPoint, QRectF, Qt
from PyQt6.QtWidgets import QFileDialog

from gui.batch_run import RunConfig
from gui.explain import ExplainModels, ExplainRequest, ExplainSource, explain, save_heatmap
from gui.main_window import MainWindow
from gui.worker import ExplainProgress
from hat_plugin import attribution, images
from hat_plugin.errors import Cancelled, OptionError
from hat_plugin.options import EngineOptions

HEIGHT, WIDTH = 16, 24


def request(pixels: np.ndarray, point=(20, 10), model: str = str(GOLDEN), from_file=True, steps=4) -> ExplainRequest:
    config = RunConfig(model=model, from_file=from_file, engine=EngineOptions(device="cpu"))
    source = ExplainSource(lambda: pixels, Path("/out/picture_x2.png"), config)
    return ExplainRequest(source, point, (pixels.shape[1] * 2, pixels.shape[0] * 2), window=8, steps=steps)


# ------------------------------------------------------------------------------------------------ Qt-free


def test_explain_maps_the_window_around_the_point_and_renders_it_at_the_output_size(tmp_path):
    pixels = write_png(tmp_path / "in.png", HEIGHT, WIDTH)
    steps: list[tuple[int, int | None]] = []
    done = explain(request(pixels), ExplainModels(), lambda d, t: steps.append((d, t)))
    assert done.corner == attribution.window_around(20, 10, 2 * WIDTH, 2 * HEIGHT, 8) == (16, 6)
    assert done.heat.shape == (2 * HEIGHT, 2 * WIDTH, 3) and done.heat.dtype == np.uint8
    assert 0.0 < done.di <= 100.0 and done.model == "weights"
    assert steps[-1] == (4, 4), "progress in steps"
    reference = attribution.lam(str(GOLDEN), pixels, 16, 6, window=8, steps=4, device="cpu")
    assert done.di == pytest.approx(reference.di, rel=1e-6), "the engine's LAM, as the API computes it"
    written = save_heatmap(tmp_path / "map", done)
    assert written == tmp_path / "map.png" and np.array_equal(images.read_image(written).pixels, done.heat)


def test_explain_refuses_a_model_of_another_scale_and_stops_when_cancelled(tmp_path):
    pixels = write_png(tmp_path / "in.png", HEIGHT, WIDTH)
    with pytest.raises(OptionError, match="upscales x4"):
        explain(request(pixels, model="hat-tiny-x4", from_file=False), ExplainModels())
    stop = threading.Event()
    stop.set()
    with pytest.raises(Cancelled):
        explain(request(pixels), ExplainModels(), cancel=stop)


# ------------------------------------------------------------------------------------------------ window


@pytest.fixture
def compared(qtbot, tmp_path) -> MainWindow:
    """A window comparing a finished x2 image, in Explain mode with 4 steps."""
    window = make_window(qtbot, tmp_path)
    write_png(tmp_path / "in.png", HEIGHT, WIDTH)
    use_golden(window, tmp_path / "out")
    window.add_paths([tmp_path / "in.png"])
    run(qtbot, window)
    assert window.comparison.open(window.queue.items[0].id)
    window.compare.canvas.set_split(1.0)  # all input: a click is never on the split handle
    window.compare.explain_action.trigger()
    window.compare.explain_bar.steps.setValue(4)
    window.compare.explain_bar.window_size.setValue(8)
    return window


def test_a_click_in_explain_mode_shows_the_heat_map_and_di_and_saves_it(qtbot, compared, tmp_path, monkeypatch):
    compare, explainer = compared.compare, compared.explainer
    plain = as_array(compare.canvas.before)
    assert compare.explain_bar.isVisibleTo(compare) and not compare.explain_bar.save_button.isEnabled()
    qtbot.mousePress(compare.canvas, Qt.MouseButton.LeftButton, pos=QPoint(10, 10))
    qtbot.mouseMove(compare.canvas, QPoint(60, 40))
    qtbot.mouseRelease(compare.canvas, Qt.MouseButton.LeftButton, pos=QPoint(60, 40))
    assert explainer.task is None, "a drag pans; only a click explains"
    click_output(qtbot, compared, 20, 10)
    assert explainer.task is not None and compare.explain_bar.busy
    qtbot.waitUntil(lambda: explainer.explanation is not None, timeout=30_000)
    done = explainer.explanation
    assert done.corner == (16, 6) and done.window == 8
    assert np.array_equal(as_array(compare.canvas.before), plain), "the input stays beside the output"
    layer = rgba(compare.canvas.overlay.toImage()).astype(int)
    assert np.array_equal(layer[..., 3], done.overlay[..., 3]), "the heat layer over both sides"
    opaque = layer[..., 3] == 255
    assert opaque.any() and np.abs(layer[opaque] - done.overlay[opaque]).max() <= 1
    assert compare.canvas.marker == QRectF(16, 6, 8, 8), "the explained window is outlined"
    assert compare.explain_bar.status.text().startswith(f"DI {done.di:.2f}")
    assert not compare.explain_bar.busy and compare.explain_bar.save_button.isEnabled()

    target = tmp_path / "saved.png"
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: (str(target), "PNG images (*.png)"))
    compare.explain_bar.save_button.click()
    assert np.array_equal(images.read_image(target).pixels, done.heat)
    assert "saved as saved.png" in compare.explain_bar.status.text()

    compare.explain_action.trigger()  # Explain off: the input again
    assert compare.canvas.overlay is None and compare.canvas.marker is None


def test_explain_uses_the_model_that_made_the_output_not_the_settings_one(qtbot, compared, tmp_path):
    """Settings changed after the run (another weights file): Explain still explains the output's own model, also
    after the queue is saved and restored; an item restored without one falls back to the settings'."""
    made_with = compared.queue.items[0].model
    assert made_with is not None and made_with.resolve() == GOLDEN.resolve()
    other = tmp_path / "other.safetensors"
    use_golden(compared, tmp_path / "out", weights_file=str(other))
    source = compared.comparison.explain_source()
    assert isinstance(source, ExplainSource)
    assert (source.config.model, source.config.from_file) == (str(made_with), True)
    compared.persistence.save_queue()
    again = make_window(qtbot, tmp_path, settings_store(tmp_path))
    assert again.queue.items[0].model == made_with
    again.queue.items[0].model = None
    assert again.comparison.open(again.queue.items[0].id)
    fallback = again.comparison.explain_source()
    assert isinstance(fallback, ExplainSource) and fallback.config.model == again.panel.settings().model_source


def test_cancel_stops_the_map_being_computed(qtbot, compared):
    compare, explainer = compared.compare, compared.explainer
    compare.explain_bar.steps.setValue(40)  # five passes or more (at most 8 steps a pass on a CPU)
    click_output(qtbot, compared, 30, 20)
    task = explainer.task
    started, cancelled = threading.Event(), threading.Event()
    seen: list[tuple[int, int]] = []

    def on_event(event) -> None:  # on the worker thread: hold the first pass until Cancel is clicked
        if isinstance(event, ExplainProgress) and event.done:
            seen.append((event.done, event.total))
            started.set()
            cancelled.wait(10)

    task.signals.reported.connect(on_event, Qt.ConnectionType.DirectConnection)
    qtbot.waitUntil(started.is_set, timeout=30_000)
    compare.explain_bar.cancel_button.click()
    cancelled.set()
    assert explainer.pool.waitForDone(30_000)
    qtbot.wait(50)  # let the task's last signals arrive
    assert len(seen) == 1 and seen[0][0] < 40, "stopped after the pass under way"
    assert explainer.task is None and explainer.explanation is None
    assert compare.explain_bar.status.text() == "Explain cancelled." and not compare.explain_bar.busy
    assert compare.canvas.overlay is None and compare.canvas.marker is None


def rgba(image) -> np.ndarray:
    """A picture's RGBA pixels (straight alpha)."""
    from gui.qimage import qimage_to_array

    return qimage_to_array(image)


def test_the_map_reads_at_any_split_and_zoom_with_a_legend_and_opacity(qtbot, compared):
    """The heat layer covers both sides, so a split at either end never hides it; its opacity is adjustable; the
    colour scale has a legend; Quick sets fewer steps; the progress text fits its bar."""
    compare, explainer = compared.compare, compared.explainer
    canvas, bar = compare.canvas, compare.explain_bar
    click_output(qtbot, compared, 20, 10)
    qtbot.waitUntil(lambda: explainer.explanation is not None, timeout=30_000)
    done = explainer.explanation
    hot = np.argwhere(done.overlay[..., 3] == 255)
    assert len(hot), "the explained window's own pixels are opaque in the layer"
    y, x = hot[len(hot) // 2]
    point = canvas.offset + QRectF(int(x), int(y), 1, 1).center() * canvas.zoom
    for split in (0.0, 1.0):
        canvas.set_split(split)
        with_map = canvas.grab().toImage().pixelColor(point.toPoint())
        bar.opacity.setValue(0)
        without = canvas.grab().toImage().pixelColor(point.toPoint())
        bar.opacity.setValue(80)
        assert with_map != without, f"the map shows with the split at {split}"
        assert with_map.red() > with_map.blue(), "in heat colours"
    legend = rgba(bar.legend.pixmap().toImage())
    row = legend[legend.shape[0] // 2, :, :3].astype(int)
    assert tuple(row[0]) == (255, 255, 255) and row[-1, 0] > 100 and row[-1, 1] < 30, "none to most used"
    assert bar.legend.isVisibleTo(compare)
    bar.quick.setChecked(True)
    assert bar.steps.value() == 10
    bar.quick.setChecked(False)
    assert bar.steps.value() == 50
    bar.progressed(42, 500)
    needed = bar.progress.fontMetrics().horizontalAdvance(bar.progress.text())
    assert bar.progress.minimumWidth() > needed + 20, "step 42 of 500 fits"
