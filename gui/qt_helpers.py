"""Small typed accessors for Qt objects that PyQt's stubs declare optional but that always exist in a running app."""

from __future__ import annotations

from PyQt6.QtGui import QIcon
from PyQt6.QtWidgets import QApplication, QStyle, QWidget

__all__ = ["standard_icon", "style_of"]


def style_of(widget: QWidget | None = None) -> QStyle:
    """The style ``widget`` is drawn with (the application's when None)."""
    style = widget.style() if widget is not None else QApplication.style()
    if style is None:
        raise RuntimeError("no Qt style: create the QApplication first")
    return style


def standard_icon(pixmap: QStyle.StandardPixmap, widget: QWidget | None = None) -> QIcon:
    """One of the style's standard icons."""
    return style_of(widget).standardIcon(pixmap)
