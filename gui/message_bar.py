"""An inline message strip that never blocks the window: one short sentence (info or error), buttons for what to
do about it (Retry, Use another model, ...), and the long details folded away behind a Details button."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PyQt6.QtCore import Qt
from PyQt6.QtGui import QTextOption
from PyQt6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QStyle,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from gui.qt_helpers import standard_icon

__all__ = ["Action", "MessageBar"]

Action = tuple[str, Callable[[], object]]
"""A button's label and what it does."""

_TINTS = {"info": "rgba(64, 128, 255, 40)", "error": "rgba(229, 72, 77, 55)"}
"""Translucent tints read well over both light and dark palettes."""


class MessageBar(QFrame):
    """Shows one message at a time. It never widens its parent: the sentence wraps, and the details (which may
    hold long URLs) sit in a box that wraps anywhere and scrolls."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("messageBar")
        self.kind = "info"
        self.icon = QLabel()
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.text.setMinimumWidth(60)
        self.buttons: list[QPushButton] = []
        self.details_button = QPushButton("Details")
        self.details_button.setCheckable(True)
        self.details = QPlainTextEdit()
        self.details.setReadOnly(True)
        self.details.setWordWrapMode(QTextOption.WrapMode.WrapAtWordBoundaryOrAnywhere)
        self.details.setMaximumHeight(140)
        self.details.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.close_button = QToolButton()
        self.close_button.setAutoRaise(True)
        self.close_button.setIcon(standard_icon(QStyle.StandardPixmap.SP_TitleBarCloseButton))
        self.close_button.setToolTip("Dismiss")
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.icon, 0, Qt.AlignmentFlag.AlignTop)
        top.addWidget(self.text, 1)
        top.addWidget(self.close_button, 0, Qt.AlignmentFlag.AlignTop)
        self._row = QHBoxLayout()
        self._row.setContentsMargins(0, 0, 0, 0)
        self._row.addStretch(1)
        self._row.addWidget(self.details_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addLayout(self._row)
        layout.addWidget(self.details)
        self.details_button.toggled.connect(self.details.setVisible)
        self.close_button.clicked.connect(self.dismiss)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Maximum)
        self.hide()

    def show_message(self, text: str, kind: str = "info", actions: Sequence[Action] = (), details: str = "") -> None:
        """Show ``text`` ("info" or "error"), a button per action (pressing one dismisses the message, then runs
        it) and, when ``details`` is given, a Details button that unfolds them."""
        self.kind = kind
        pixmap = (
            QStyle.StandardPixmap.SP_MessageBoxCritical
            if kind == "error"
            else QStyle.StandardPixmap.SP_MessageBoxInformation
        )
        self.icon.setPixmap(standard_icon(pixmap).pixmap(20, 20))
        self.text.setText(text)
        for button in self.buttons:
            self._row.removeWidget(button)
            button.deleteLater()
        self.buttons = []
        for index, (label, run) in enumerate(actions):
            button = QPushButton(label)
            button.clicked.connect(lambda _checked=False, run=run: self._run(run))
            self._row.insertWidget(1 + index, button)
            self.buttons.append(button)
        self.details.setPlainText(details)
        self.details_button.setChecked(False)
        self.details_button.setVisible(bool(details))
        self.details.setVisible(False)
        self.setStyleSheet(f"#messageBar {{ background: {_TINTS[kind]}; border-radius: 4px; }}")
        self.show()

    def button(self, label: str) -> QPushButton | None:
        """The action button labelled ``label``, if shown."""
        return next((b for b in self.buttons if b.text() == label), None)

    def _run(self, run: Callable[[], object]) -> None:
        self.dismiss()
        run()

    def dismiss(self) -> None:
        """Hide the message."""
        self.text.clear()
        self.details.clear()
        self.hide()
