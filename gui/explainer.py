"""The window's side of Explain mode: a click on the compare view's output starts an ``ExplainTask`` on a pool of
its own (never the UI thread, never waiting for a run), its progress and outcome go to the compare panel, Cancel
stops it, and Save map writes the heat map shown."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PyQt6.QtCore import QObject, QThreadPool
from PyQt6.QtWidgets import QFileDialog, QWidget

from gui.compare_view import ComparePanel
from gui.explain import ExplainModels, ExplainRequest, ExplainSource, Explanation, heatmap_name, save_heatmap
from gui.runner import describe_error
from gui.worker import Explained, ExplainFailed, ExplainProgress, ExplainTask, wait_or_abandon
from hat_plugin.errors import HATError

__all__ = ["Explainer"]

SourceFn = Callable[[], ExplainSource | str]
"""What the compare view shows now, or why it cannot be explained."""


class Explainer(QObject):
    """Runs the compare panel's Explain mode. ``source`` tells what is compared when a point is clicked."""

    def __init__(self, panel: ComparePanel, source: SourceFn, parent: QWidget) -> None:
        super().__init__(parent)
        self.panel = panel
        self.source = source
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self.models = ExplainModels()
        self.task: ExplainTask | None = None
        self.explanation: Explanation | None = None
        self._output: Path | None = None
        panel.explain_requested.connect(self.explain_at)
        panel.explain_toggled.connect(lambda on: None if on else self.clear())
        panel.explain_bar.cancel_requested.connect(self.cancel)
        panel.explain_bar.save_requested.connect(lambda: self.save())

    def explain_at(self, x: int, y: int) -> bool:
        """Compute the map of the window around output pixel ``(x, y)`` in the background (a map being computed
        is cancelled first)."""
        source = self.source()
        if isinstance(source, str):
            self.panel.clear_explanation(source)
            return False
        self.cancel()
        self.panel.clear_explanation()
        after = self.panel.canvas.after
        bar = self.panel.explain_bar
        request = ExplainRequest(
            source, (x, y), (after.width(), after.height()), bar.window_size.value(), bar.steps.value()
        )
        task = ExplainTask(request, self.models)
        task.signals.reported.connect(lambda event: self._on_event(task, event))
        task.signals.errored.connect(lambda exc: self._on_event(task, ExplainFailed(f"Cannot explain: {exc}")))
        task.signals.finished.connect(lambda: self._on_finished(task))
        self.task, self._output = task, source.output
        bar.running(None, request.window)
        self.pool.start(task)
        return True

    def cancel(self) -> None:
        """Stop the map being computed (it stops between passes; its outcome is ignored)."""
        if self.task is not None:
            self.task.cancel()
            self.task = None
            self.panel.explain_bar.failed("Explain cancelled.")

    def clear(self) -> None:
        """Forget the map (another item or frame is shown, or Explain was turned off)."""
        self.cancel()
        self.explanation = None
        self.panel.clear_explanation()

    def save(self, path: str | Path | None = None) -> Path | None:
        """Write the heat map shown as a PNG: to ``path``, else where the user chooses (beside the output)."""
        explanation = self.explanation
        if explanation is None or self._output is None:
            return None
        if path is None:
            suggested = str(self._output.with_name(heatmap_name(self._output, explanation)))
            path, _ = QFileDialog.getSaveFileName(self.panel, "Save the heat map", suggested, "PNG images (*.png)")
            if not path:
                return None
        try:
            written = save_heatmap(path, explanation)
        except (HATError, OSError, ValueError) as exc:
            self.panel.explain_bar.status.setText(f"Cannot save the map: {describe_error(exc)}")
            return None
        self.panel.explain_bar.status.setText(f"{describe(explanation)}  ·  saved as {written.name}")
        return written

    def shutdown(self, wait_ms: int) -> None:
        """Closing: stop the map being computed and wait for it at most ``wait_ms``."""
        task = self.task
        self.cancel()
        wait_or_abandon(self.pool, [task], wait_ms)

    def _on_event(self, task: ExplainTask, event: object) -> None:
        if task is not self.task:
            return  # a cancelled map that was still running
        bar = self.panel.explain_bar
        if isinstance(event, ExplainProgress):
            bar.progressed(event.done, event.total)
        elif isinstance(event, Explained):
            done = event.explanation
            self.explanation = done
            self.panel.show_explanation(event.heat, done.corner, done.window, describe(done))
        elif isinstance(event, ExplainFailed):
            self.panel.clear_explanation(event.message)

    def _on_finished(self, task: ExplainTask) -> None:
        if task is self.task:
            self.task = None


def describe(explanation: Explanation) -> str:
    """``DI 12.3 · 16×16 window at 40, 8 · hat-tiny-x2 · 1.2 s`` (and when the network saw a crop, say so)."""
    x, y = explanation.corner
    side = explanation.window
    crop = "" if explanation.exact else "  ·  computed on a crop around the window"
    return (
        f"DI {explanation.di:.2f}  ·  {side}×{side} window at {x}, {y}  ·  {explanation.model}  ·  "
        f"{explanation.seconds:.1f} s{crop}"
    )
