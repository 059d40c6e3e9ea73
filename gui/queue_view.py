"""The queue as a Qt table: a thin model over ``JobQueue`` and a delegate drawing each item's progress bar."""

from __future__ import annotations

from PyQt6.QtCore import QAbstractTableModel, QModelIndex, QObject, Qt
from PyQt6.QtGui import QIcon, QPainter
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHeaderView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTableView,
    QWidget,
)

from gui.queue_model import ItemState, JobQueue, QueueItem, format_size

COLUMNS = ("File", "State", "Progress", "Details")
FILE, STATE, PROGRESS, DETAILS = range(len(COLUMNS))

_ICONS = {
    ItemState.QUEUED: QStyle.StandardPixmap.SP_FileIcon,
    ItemState.DOWNLOADING: QStyle.StandardPixmap.SP_ArrowDown,
    ItemState.RUNNING: QStyle.StandardPixmap.SP_MediaPlay,
    ItemState.DONE: QStyle.StandardPixmap.SP_DialogApplyButton,
    ItemState.SKIPPED: QStyle.StandardPixmap.SP_MediaSkipForward,
    ItemState.FAILED: QStyle.StandardPixmap.SP_MessageBoxCritical,
    ItemState.CANCELLED: QStyle.StandardPixmap.SP_BrowserStop,
}


def percent(item: QueueItem) -> int | None:
    """The item's progress in percent, or None when there is no bar to show."""
    if item.state is ItemState.DONE:
        return 100
    if item.state in (ItemState.RUNNING, ItemState.DOWNLOADING) and item.total > 0:
        return min(100, 100 * item.done // item.total)
    return None


class QueueTableModel(QAbstractTableModel):
    """Rows are ``JobQueue.items``; the UI thread calls ``changed``/``appended``/``removed`` after edits."""

    def __init__(self, queue: JobQueue, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.queue = queue
        self._icons: dict[ItemState, QIcon] = {}

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.queue.items)

    def columnCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole):
        if orientation is Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        item = self.queue.items[index.row()]
        column = index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(item, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == FILE:
                return str(item.source)
            if column == DETAILS:
                return "\n".join(text for text in (str(item.output or ""), item.message) if text)
        if role == Qt.ItemDataRole.DecorationRole and column == STATE:
            return self._icon(item.state)
        if role == Qt.ItemDataRole.UserRole:
            return item.id
        return None

    def _text(self, item: QueueItem, column: int) -> str | int | None:
        if column == FILE:
            return item.source.name
        if column == STATE:
            return item.state.value
        if column == PROGRESS:
            return percent(item)
        if item.state is ItemState.DONE and item.output is not None:
            took = f" ({item.seconds:.1f} s)" if item.seconds is not None else ""
            note = f"  ·  {item.message}" if item.message else ""
            return f"→ {item.output.name}{took}{note}  ·  in {item.output.parent}"
        if item.state is ItemState.RUNNING and item.total:
            return f"tile {item.done} of {item.total}"
        if item.state is ItemState.DOWNLOADING and item.done:
            total = f" of {format_size(item.total)}" if item.total else ""
            return f"{item.message}: {format_size(item.done)}{total}"
        return item.message.replace(str(item.source), item.source.name)

    def _icon(self, state: ItemState) -> QIcon:
        if state not in self._icons:
            self._icons[state] = QApplication.style().standardIcon(_ICONS[state])
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

    def reset(self) -> None:
        """Tell the view that rows were removed or reordered."""
        self.beginResetModel()
        self.endResetModel()


class ProgressDelegate(QStyledItemDelegate):
    """Paints the progress column as a native progress bar."""

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        value = index.data(Qt.ItemDataRole.DisplayRole)
        if value is None:
            super().paint(painter, option, index)
            return
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 3, -2, -3)
        bar.minimum, bar.maximum, bar.progress = 0, 100, int(value)
        bar.text = f"{int(value)}%"
        bar.textVisible = True
        bar.state = option.state | QStyle.StateFlag.State_Horizontal
        bar.palette = option.palette
        style = option.widget.style() if option.widget else QApplication.style()
        style.drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter, option.widget)


class QueueView(QTableView):
    """The queue table: one row per image, multi-select, progress drawn by ``ProgressDelegate``."""

    def __init__(self, model: QueueTableModel, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setModel(model)
        self.setItemDelegateForColumn(PROGRESS, ProgressDelegate(self))
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setAlternatingRowColors(True)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.verticalHeader().setVisible(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(FILE, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(STATE, QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(DETAILS, QHeaderView.ResizeMode.Stretch)
        self.setColumnWidth(FILE, 200)
        self.setColumnWidth(STATE, 150)
        self.setColumnWidth(PROGRESS, 120)

    def selected_ids(self) -> list[int]:
        """Ids of the selected items, in queue order."""
        rows = sorted({index.row() for index in self.selectionModel().selectedRows()})
        model = self.model()
        return [model.item_at(row).id for row in rows]
