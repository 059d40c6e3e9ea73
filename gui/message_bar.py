"""An inline message strip (info or error, with an optional action such as Retry) that never blocks the window."""

from __future__ import annotations

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QApplication, QFrame, QHBoxLayout, QLabel, QPushButton, QStyle, QToolButton, QWidget

_TINTS = {"info": "rgba(64, 128, 255, 40)", "error": "rgba(229, 72, 77, 55)"}
"""Translucent tints read well over both light and dark palettes."""


class MessageBar(QFrame):
    """Shows one message at a time; ``action_clicked`` fires when its button (e.g. "Retry") is pressed."""

    action_clicked = pyqtSignal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = "info"
        self.icon = QLabel()
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.action = QPushButton()
        self.close_button = QToolButton()
        self.close_button.setAutoRaise(True)
        self.close_button.setIcon(QApplication.style().standardIcon(QStyle.StandardPixmap.SP_TitleBarCloseButton))
        self.close_button.setToolTip("Dismiss")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 4, 4)
        layout.addWidget(self.icon)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.action)
        layout.addWidget(self.close_button)
        self.action.clicked.connect(self.action_clicked)
        self.close_button.clicked.connect(self.dismiss)
        self.hide()

    def show_message(self, text: str, kind: str = "info", action: str | None = None) -> None:
        """Show ``text``; ``kind`` is "info" or "error"; ``action`` labels the button (None hides it)."""
        self.kind = kind
        pixmap = (
            QStyle.StandardPixmap.SP_MessageBoxCritical
            if kind == "error"
            else (QStyle.StandardPixmap.SP_MessageBoxInformation)
        )
        self.icon.setPixmap(QApplication.style().standardIcon(pixmap).pixmap(20, 20))
        self.text.setText(text)
        self.action.setVisible(action is not None)
        self.action.setText(action or "")
        self.setObjectName("messageBar")
        self.setStyleSheet(f"#messageBar {{ background: {_TINTS[kind]}; border-radius: 4px; }}")
        self.show()

    def dismiss(self) -> None:
        """Hide the message."""
        self.text.clear()
        self.hide()
