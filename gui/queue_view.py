"""The queue as a Qt table: a thin model over ``JobQueue`` (thumbnails, names that tell repeated file names apart,
state, progress, details) and a view whose columns always fit its width, eliding long texts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, QRect, QSize, Qt
from PyQt6.QtGui import QIcon, QPainter, QResizeEvent
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTableView,
    QWidget,
)

from gui.formatting import format_size
from gui.qt_helpers import standard_icon, style_of
from gui.queue_model import ItemState, JobQueue, QueueItem
from gui.thumbnails import ThumbnailCache

__all__ = ["COLUMNS", "DETAILS", "FILE", "PROGRESS", "STATE", "QueueTableModel", "QueueView", "progress_of"]

COLUMNS = ("File", "State", "Progress", "Details")
FILE, STATE, PROGRESS, DETAILS = range(len(COLUMNS))
PROGRESS_ROLE = Qt.ItemDataRole.UserRole + 1
"""Role of the Progress column's value: a percentage, BUSY (working, amount not known yet) or None."""
BUSY = -1
THUMBNAIL = QSize(40, 30)
NARROW_QUEUE = 640
"""Below this width (pixels) the State and Progress columns narrow."""
Index = QModelIndex | QPersistentModelIndex

_ICONS = {
    ItemState.QUEUED: QStyle.StandardPixmap.SP_FileIcon,
    ItemState.DOWNLOADING: QStyle.StandardPixmap.SP_DriveNetIcon,
    ItemState.LOADING: QStyle.StandardPixmap.SP_BrowserReload,
    ItemState.RUNNING: QStyle.StandardPixmap.SP_MediaPlay,
    ItemState.DONE: QStyle.StandardPixmap.SP_DialogApplyButton,
    ItemState.SKIPPED: QStyle.StandardPixmap.SP_MediaSkipForward,
    ItemState.FAILED: QStyle.StandardPixmap.SP_MessageBoxCritical,
    ItemState.CANCELLED: QStyle.StandardPixmap.SP_MediaPause,  # not the failed mark: Start continues it
}


def progress_of(item: QueueItem) -> int | None:
    """The item's progress in percent, ``BUSY`` while it is worked on with no measurable progress yet (the model
    loading, the first tile), or None when there is no bar to show."""
    if item.state is ItemState.DONE:
        return 100
    if item.state.busy:
        return min(100, 100 * item.done // item.total) if item.total > 0 else BUSY
    return None


class QueueTableModel(QAbstractTableModel):
    """Rows are ``JobQueue.items``; the UI thread calls ``changed``/``appended``/``reset`` after edits."""

    def __init__(self, queue: JobQueue, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.queue = queue
        self.thumbnails = ThumbnailCache()
        self._icons: dict[ItemState, QIcon] = {}
        self._names: dict[int, str] = {}
        self._names_for: tuple[int, ...] = ()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.queue.items)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if orientation is Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        item = self.queue.items[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(item, column)
        if role == PROGRESS_ROLE and column == PROGRESS:
            return progress_of(item)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tooltip(item, column)
        if role == Qt.ItemDataRole.DecorationRole:
            if column == STATE:
                return self._icon(item.state)
            if column == FILE:
                return self.thumbnails.get(item.source)
        if role == Qt.ItemDataRole.UserRole:
            return item.id
        return None

    def shown_name(self, item: QueueItem) -> str:
        """The item's name in the File column (longer than the file name only where names repeat)."""
        ids = tuple(i.id for i in self.queue.items)
        if ids != self._names_for:
            self._names, self._names_for = self.queue.shown_names(), ids
        return self._names.get(item.id, item.source.name)

    def _text(self, item: QueueItem, column: int) -> str | None:
        if column == FILE:
            return self.shown_name(item)
        if column == STATE:
            return item.state.value
        if column == PROGRESS:
            return None
        return self.details(item)

    def details(self, item: QueueItem) -> str:
        """The Details column: where the output went, what is happening, or why it failed."""
        if item.state is ItemState.DONE and item.output is not None:
            took = f" in {item.seconds:.1f} s" if item.seconds is not None else ""
            note = f"  ·  {item.message}" if item.message else ""
            return f"→ {item.output.name}{took}{note}"
        if item.state is ItemState.RUNNING and item.total:
            step = f"{'frame' if item.is_video else 'tile'} {item.done} of {item.total}"
            return f"{step}  ·  {item.message}" if item.message else step
        if item.state is ItemState.DOWNLOADING and item.done:
            total = f" of {format_size(item.total)}" if item.total else ""
            return f"{item.message}: {format_size(item.done)}{total}"
        return item.message

    def _tooltip(self, item: QueueItem, column: int) -> str | None:
        if column == FILE:
            return str(item.source)
        if column == STATE:
            return item.state.value
        if column == DETAILS:
            lines = [f"Output: {item.output}" if item.output is not None else "", self.details(item)]
            if item.message and item.message not in lines[1]:
                lines.append(item.message)
            return "\n".join(line for line in lines if line) or None
        return None

    def _icon(self, state: ItemState) -> QIcon:
        if state not in self._icons:
            self._icons[state] = standard_icon(_ICONS[state])
        return self._icons[state]

    def item_at(self, row: int) -> QueueItem:
        """The queue item shown in ``row``."""
        return self.queue.items[row]

    def changed(self, item_id: int) -> None:
        """Redraw the row of this item after its state or progress changed."""
        try:
            row = self.queue.row_of(item_id)
        except KeyError:
            return
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1))

    def appended(self, count: int) -> None:
        """Tell the view that ``count`` items were appended to the queue (call after appending)."""
        if count:
            end = len(self.queue.items)
            self.beginInsertRows(QModelIndex(), end - count, end - 1)
            self.endInsertRows()
            self._names_for = ()
            self.dataChanged.emit(self.index(0, FILE), self.index(end - 1, FILE))  # names may have grown

    def reset(self) -> None:
        """Tell the view that rows were removed or reordered."""
        self.beginResetModel()
        self._names_for = ()
        self.endResetModel()

    def thumbnail_ready(self, path: Path, image: Any) -> None:
        """Store a finished thumbnail and redraw the rows of that file."""
        self.thumbnails.put(path, image)
        for row, item in enumerate(self.queue.items):
            if item.source == path:
                self.dataChanged.emit(self.index(row, FILE), self.index(row, FILE))


class ProgressDelegate(QStyledItemDelegate):
    """Paints the progress column as a native progress bar; a moving block while the amount is not known."""

    def paint(self, painter: QPainter | None, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        value = index.data(PROGRESS_ROLE)
        if value is None or painter is None:
            super().paint(painter, option, index)
            return
        rect: QRect = option.rect
        widget = option.widget
        style = style_of(widget)
        bar = QStyleOptionProgressBar()
        bar.rect = rect.adjusted(2, 3, -2, -3)
        bar.state = option.state | QStyle.StateFlag.State_Horizontal
        bar.palette = option.palette
        bar.textVisible = True
        if value == BUSY:
            bar.minimum, bar.maximum, bar.progress, bar.text = 0, 100, 0, ""
            style.drawControl(QStyle.ControlElement.CE_ProgressBarGroove, bar, painter, widget)
            inner = bar.rect.adjusted(2, 2, -2, -2)
            block = max(inner.width() // 4, 8)
            phase = (time.monotonic() * 0.6) % 2.0
            swing = phase if phase <= 1.0 else 2.0 - phase  # back and forth, always in sight
            left = inner.left() + round(swing * (inner.width() - block))
            chunk = QRect(left, inner.top(), block, inner.height()).intersected(inner)
            painter.fillRect(chunk, option.palette.highlight())
            return
        bar.minimum, bar.maximum, bar.progress = 0, 100, int(value)
        bar.text = f"{int(value)}%"
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, widget)


class FileDelegate(QStyledItemDelegate):
    """File names elide in the middle, so the extension and the start of the name stay visible."""

    def initStyleOption(self, option: QStyleOptionViewItem | None, index: QModelIndex) -> None:
        super().initStyleOption(option, index)
        if option is not None:
            option.textElideMode = Qt.TextElideMode.ElideMiddle
            option.decorationSize = THUMBNAIL


class QueueView(QTableView):
    """The queue table: one row per image with its thumbnail, multi-select, a context menu (built by the window),
    and columns that always fit the width (File and Details share what State and Progress leave)."""

    def __init__(self, model: QueueTableModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setModel(model)
        self.setItemDelegateForColumn(PROGRESS, ProgressDelegate(self))
        self.setItemDelegateForColumn(FILE, FileDelegate(self))
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.setAlternatingRowColors(True)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.setIconSize(QSize(16, 16))
        rows = self.verticalHeader()
        header = self.horizontalHeader()
        assert rows is not None and header is not None
        rows.setVisible(False)
        rows.setDefaultSectionSize(THUMBNAIL.height() + 8)
        header.setMinimumSectionSize(48)
        metrics = self.fontMetrics()
        icon = style_of(self).pixelMetric(QStyle.PixelMetric.PM_SmallIconSize)
        state_width = max(metrics.horizontalAdvance(s.value) for s in ItemState) + icon + 24
        for column, mode in (
            (FILE, QHeaderView.ResizeMode.Stretch),
            (STATE, QHeaderView.ResizeMode.Fixed),
            (PROGRESS, QHeaderView.ResizeMode.Fixed),
            (DETAILS, QHeaderView.ResizeMode.Stretch),
        ):
            header.setSectionResizeMode(column, mode)
        self._wide = (state_width, metrics.horizontalAdvance("100%") * 2 + 40)
        self._narrow = (metrics.horizontalAdvance("running") + icon + 24, metrics.horizontalAdvance("100%") + 28)
        self._fit_columns()

    def _fit_columns(self) -> None:
        """Full State and Progress columns when there is room; narrower ones (texts elide, tooltips tell) when
        the queue is narrow, so the file names keep most of the width."""
        viewport = self.viewport()
        width = viewport.width() if viewport is not None else self.width()
        state, progress = self._wide if width >= NARROW_QUEUE else self._narrow
        self.setColumnWidth(STATE, state)
        self.setColumnWidth(PROGRESS, progress)

    def resizeEvent(self, event: QResizeEvent | None) -> None:
        self._fit_columns()
        super().resizeEvent(event)

    def selected_ids(self) -> list[int]:
        """Ids of the selected items, in queue order."""
        selection = self.selectionModel()
        rows = sorted({index.row() for index in selection.selectedRows()}) if selection is not None else []
        model = self.model()
        assert isinstance(model, QueueTableModel)
        return [model.item_at(row).id for row in rows]

    def select_item(self, row: int) -> None:
        """Select one row (as a click would)."""
        self.selectRow(row)
