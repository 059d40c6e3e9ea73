"""What the window's controllers share: the queue and its table, the settings panel, the message bar and the
status line. The window builds it once and hands it to each controller."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PyQt6.QtCore import QThreadPool
from PyQt6.QtWidgets import QMainWindow

from gui.message_bar import Action, MessageBar
from gui.queue_model import JobQueue
from gui.queue_view import QueueTableModel, QueueView
from gui.settings_panel import SettingsPanel

__all__ = ["WindowParts", "one_thread_pool"]


def one_thread_pool(parent: QMainWindow) -> QThreadPool:
    """A pool that runs one task at a time (its tasks queue up in order)."""
    pool = QThreadPool(parent)
    pool.setMaxThreadCount(1)
    return pool


@dataclass(frozen=True)
class WindowParts:
    """The widgets and the queue every controller of the window reads or changes."""

    window: QMainWindow
    queue: JobQueue
    table_model: QueueTableModel
    view: QueueView
    panel: SettingsPanel
    message_bar: MessageBar

    def show(self, text: str, kind: str, actions: Sequence[Action] = (), details: str = "") -> None:
        """A sentence in the message bar (``kind``: info or error), with buttons for ``actions``."""
        self.message_bar.show_message(text, kind, actions, details)

    def status(self, text: str, timeout_ms: int = 0) -> None:
        """A line in the status bar (gone after ``timeout_ms`` when not 0)."""
        bar = self.window.statusBar()
        if bar is not None:
            bar.showMessage(text, timeout_ms)
