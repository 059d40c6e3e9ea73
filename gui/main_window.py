"""The main window: a queue you drop images on, the settings panel, Start/Cancel with overall progress and time left.

The window owns the ``JobQueue`` and is the only thing that changes it; work runs in ``UpscaleTask`` on a
one-thread pool and reports back through signals.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path

from PyQt6.QtCore import (
    QByteArray,
    QMimeData,
    QModelIndex,
    QSettings,
    QStandardPaths,
    Qt,
    QThreadPool,
    QTimer,
    pyqtSignal,
)
from PyQt6.QtGui import QAction, QCloseEvent, QDragEnterEvent, QDragMoveEvent, QDropEvent, QKeySequence
from PyQt6.QtWidgets import (
    QApplication,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSplitter,
    QStackedWidget,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from gui.compare_view import CompareWindow
from gui.message_bar import MessageBar
from gui.qimage import qimage_to_array
from gui.queue_model import AddResult, ItemState, JobQueue, TimeLeft, format_seconds
from gui.queue_view import QueueTableModel, QueueView
from gui.settings import Settings, load_settings, save_settings
from gui.settings_panel import SettingsPanel
from gui.worker import EngineCache, Job, RunConfig, UpscaleTask, describe_error
from hat_plugin import images

PROGRESS_STEPS = 1000
DROP_HINT = (
    "<p style='font-size:15pt'>Drop images or folders here</p>"
    "<p>or use <b>Add images…</b> (Ctrl+O), <b>Add folder…</b> (Ctrl+Shift+O), or paste an image (Ctrl+V).</p>"
)


def default_paste_dir() -> Path:
    """Where pasted images are saved so they can be queued (and their outputs written beside them)."""
    pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
    return Path(pictures or Path.home()) / "HAT pasted"


class MainWindow(QMainWindow):
    """The app's window. ``store`` holds the settings (a temporary one in tests); ``paste_dir`` receives pastes."""

    run_finished = pyqtSignal()
    """A run ended (all items processed, cancelled, or stopped by a model problem)."""

    def __init__(self, store: QSettings | None = None, paste_dir: Path | None = None) -> None:
        super().__init__()
        self.setWindowTitle("HAT Upscaler")
        self.setAcceptDrops(True)
        self.store = store if store is not None else QSettings()
        self.paste_dir = paste_dir if paste_dir is not None else default_paste_dir()
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self.engines = EngineCache()
        self.queue = JobQueue()
        self.task: UpscaleTask | None = None
        self.compare_windows: list[CompareWindow] = []
        self._run_ids: list[int] = []
        self._stopped = False
        self._eta = TimeLeft()
        self._paste_names = itertools.count(1)
        self._bar_action = None

        self.table_model = QueueTableModel(self.queue, self)
        self.view = QueueView(self.table_model)
        self.panel = SettingsPanel(self.pool)
        self.message_bar = MessageBar()
        self.progress = QProgressBar()
        self.progress.setRange(0, PROGRESS_STEPS)
        self.progress.setValue(0)
        self.time_left = QLabel()
        self.start_button = QPushButton("Start")
        self.cancel_button = QPushButton("Cancel")
        self._ticker = QTimer(self)
        self._ticker.setInterval(1000)
        self._build_layout()
        self._build_actions()

        self.panel.set_settings(load_settings(self.store))
        self.panel.changed.connect(self.save_settings)
        self.panel.models.downloaded.connect(self._on_model_downloaded)
        self.message_bar.action_clicked.connect(self._on_bar_action)
        self.view.doubleClicked.connect(self._on_double_click)
        self.view.selectionModel().selectionChanged.connect(self._update_actions)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self._ticker.timeout.connect(self._update_overall)
        geometry = self.store.value("window/geometry", QByteArray(), type=QByteArray)
        if geometry.isEmpty() or not self.restoreGeometry(geometry):
            self.resize(1100, 640)
        self._update_actions()

    # ------------------------------------------------------------------------------------------- layout

    def _build_layout(self) -> None:
        hint = QLabel(DROP_HINT)
        hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        hint.setWordWrap(True)
        hint.setEnabled(False)
        self.pages = QStackedWidget()
        self.pages.addWidget(hint)
        self.pages.addWidget(self.view)

        bottom = QHBoxLayout()
        bottom.addWidget(self.progress, 1)
        bottom.addWidget(self.time_left)
        bottom.addWidget(self.start_button)
        bottom.addWidget(self.cancel_button)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(6, 6, 6, 6)
        left_layout.addWidget(self.message_bar)
        left_layout.addWidget(self.pages, 1)
        left_layout.addLayout(bottom)

        scroll = QScrollArea()
        scroll.setWidget(self.panel)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setMinimumWidth(self.panel.minimumSizeHint().width() + 24)
        self.splitter = QSplitter()
        self.splitter.addWidget(left)
        self.splitter.addWidget(scroll)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setSizes([700, 400])
        self.splitter.setChildrenCollapsible(False)
        self.setCentralWidget(self.splitter)
        self.statusBar().showMessage("Ready")

    def _action(self, text: str, slot, shortcut=None, icon: QStyle.StandardPixmap | None = None) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if icon is not None:
            action.setIcon(self.style().standardIcon(icon))
        action.triggered.connect(lambda _checked=False: slot())
        return action

    def _build_actions(self) -> None:
        pix = QStyle.StandardPixmap
        self.add_files_action = self._action(
            "Add images…", self.choose_files, QKeySequence.StandardKey.Open, pix.SP_FileIcon
        )
        self.add_folder_action = self._action("Add folder…", self.choose_folder, "Ctrl+Shift+O", pix.SP_DirIcon)
        self.paste_action = self._action("Paste", self.paste, QKeySequence.StandardKey.Paste)
        quit_action = self._action("Quit", self.close, QKeySequence.StandardKey.Quit)
        self.start_action = self._action("Start", self.start, "Ctrl+Return", pix.SP_MediaPlay)
        self.cancel_action = self._action("Cancel", self.cancel, "Ctrl+.", pix.SP_MediaStop)
        self.retry_action = self._action("Retry failed", self.retry_failed, None, pix.SP_BrowserReload)
        self.remove_action = self._action(
            "Remove", self.remove_selected, QKeySequence.StandardKey.Delete, pix.SP_TrashIcon
        )
        self.clear_action = self._action("Clear finished", self.clear_finished, None, pix.SP_DialogResetButton)
        self.compare_action = self._action("Compare", self.compare_selected, "Ctrl+D", pix.SP_FileDialogContentsView)
        file_menu = self.menuBar().addMenu("&File")
        for action in (self.add_files_action, self.add_folder_action, self.paste_action):
            file_menu.addAction(action)
        file_menu.addSeparator()
        file_menu.addAction(quit_action)
        queue_menu = self.menuBar().addMenu("&Queue")
        for action in (
            self.start_action,
            self.cancel_action,
            self.retry_action,
            self.remove_action,
            self.clear_action,
            self.compare_action,
        ):
            queue_menu.addAction(action)
        toolbar = self.addToolBar("Queue")
        toolbar.setObjectName("queueToolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for action in (
            self.add_files_action,
            self.add_folder_action,
            self.retry_action,
            self.remove_action,
            self.clear_action,
            self.compare_action,
        ):
            toolbar.addAction(action)
        self.start_button.setIcon(self.start_action.icon())
        self.cancel_button.setIcon(self.cancel_action.icon())

    # ------------------------------------------------------------------------------------------- adding

    def add_paths(self, paths: list[Path]) -> AddResult:
        """Queue image files and the images in folders; say what was not added and why."""
        result = self.queue.add_paths(paths, recursive=self.panel.settings().recursive)
        self.table_model.appended(len(result.added))
        self._report_added(result)
        self._update_actions()
        return result

    def _report_added(self, result: AddResult) -> None:
        names = ", ".join(p.name for p in result.rejected[:3]) + ("…" if len(result.rejected) > 3 else "")
        if result.rejected and not result.added:
            self._show(
                f"Not added: {names} — not an image file (or a folder with no images). "
                "Drop PNG, JPEG, WebP, TIFF, BMP or other image files, or folders of them.",
                "error",
            )
        elif result.rejected:
            self._show(f"Added {len(result.added)} image(s). Not added (not images): {names}", "info")
        elif result.duplicates and not result.added:
            self._show(f"Already in the queue: {', '.join(p.name for p in result.duplicates[:3])}", "info")
        elif result.added:
            self.message_bar.dismiss()
            self.statusBar().showMessage(f"Added {len(result.added)} image(s)", 5000)

    def choose_files(self) -> None:
        """File > Add images…"""
        patterns = " ".join(f"*{ext}" for ext in (".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".bmp"))
        files, _ = QFileDialog.getOpenFileNames(self, "Add images", "", f"Images ({patterns});;All files (*)")
        if files:
            self.add_paths([Path(f) for f in files])

    def choose_folder(self) -> None:
        """File > Add folder…"""
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of images")
        if folder:
            self.add_paths([Path(folder)])

    def paste(self) -> AddResult | None:
        """Queue files copied in a file manager, or save a copied image to ``paste_dir`` and queue it."""
        return self._add_mime(QApplication.clipboard().mimeData())

    def _add_mime(self, mime: QMimeData | None) -> AddResult | None:
        if mime is None:
            return None
        files = [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
        if files:
            return self.add_paths(files)
        if mime.hasImage():
            return self._add_image_data(mime.imageData())
        self._show("Nothing to add: paste or drop image files, folders or an image.", "error")
        return None

    def _add_image_data(self, image) -> AddResult | None:
        if image is None or image.isNull():
            self._show("The pasted data is not an image.", "error")
            return None
        name = f"pasted-{time.strftime('%Y%m%d-%H%M%S')}-{next(self._paste_names)}.png"
        target = self.paste_dir / name
        try:
            images.write_image(target, images.Image(qimage_to_array(image)))
        except Exception as exc:
            self._show(f"Could not save the pasted image: {describe_error(exc)}", "error")
            return None
        return self.add_paths([target])

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        mime = event.mimeData()
        if mime.hasUrls() or mime.hasImage():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        self._add_mime(event.mimeData())
        event.acceptProposedAction()

    # ----------------------------------------------------------------------------------------- running

    def start(self) -> bool:
        """Process every queued item in the background; False (with a message) when there is nothing to do."""
        if self.task is not None:
            return False
        pending = self.queue.queued()
        if not pending:
            self._show("Nothing to process: add images first (drop them here or use Add images…).", "info")
            return False
        settings = self.panel.settings()
        problem = self._model_problem(settings)
        if problem:
            self._show(problem, "error")
            return False
        task = UpscaleTask(
            [Job(i.id, i.source, i.root) for i in pending], RunConfig.from_settings(settings), self.engines
        )
        task.signals.state_changed.connect(self._on_state)
        task.signals.progress.connect(self._on_progress)
        task.signals.item_finished.connect(self._on_item_finished)
        task.signals.notice.connect(lambda text: self._show(text, "info"))
        task.signals.stopped.connect(self._on_stopped)
        task.signals.finished.connect(self._on_finished)
        self.task = task
        self._run_ids = [i.id for i in pending]
        self._stopped = False
        self._eta = TimeLeft()
        self.message_bar.dismiss()
        self.panel.lock(True)
        self.statusBar().showMessage(f"Processing {len(pending)} image(s)…")
        self._ticker.start()
        self._update_actions()
        self._update_overall()
        self.pool.start(task)
        return True

    def _model_problem(self, settings: Settings) -> str | None:
        if settings.use_weights_file:
            if not settings.weights_file:
                return "Choose a weights file (.pth or .safetensors) in the Model box, or pick a listed model."
            if not Path(settings.weights_file).is_file():
                return f"Weights file not found: {settings.weights_file}. Choose an existing file."
        elif not settings.model:
            return "Choose a model in the Model box."
        return None

    def cancel(self) -> None:
        """Stop the run: the current item stops within a tile and writes nothing; the rest stay queued."""
        if self.task is not None:
            self.task.cancel()
            self.cancel_action.setEnabled(False)
            self.cancel_button.setEnabled(False)
            self.statusBar().showMessage("Cancelling…")

    def retry_failed(self) -> None:
        """Queue failed and cancelled items again and start."""
        again = self.queue.retry()
        for item in again:
            self.table_model.changed(item.id)
        self._update_actions()
        if again and self.task is None:
            self.start()

    def _on_state(self, item_id: int, state: str, message: str) -> None:
        item = self._item(item_id)
        if item is None:
            return
        item.state, item.message, item.done, item.total = ItemState(state), message, 0, 0
        if item.state is ItemState.RUNNING:
            self._eta.start_item()
        self.table_model.changed(item_id)
        self._update_overall()

    def _on_progress(self, item_id: int, done: int, total: int) -> None:
        item = self._item(item_id)
        if item is None:
            return
        item.done, item.total = done, total
        self.table_model.changed(item_id)
        self._update_overall()

    def _on_item_finished(self, item_id: int, state: str, message: str, output: str, seconds: float) -> None:
        item = self._item(item_id)
        if item is None:
            return
        was_downloading = item.state is ItemState.DOWNLOADING
        item.state, item.message, item.seconds = ItemState(state), message, seconds
        item.output = Path(output) if output else None
        self._eta.finish_item(counted=item.state is ItemState.DONE)
        if was_downloading:
            self.panel.models.reload()
        self.table_model.changed(item_id)
        self._update_actions()
        self._update_overall()

    def _on_stopped(self, reason: str) -> None:
        self._stopped = True
        self._show(f"The run stopped: {reason}", "error", "Retry", self.retry_failed)

    def _on_finished(self) -> None:
        cancelled = self.task is not None and self.task.cancelled
        self.task = None
        self._ticker.stop()
        self.panel.lock(False)
        self.panel.models.reload()
        if not cancelled and not self._stopped and self.queue.queued():
            self.start()
            return
        self._update_actions()
        self._update_overall()
        self.time_left.clear()
        self.statusBar().showMessage(self._summary(cancelled))
        self.run_finished.emit()

    def _summary(self, cancelled: bool) -> str:
        counts = {state: 0 for state in ItemState}
        for item_id in self._run_ids:
            item = self._item(item_id)
            if item is not None:
                counts[item.state] += 1
        parts = [
            f"{counts[s]} {s.value}"
            for s in (ItemState.DONE, ItemState.SKIPPED, ItemState.FAILED, ItemState.CANCELLED, ItemState.QUEUED)
            if counts[s]
        ]
        head = "Cancelled" if cancelled else "Finished"
        return f"{head}: {', '.join(parts) or 'nothing processed'}"

    def _update_overall(self) -> None:
        run = [item for item in map(self._item, self._run_ids) if item is not None]
        if not run:
            self.progress.setValue(0)
            return
        finished = sum(item.state.finished for item in run)
        current = next((i for i in run if i.state is ItemState.RUNNING), None)
        fraction = current.done / current.total if current is not None and current.total else 0.0
        self.progress.setValue(round(PROGRESS_STEPS * (finished + fraction) / len(run)))
        if self.task is not None:
            waiting = sum(item.state is ItemState.QUEUED for item in run)
            done, total = (current.done, current.total) if current is not None else (0, 0)
            estimate = self._eta.estimate(done, total, waiting)
            self.time_left.setText(f"{format_seconds(estimate)} left" if estimate is not None else "estimating…")

    # ---------------------------------------------------------------------------------------- editing

    def remove_selected(self) -> None:
        """Remove the selected items that are not part of the run in progress."""
        busy = set(self._run_ids) if self.task is not None else set()
        if self.queue.remove([i for i in self.view.selected_ids() if i not in busy]):
            self.table_model.reset()
        self._update_actions()

    def clear_finished(self) -> None:
        """Remove done and skipped items from the list (their files stay on disk)."""
        if self.queue.remove_finished():
            self.table_model.reset()
        self._update_actions()

    # ------------------------------------------------------------------------------------------ compare

    def compare_selected(self) -> CompareWindow | None:
        """Open the before/after view for the first selected finished item."""
        for item_id in self.view.selected_ids():
            if self.queue.get(item_id).state is ItemState.DONE:
                return self.open_compare(item_id)
        self._show("Select a finished item to compare.", "info")
        return None

    def open_compare(self, item_id: int) -> CompareWindow | None:
        """Show the input and the output of a finished item side by side under a split slider."""
        item = self.queue.get(item_id)
        if item.state is not ItemState.DONE or item.output is None:
            return None
        window = CompareWindow()
        try:
            window.show_files(item.source, item.output)
        except Exception as exc:
            window.deleteLater()
            self._show(f"Cannot compare: {describe_error(exc)}", "error")
            return None
        window.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        window.destroyed.connect(
            lambda: self.compare_windows.remove(window) if window in self.compare_windows else None
        )
        self.compare_windows.append(window)
        window.show()
        return window

    def _on_double_click(self, index: QModelIndex) -> None:
        item = self.table_model.item_at(index.row())
        if item.state is ItemState.DONE:
            self.open_compare(item.id)
        elif item.state is ItemState.FAILED:
            self._show(f"{item.source.name}: {item.message}", "error", "Retry", self.retry_failed)

    # -------------------------------------------------------------------------------------------- misc

    def save_settings(self) -> None:
        """Persist the panel's settings (called on every change) and the window layout."""
        save_settings(self.store, self.panel.settings())
        self.store.setValue("window/geometry", self.saveGeometry())
        self.store.sync()

    def _on_model_downloaded(self, name: str) -> None:
        self.statusBar().showMessage(f"Model {name} downloaded", 5000)

    def _show(self, text: str, kind: str, action: str | None = None, slot=None) -> None:
        self._bar_action = slot
        self.message_bar.show_message(text, kind, action)

    def _on_bar_action(self) -> None:
        slot, self._bar_action = self._bar_action, None
        self.message_bar.dismiss()
        if slot is not None:
            slot()

    def _item(self, item_id: int):
        try:
            return self.queue.get(item_id)
        except KeyError:
            return None

    def _update_actions(self) -> None:
        running = self.task is not None
        has_queued = bool(self.queue.queued())
        self.pages.setCurrentIndex(1 if len(self.queue) else 0)
        self.start_action.setEnabled(not running and has_queued)
        self.start_button.setEnabled(not running and has_queued)
        self.cancel_action.setEnabled(running)
        self.cancel_button.setEnabled(running)
        self.retry_action.setEnabled(any(i.state in (ItemState.FAILED, ItemState.CANCELLED) for i in self.queue.items))
        self.clear_action.setEnabled(any(i.state in (ItemState.DONE, ItemState.SKIPPED) for i in self.queue.items))
        selected = self.view.selected_ids()
        self.remove_action.setEnabled(bool(selected))
        self.compare_action.setEnabled(any(self.queue.get(i).state is ItemState.DONE for i in selected))

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.task is not None:
            self.task.cancel()
        self.panel.models.cancel_download()
        self.pool.waitForDone()
        self.save_settings()
        for window in list(self.compare_windows):
            window.close()
        super().closeEvent(event)
