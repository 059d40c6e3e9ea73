"""The window's saved state: the settings panel's choices (saved on every change), the window's geometry and docks,
the queue with each item's state (so a restart shows what happened) and the theme."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from PyQt6.QtCore import QByteArray, QObject, QSettings, Qt
from PyQt6.QtGui import QAction
from PyQt6.QtWidgets import QApplication, QDockWidget

from gui.settings import load_settings, save_settings
from gui.theme import THEMES, apply_theme
from gui.window_parts import WindowParts

__all__ = ["QUEUE_KEY", "SETTINGS_WIDTH", "THEME_KEY", "SettingsController"]

QUEUE_KEY = "queue/items"
THEME_KEY = "ui/theme"
DEFAULT_SIZE = (1100, 660)
SETTINGS_WIDTH = 390


class SettingsController(QObject):
    """Keeps ``store`` (a ``QSettings``) and the window in step."""

    def __init__(self, parts: WindowParts, store: QSettings) -> None:
        super().__init__(parts.window)
        self.parts = parts
        self.store = store
        self.theme_actions: dict[str, QAction] = {}
        """View > Theme's actions, by theme name (filled by the window)."""

    def load(self) -> None:
        """Show the saved settings in the panel and save every change from now on."""
        panel = self.parts.panel
        panel.set_settings(load_settings(self.store))
        panel.changed.connect(self.save_settings)

    def save_settings(self) -> None:
        """Persist the panel's settings (called on every change) and the window layout."""
        save_settings(self.store, self.parts.panel.settings())
        self.store.setValue("window/geometry", self.parts.window.saveGeometry())
        self.store.setValue("window/state", self.parts.window.saveState())
        self.store.sync()

    def restore_window(self, settings_dock: QDockWidget, compare_dock: QDockWidget) -> None:
        """The saved size, place and docks (the comparison always starts hidden)."""
        window = self.parts.window
        geometry = self.store.value("window/geometry", QByteArray(), type=QByteArray)
        state = self.store.value("window/state", QByteArray(), type=QByteArray)
        if geometry.isEmpty() or not window.restoreGeometry(geometry):
            window.resize(*DEFAULT_SIZE)
        if state.isEmpty() or not window.restoreState(state):
            window.resizeDocks([settings_dock], [SETTINGS_WIDTH], Qt.Orientation.Horizontal)
        compare_dock.hide()

    def save_queue(self) -> None:
        """Persist the queue with each item's state, so the next start shows it again."""
        self.store.setValue(QUEUE_KEY, json.dumps(self.parts.queue.to_records()))
        self.store.sync()

    def restore_queue(self, thumbnails: Callable[[list[Path]], None]) -> None:
        """Put the last session's queue back (``thumbnails`` asks for the items' thumbnails) and say so."""
        try:
            records = json.loads(str(self.store.value(QUEUE_KEY, "[]")))
        except ValueError:
            records = []
        if not isinstance(records, list) or not records:
            return
        queue = self.parts.queue
        restored, dropped = queue.restore(records)
        self.parts.table_model.appended(restored)
        thumbnails([item.source for item in queue.items])
        gone = f"; {dropped} whose file is gone were left out" if dropped else ""
        self.parts.status(f"Restored the queue of the last session: {restored} item(s){gone}", 8000)

    def saved_theme(self) -> str:
        """The theme chosen last time ("system" at first)."""
        return str(self.store.value(THEME_KEY, "system"))

    def set_theme(self, name: str, save: bool = True) -> None:
        """View > Theme: follow the system, or force light or dark."""
        name = name if name in THEMES else "system"
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, name)
        if name in self.theme_actions:
            self.theme_actions[name].setChecked(True)
        if save:
            self.store.setValue(THEME_KEY, name)
