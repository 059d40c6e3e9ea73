"""The model box's items: a bold header per group, each model with its mark (ready or downloadable), its friendly
name and tooltip, and the entry that switches to a local weights file."""

from __future__ import annotations

from PyQt6.QtCore import QPointF, QRectF, Qt
from PyQt6.QtGui import (
    QColor,
    QFont,
    QIcon,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
    QPolygonF,
    QStandardItem,
    QStandardItemModel,
)
from PyQt6.QtWidgets import QStyle

from gui.model_list import OTHER_GROUP, WEIGHTS_FILE, Ready, model_tooltip
from gui.models import friendly_name
from gui.qt_helpers import standard_icon
from hat_plugin.weights import ModelEntry

__all__ = ["NAME_ROLE", "fill_model_items", "status_icon"]

NAME_ROLE = Qt.ItemDataRole.UserRole
"""The item data role holding the model's manifest name (or ``WEIGHTS_FILE``)."""


def status_icon(ready: bool) -> QIcon:
    """The picker's two marks, drawn so that neither looks like the combo box's arrow: a green disc with a tick
    (ready to use) and a blue cloud (downloadable)."""
    pixmap = QPixmap(32, 32)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    if ready:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("#2e9d4f"))
        painter.drawEllipse(QRectF(2, 2, 28, 28))
        painter.setPen(QPen(QColor("white"), 3.5, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        painter.drawPolyline(QPolygonF([QPointF(9, 16.5), QPointF(14, 21.5), QPointF(23, 11)]))
    else:
        cloud = QPainterPath()
        cloud.addEllipse(QRectF(3, 12, 12, 12))
        cloud.addEllipse(QRectF(9, 6, 15, 15))
        cloud.addEllipse(QRectF(17, 12, 12, 12))
        cloud.addRect(QRectF(9, 16, 14, 8))
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor("#3d7bd9"))
        painter.drawPath(cloud.simplified())
    painter.end()
    return QIcon(pixmap)


def fill_model_items(model: QStandardItemModel, groups: list[tuple[str, list[ModelEntry]]], ready: Ready) -> None:
    """Replace ``model``'s rows with ``groups`` (``model_list.model_groups``) and the weights file entry."""
    model.clear()
    for title, group in groups:
        model.appendRow(_header(title))
        for entry in group:
            item = QStandardItem(status_icon(bool(ready(entry))), friendly_name(entry))
            item.setData(entry.name, NAME_ROLE)
            item.setToolTip(model_tooltip(entry, ready(entry)))
            model.appendRow(item)
    model.appendRow(_header(OTHER_GROUP))
    other = QStandardItem(standard_icon(QStyle.StandardPixmap.SP_DirOpenIcon), "Weights file…")
    other.setData(WEIGHTS_FILE, NAME_ROLE)
    model.appendRow(other)


def _header(title: str) -> QStandardItem:
    """A group's title: bold, not selectable."""
    item = QStandardItem(title)
    item.setFlags(Qt.ItemFlag.NoItemFlags)
    font = QFont()
    font.setBold(True)
    item.setFont(font)
    return item
