"""The main window: a queue you drop images and videos on (with thumbnails), the settings panel (a dock that can be
hidden), Start/Cancel with overall progress and time left, and the before/after comparison docked below the queue
(for a video: source frame k beside output frame k).

The window owns the ``JobQueue``; a run's events change it only through ``batch_run.RunTracker``. Upscaling and
downloads run on a one-thread pool; model checks and thumbnails on a second one, so they never wait for a run;
the compare view's video frames on a third, so stepping through frames never waits for thumbnails.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from PyQt6.QtCore import (
    QByteArray,
    QMimeData,
    QModelIndex,
    QPoint,
    QSettings,
    QStandardPaths,
    Qt,
    QThreadPool,
    QTimer,
    QUrl,
    pyqtSignal,
)
from PyQt6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDesktopServices,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QImage,
    QKeySequence,
    QResizeEvent,
)
from PyQt6.QtWidgets import (
    QApplication,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QMenuBar,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from gui.about import AboutDialog, about_html
from gui.batch_run import ItemFinished, ItemUpdate, Job, ModelChosen, RunConfig, RunEvent, RunStopped, RunTracker
from gui.compare_view import ComparePanel
from gui.explain import ExplainSource
from gui.explainer import Explainer
from gui.formatting import format_seconds
from gui.message_bar import Action, MessageBar
from gui.models import friendly_name
from gui.qimage import qimage_to_array
from gui.qt_helpers import standard_icon
from gui.queue_model import AddResult, ItemState, JobQueue, QueueItem
from gui.queue_view import PROGRESS, THUMBNAIL, QueueTableModel, QueueView
from gui.runner import EngineCache, describe_error
from gui.settings import Settings, load_settings, save_settings
from gui.settings_panel import SettingsPanel
from gui.theme import THEMES, apply_theme
from gui.video_frames import FramePair
from gui.worker import (
    FramesFailed,
    FrameTask,
    Thumbnail,
    ThumbnailTask,
    UpscaleTask,
    VideoFrame,
    Worker,
    wait_or_abandon,
)
from hat_plugin import images
from hat_plugin.errors import HATError, OptionError
from hat_plugin.video import VIDEO_EXTENSIONS
from hat_plugin.weights import ModelEntry

__all__ = ["MainWindow", "default_paste_dir"]

PROGRESS_STEPS = 1000
SETTINGS_SHARE = 0.36
"""The most of the window's width the docked settings take on their own (the user can drag it wider)."""
COMPACT_WIDTH = 1000
"""Below this window width the toolbar shows icons only (names in tooltips)."""
CLOSE_WAIT_MS = 5000
"""How long closing waits for the work in flight to stop before leaving it behind."""
DROP_HINT = (
    "<p style='font-size:15pt'>Drop images, videos or folders here</p>"
    "<p>or use <b>Add files…</b> (Ctrl+O), <b>Add folder…</b> (Ctrl+Shift+O), or paste an image (Ctrl+V).</p>"
    "<p>The bundled models work offline; bigger ones are downloaded when first used.</p>"
)
IMAGE_PATTERNS = " ".join(f"*{ext}" for ext in images.IMAGE_EXTENSIONS)
VIDEO_PATTERNS = " ".join(f"*{ext}" for ext in sorted(VIDEO_EXTENSIONS))
QUEUE_KEY = "queue/items"
THEME_KEY = "ui/theme"


def _menu(parent: QMenuBar | QMenu, title: str) -> QMenu:
    menu = parent.addMenu(title)
    assert menu is not None
    return menu


def default_paste_dir() -> Path:
    """Where pasted images are saved so they can be queued (and their outputs written beside them)."""
    pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
    return Path(pictures or Path.home()) / "HAT pasted"


class MainWindow(QMainWindow):
    """The app's window. ``store`` holds the settings and the queue (a temporary one in tests); ``paste_dir``
    receives pasted images."""

    run_finished = pyqtSignal()
    """A run ended (all items processed, cancelled, or stopped by a model problem)."""

    def __init__(self, store: QSettings | None = None, paste_dir: Path | None = None) -> None:
        super().__init__()
        self.setWindowTitle("HAT Upscaler")
        self.setAcceptDrops(True)
        self.store = store if store is not None else QSettings()
        self.paste_dir = paste_dir if paste_dir is not None else default_paste_dir()
        self.close_wait_ms = CLOSE_WAIT_MS
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self.checks = QThreadPool(self)
        self.checks.setMaxThreadCount(1)
        self.frames_pool = QThreadPool(self)
        self.frames_pool.setMaxThreadCount(1)
        self.engines = EngineCache()
        self.queue = JobQueue()
        self.task: UpscaleTask | None = None
        self.tracker: RunTracker | None = None
        self.compare_item: int | None = None
        self.compared_video: FramePair | None = None
        """The finished video in the compare view (its frames are read on ``frames_pool``)."""
        self.frame_task: FrameTask | None = None
        self._frame_wanted: int | None = None
        self._frame_pending = False
        self.about_dialog: AboutDialog | None = None
        self.context_menu: QMenu | None = None
        self._thumbnail_tasks: list[ThumbnailTask] = []
        self._paste_names = itertools.count(1)
        self._closing = False

        self.table_model = QueueTableModel(self.queue, self)
        self.view = QueueView(self.table_model)
        self.panel = SettingsPanel(self.pool, self.checks)
        self.compare = ComparePanel()
        self.explainer = Explainer(self.compare, self._explain_source, self)
        self.message_bar = MessageBar()
        self.progress = QProgressBar()
        self.progress.setRange(0, PROGRESS_STEPS)
        self.progress.setValue(0)
        self.time_left = QLabel()
        self.start_button = QPushButton("Start")
        self.cancel_button = QPushButton("Cancel")
        self._ticker = QTimer(self)
        self._ticker.setInterval(1000)
        self._busy_ticker = QTimer(self)
        self._busy_ticker.setInterval(80)
        self._build_layout()
        self._build_actions()

        self.panel.set_settings(load_settings(self.store))
        self.panel.changed.connect(self.save_settings)
        self.panel.models.downloaded.connect(self._on_model_downloaded)
        self.view.doubleClicked.connect(self._on_double_click)
        self.view.customContextMenuRequested.connect(self._on_context_menu)
        selection = self.view.selectionModel()
        assert selection is not None
        selection.selectionChanged.connect(self._update_actions)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.compare.previous_requested.connect(lambda: self.compare_step(-1))
        self.compare.next_requested.connect(lambda: self.compare_step(1))
        self.compare.close_requested.connect(self.close_compare)
        self.compare.frame_requested.connect(self.request_frame)
        self._ticker.timeout.connect(self._update_overall)
        self._busy_ticker.timeout.connect(self._repaint_busy)
        self._restore_window()
        self._restore_queue()
        self.set_theme(str(self.store.value(THEME_KEY, "system")), save=False)
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
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.message_bar)
        layout.addWidget(self.pages, 1)
        layout.addLayout(bottom)
        self.setCentralWidget(central)

        scroll = QScrollArea()
        scroll.setWidget(self.panel)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.settings_scroll = scroll
        self.settings_dock = QDockWidget("Settings", self)
        self.settings_dock.setObjectName("settingsDock")
        self.settings_dock.setWidget(scroll)
        self.settings_dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetClosable | QDockWidget.DockWidgetFeature.DockWidgetMovable
        )
        self.settings_dock.setAllowedAreas(Qt.DockWidgetArea.LeftDockWidgetArea | Qt.DockWidgetArea.RightDockWidgetArea)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.settings_dock)

        self.compare_dock = QDockWidget("Compare", self)
        self.compare_dock.setObjectName("compareDock")
        self.compare_dock.setWidget(self.compare)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.compare_dock)
        self.compare_dock.hide()
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.setCorner(Qt.Corner.TopRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self._status("Ready")

    def _action(
        self,
        text: str,
        slot: Callable[[], object],
        shortcut: str | QKeySequence.StandardKey | None = None,
        icon: QStyle.StandardPixmap | None = None,
    ) -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if icon is not None:
            action.setIcon(standard_icon(icon, self))
        action.triggered.connect(lambda _checked=False: slot())
        return action

    def _build_actions(self) -> None:
        pix = QStyle.StandardPixmap
        keys = QKeySequence.StandardKey
        self.add_files_action = self._action("Add files…", self.choose_files, keys.Open, pix.SP_FileIcon)
        self.add_folder_action = self._action("Add folder…", self.choose_folder, "Ctrl+Shift+O", pix.SP_DirIcon)
        self.paste_action = self._action("Paste", self.paste, keys.Paste)
        self.open_output_action = self._action(
            "Open output folder", self.open_output_folder, "Ctrl+Shift+F", pix.SP_DirOpenIcon
        )
        quit_action = self._action("Quit", self.close, keys.Quit)
        self.start_action = self._action("Start", self.start, "Ctrl+Return", pix.SP_MediaPlay)
        self.cancel_action = self._action("Cancel", self.cancel, "Ctrl+.", pix.SP_MediaStop)
        self.retry_action = self._action("Retry failed", self.retry_failed, None, pix.SP_BrowserReload)
        self.remove_action = self._action("Remove", self.remove_selected, keys.Delete, pix.SP_TrashIcon)
        self.clear_action = self._action("Clear finished", self.clear_finished, None, pix.SP_DialogResetButton)
        self.compare_action = self._action("Compare", self.compare_selected, "Ctrl+D", pix.SP_FileDialogContentsView)
        self.about_action = self._action("About HAT Upscaler", self.show_about)
        settings_action = self.settings_dock.toggleViewAction()
        assert settings_action is not None
        self.settings_action = settings_action
        settings_action.setText("Settings panel")
        settings_action.setShortcut(QKeySequence("Ctrl+,"))
        settings_action.setIcon(standard_icon(pix.SP_FileDialogDetailedView, self))

        menu_bar = self.menuBar()
        assert menu_bar is not None
        file_menu = _menu(menu_bar, "&File")
        for action in (self.add_files_action, self.add_folder_action, self.paste_action, self.open_output_action):
            file_menu.addAction(action)
        file_menu.addSeparator()
        file_menu.addAction(quit_action)
        queue_menu = _menu(menu_bar, "&Queue")
        for action in (
            self.start_action,
            self.cancel_action,
            self.retry_action,
            self.remove_action,
            self.clear_action,
            self.compare_action,
        ):
            queue_menu.addAction(action)
        view_menu = _menu(menu_bar, "&View")
        view_menu.addAction(self.settings_action)
        theme_menu = _menu(view_menu, "Theme")
        self.theme_actions: dict[str, QAction] = {}
        group = QActionGroup(self)
        for name in THEMES:
            action = QAction(name.capitalize(), self)
            action.setCheckable(True)
            action.triggered.connect(lambda _checked=False, name=name: self.set_theme(name))
            group.addAction(action)
            theme_menu.addAction(action)
            self.theme_actions[name] = action
        help_menu = _menu(menu_bar, "&Help")
        help_menu.addAction(self.about_action)

        toolbar = self.addToolBar("Queue")
        assert toolbar is not None
        toolbar.setObjectName("queueToolbar")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for action in (
            self.add_files_action,
            self.add_folder_action,
            self.retry_action,
            self.remove_action,
            self.clear_action,
            self.compare_action,
            self.open_output_action,
        ):
            toolbar.addAction(action)
        toolbar.addSeparator()
        toolbar.addAction(self.settings_action)
        self.toolbar = toolbar
        self.start_button.setIcon(self.start_action.icon())
        self.cancel_button.setIcon(self.cancel_action.icon())

    def _restore_window(self) -> None:
        geometry = self.store.value("window/geometry", QByteArray(), type=QByteArray)
        state = self.store.value("window/state", QByteArray(), type=QByteArray)
        if geometry.isEmpty() or not self.restoreGeometry(geometry):
            self.resize(1100, 660)
        if state.isEmpty() or not self.restoreState(state):
            self.resizeDocks([self.settings_dock], [390], Qt.Orientation.Horizontal)
        self.compare_dock.hide()

    # ------------------------------------------------------------------------------------------- adding

    def add_paths(self, paths: Sequence[Path]) -> AddResult:
        """Queue image and video files and those in folders; say what was not added and why."""
        result = self.queue.add_paths(paths, recursive=self.panel.settings().recursive)
        self.table_model.appended(len(result.added))
        self._report_added(result)
        self._request_thumbnails([item.source for item in result.added])
        self._update_actions()
        return result

    def _count(self, items: Sequence[QueueItem]) -> str:
        """``3 images``, ``1 video``, ``2 images and 1 video``."""
        videos = sum(item.is_video for item in items)
        parts = [(len(items) - videos, "image"), (videos, "video")]
        shown = [f"{n} {word}{'s' if n != 1 else ''}" for n, word in parts if n]
        return " and ".join(shown) or "nothing"

    def _report_added(self, result: AddResult) -> None:
        def listing(paths: list[tuple[Path, str]]) -> str:
            shown = ", ".join(f"{p.name} ({why})" for p, why in paths[:3])
            return shown + ("…" if len(paths) > 3 else "")

        rejected = [(p, result.reasons.get(p, "not an image or video file")) for p in result.rejected]
        not_added = listing(rejected + result.skipped)
        if (rejected or result.skipped) and not result.added:
            self._show(
                f"Not added: {not_added}. Drop PNG, JPEG, WebP, TIFF or other image files, MKV, MP4, MOV or other "
                "videos, or folders of them.",
                "error",
            )
        elif rejected or result.skipped:
            self._show(f"Added {self._count(result.added)}. Not added: {not_added}.", "info")
        elif result.duplicates and not result.added:
            self._show(f"Already in the queue: {', '.join(p.name for p in result.duplicates[:3])}", "info")
        elif result.added:
            self.message_bar.dismiss()
            self._status(f"Added {self._count(result.added)}", 5000)

    def choose_files(self) -> None:
        """File > Add files… (images and videos)"""
        files, _ = QFileDialog.getOpenFileNames(
            self,
            "Add images or videos",
            "",
            f"Images and videos ({IMAGE_PATTERNS} {VIDEO_PATTERNS});;Images ({IMAGE_PATTERNS});;"
            f"Videos ({VIDEO_PATTERNS});;All files (*)",
        )
        if files:
            self.add_paths([Path(f) for f in files])

    def choose_folder(self) -> None:
        """File > Add folder…"""
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of images or videos")
        if folder:
            self.add_paths([Path(folder)])

    def paste(self) -> AddResult | None:
        """Queue files copied in a file manager, or save a copied image to ``paste_dir`` and queue it."""
        clipboard = QApplication.clipboard()
        return self._add_mime(clipboard.mimeData() if clipboard is not None else None)

    def _add_mime(self, mime: QMimeData | None) -> AddResult | None:
        if mime is None:
            return None
        files = [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
        if files:
            return self.add_paths(files)
        if mime.hasImage():
            data = mime.imageData()
            return self._add_image_data(data if isinstance(data, QImage) else None)
        self._show("Nothing to add: paste or drop image or video files, folders or an image.", "error")
        return None

    def _add_image_data(self, image: QImage | None) -> AddResult | None:
        if image is None or image.isNull():
            self._show("The pasted data is not an image.", "error")
            return None
        name = f"pasted-{time.strftime('%Y%m%d-%H%M%S')}-{next(self._paste_names)}.png"
        target = self.paste_dir / name
        try:
            images.write_image(target, images.Image(qimage_to_array(image)), overwrite=False)
        except (HATError, OSError) as exc:
            self._show(f"Could not save the pasted image: {describe_error(exc)}", "error")
            return None
        return self.add_paths([target])

    def dragEnterEvent(self, event: QDragEnterEvent | None) -> None:
        if event is None:
            return
        mime = event.mimeData()
        if mime is not None and (mime.hasUrls() or mime.hasImage()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent | None) -> None:
        if event is not None:
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent | None) -> None:
        if event is not None:
            self._add_mime(event.mimeData())
            event.acceptProposedAction()

    def _request_thumbnails(self, paths: list[Path]) -> None:
        wanted = self.table_model.thumbnails.wanted(paths)
        if not wanted:
            return
        task = ThumbnailTask(wanted, THUMBNAIL * self.devicePixelRatioF())
        task.signals.reported.connect(self._on_thumbnail)
        task.signals.finished.connect(lambda: self._forget_task(task))
        self._thumbnail_tasks.append(task)
        self.checks.start(task)

    def _on_thumbnail(self, event: object) -> None:
        if isinstance(event, Thumbnail):
            event.image.setDevicePixelRatio(self.devicePixelRatioF())
            self.table_model.thumbnail_ready(event.path, event.image)

    def _forget_task(self, task: ThumbnailTask) -> None:
        if task in self._thumbnail_tasks:
            self._thumbnail_tasks.remove(task)
        if task.cancelled:
            self.table_model.thumbnails.forget(task.paths)

    # ----------------------------------------------------------------------------------------- running

    @property
    def running(self) -> bool:
        """True while a run is in progress."""
        return self.task is not None

    def start(self) -> bool:
        """Process the queued and cancelled items in the background; False (with a message) when it cannot."""
        if self.task is not None:
            return False
        items = self.queue.startable()
        if not items:
            failed = any(item.state is ItemState.FAILED for item in self.queue.items)
            hint = "use Retry failed to try the failed ones again" if failed else "add images or videos first"
            self._show(f"Nothing to process: {hint}.", "info")
            return False
        settings = self.panel.settings()
        problem = self._model_problem(settings)
        if problem:
            self._show(problem, "error")
            return False
        try:
            config = RunConfig.from_settings(settings)
        except OptionError as exc:
            self._show(f"Cannot start: {describe_error(exc)}", "error")
            return False
        self.queue.requeue(item for item in items if item.state is ItemState.CANCELLED)
        self._run(items, config)
        return True

    def _model_problem(self, settings: Settings) -> str | None:
        if settings.use_weights_file:
            if not settings.weights_file:
                return "Choose a weights file (.pth or .safetensors) in the Model box, or pick a listed model."
            if not Path(settings.weights_file).is_file():
                return f"Weights file not found: {settings.weights_file}. Choose an existing file."
        return None

    def _run(self, items: list[QueueItem], config: RunConfig) -> None:
        task = UpscaleTask([Job(i.id, i.source, i.root) for i in items], config, self.engines)
        task.signals.reported.connect(self._on_event)
        task.signals.errored.connect(self._on_errored)
        task.signals.finished.connect(self._on_finished)
        self.task = task
        self.tracker = RunTracker(items)
        for item in items:
            self.table_model.changed(item.id)
        self.message_bar.dismiss()
        self.panel.lock(True)
        self._status(f"Processing {self._count(items)}…")
        self._ticker.start()
        self._busy_ticker.start()
        self._update_actions()
        self._update_overall()
        self.pool.start(task)

    def cancel(self) -> None:
        """Stop the run: the current image stops within a tile and writes nothing, a video between frames keeping
        its finished chunks (Start continues from them); the rest stay queued."""
        if self.task is not None and self.tracker is not None:
            self.tracker.cancelled = True
            self.task.cancel()
            self.cancel_action.setEnabled(False)
            self.cancel_button.setEnabled(False)
            self._status("Cancelling…")

    def retry_failed(self) -> None:
        """Queue the failed items again and start."""
        self.retry([item.id for item in self.queue.items if item.state is ItemState.FAILED])

    def retry(self, item_ids: Sequence[int]) -> None:
        """Queue the given finished items (failed, cancelled, skipped) again and start, or join the next run."""
        wanted = set(item_ids)
        again = self.queue.requeue(
            item for item in self.queue.items if item.id in wanted and item.state is not ItemState.DONE
        )
        for item in again:
            self.table_model.changed(item.id)
        self._update_actions()
        if again and self.task is None:
            self.start()

    def _on_event(self, event: RunEvent) -> None:
        tracker = self.tracker
        if tracker is None:
            return
        item = tracker.apply(event)
        if isinstance(event, ItemUpdate | ItemFinished | RunStopped):
            self._update_overall()
        if item is not None:
            self.table_model.changed(item.id)
            if isinstance(event, ItemFinished):
                self._update_actions()
        elif isinstance(event, ModelChosen):
            model = event.why or event.label  # the engine's sentence starts with the model's name
            self._status(f"Processing with {model}, ×{event.scale} on {event.device} in {event.precision}")
            if event.notes:
                self._show("; ".join(event.notes), "info")
        elif isinstance(event, RunStopped):
            self._on_stopped(event)

    def _on_stopped(self, event: RunStopped) -> None:
        for item in self.tracker.items if self.tracker is not None else []:
            self.table_model.changed(item.id)
        actions: list[Action] = []
        entry = self.panel.models.entry(event.model) if event.model else None
        if entry is not None:
            alternative = self._ready_alternative(entry.scale, event.model)
            if alternative is not None:
                label = friendly_name(alternative, size=False)
                actions.append((f"Use {label}", lambda: self.use_model(alternative.name)))
        actions.append(("Retry", self.start))
        self._show(event.reason, "error", actions, event.details)

    def _ready_alternative(self, scale: int, unavailable: str) -> ModelEntry | None:
        """A model of ``scale`` that works without the network: the engine's default when it is ready."""
        picker = self.panel.models
        availability = picker.availability
        default = picker.default_for(scale)
        if availability is None or default is None or default[0] == unavailable:
            return None
        return picker.entry(default[0]) if availability.is_ready(default[0]) else None

    def use_model(self, name: str) -> None:
        """Switch the Model box to ``name`` (as the user would) and start again."""
        self.panel.models.select_model(name)
        self.start()

    def _on_errored(self, exc: object) -> None:
        text = describe_error(exc) if isinstance(exc, BaseException) else str(exc)
        self._show(f"The run stopped because of an unexpected error: {text}", "error", [("Retry", self.start)])

    def _on_finished(self) -> None:
        tracker = self.tracker
        self.task = None
        self._ticker.stop()
        self._busy_ticker.stop()
        self.panel.lock(False)
        if tracker is not None:
            for item in tracker.end():
                self.table_model.changed(item.id)
            if tracker.downloaded:
                self.panel.models.check_availability()
        if self._closing:
            return
        self.save_queue()
        follow_up = tracker is not None and not tracker.cancelled and tracker.stopped is None
        if follow_up and self.queue.queued() and self.start():
            return
        self._update_actions()
        self._update_overall()
        self.time_left.clear()
        if tracker is not None:
            self._status(tracker.summary())
        self.run_finished.emit()

    def _update_overall(self) -> None:
        tracker = self.tracker
        if tracker is None:
            self.progress.setRange(0, PROGRESS_STEPS)
            self.progress.setValue(0)
            return
        fraction = tracker.fraction()
        counts = tracker.counts()
        finished = counts[ItemState.DONE] + counts[ItemState.SKIPPED]
        if fraction is None and self.task is not None:
            self.progress.setRange(0, 0)  # busy: the model loads or the first tile is being computed
        else:
            self.progress.setRange(0, PROGRESS_STEPS)
            self.progress.setValue(round(PROGRESS_STEPS * (fraction or 0.0)))
        self.progress.setFormat(f"{finished} of {len(tracker.items)} done")
        if self.task is not None:
            current = tracker.current
            if current is not None and current.state in (ItemState.LOADING, ItemState.DOWNLOADING):
                self.time_left.setText(current.state.value + "…")
            else:
                estimate = tracker.time_left()
                self.time_left.setText(f"{format_seconds(estimate)} left" if estimate is not None else "estimating…")

    def _repaint_busy(self) -> None:
        current = self.tracker.current if self.tracker is not None else None
        if current is not None and current.total == 0:
            row = self.queue.row_of(current.id)
            index = self.table_model.index(row, PROGRESS)
            self.table_model.dataChanged.emit(index, index)

    # ---------------------------------------------------------------------------------------- editing

    def remove_selected(self) -> None:
        """Remove the selected items that are not being processed."""
        self.remove(self.view.selected_ids())

    def remove(self, item_ids: Sequence[int]) -> None:
        """Remove the given items that are not part of the run in progress."""
        busy = {i.id for i in self.tracker.items} if self.tracker is not None and self.task is not None else set()
        if self.queue.remove([i for i in item_ids if i not in busy]):
            self.table_model.reset()
            if self.compare_item is not None and self.queue.find(self.compare_item) is None:
                self.close_compare()
        self._update_actions()

    def clear_finished(self) -> None:
        """Remove done and skipped items from the list (their files stay on disk)."""
        if self.queue.remove_finished():
            self.table_model.reset()
        self._update_actions()

    # ------------------------------------------------------------------------------------ menus, folders

    def build_context_menu(self, item_ids: Sequence[int]) -> QMenu:
        """The queue's context menu for the given items: open, show in folder, compare, retry, remove."""
        menu = QMenu(self)
        items = [item for item in map(self.queue.find, item_ids) if item is not None]
        first = items[0] if items else None
        target = self._file_of(first) if first is not None else None
        open_action = menu.addAction("Open", lambda: self.open_path(target) if target else None)
        show_action = menu.addAction("Show in folder", lambda: self.show_in_folder(target) if target else None)
        compare_action = menu.addAction("Compare", lambda: self.open_compare(first.id) if first else None)
        menu.addSeparator()
        retry_action = menu.addAction("Retry", lambda: self.retry([i.id for i in items]))
        remove_action = menu.addAction("Remove", lambda: self.remove([i.id for i in items]))
        for action, enabled in (
            (open_action, target is not None),
            (show_action, target is not None),
            (compare_action, first is not None and first.state is ItemState.DONE),
            (retry_action, any(i.state.finished and i.state is not ItemState.DONE for i in items)),
            (remove_action, any(not i.state.busy for i in items)),
        ):
            if action is not None:
                action.setEnabled(enabled)
        return menu

    def _on_context_menu(self, position: QPoint) -> None:
        index = self.view.indexAt(position)
        selection = self.view.selectionModel()
        selected = {i.row() for i in selection.selectedRows()} if selection is not None else set()
        if index.isValid() and index.row() not in selected:
            self.view.selectRow(index.row())
        ids = self.view.selected_ids()
        if not ids:
            return
        self.context_menu = self.build_context_menu(ids)
        viewport = self.view.viewport()
        assert viewport is not None
        self.context_menu.popup(viewport.mapToGlobal(position))

    @staticmethod
    def _file_of(item: QueueItem) -> Path:
        """The file an item stands for: its output once written, else its input."""
        return item.output if item.state is ItemState.DONE and item.output is not None else item.source

    def open_path(self, path: Path) -> bool:
        """Open a file with the system's default program."""
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))

    def show_in_folder(self, path: Path) -> bool:
        """Open the folder that holds ``path`` in the file manager."""
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path.parent)))

    def output_folder(self) -> Path | None:
        """The folder results go to: the chosen output folder, else that of the selected (or last) result."""
        chosen = self.panel.settings().output_folder
        if chosen is not None:
            return chosen
        selected = [item for item in map(self.queue.find, self.view.selected_ids()) if item is not None]
        done = [item for item in self.queue.items if item.state is ItemState.DONE and item.output is not None]
        for item in [*selected, *reversed(done)]:
            if item.output is not None:
                return item.output.parent
        return selected[0].source.parent if selected else None

    def open_output_folder(self) -> bool:
        """File > Open output folder."""
        folder = self.output_folder()
        if folder is None:
            self._show("No output folder yet: results are written beside each input unless you choose one.", "info")
            return False
        if not folder.is_dir():
            self._show(f"The output folder {folder} does not exist yet: the first result creates it.", "info")
            return False
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))

    def show_about(self) -> AboutDialog:
        """Help > About: versions and the licence of the model in use."""
        picker = self.panel.models
        entry = picker.entry(picker.shown_model)
        self.about_dialog = AboutDialog(about_html(entry, picker.weights_file if picker.use_weights_file else ""), self)
        self.about_dialog.open()
        return self.about_dialog

    def set_theme(self, name: str, save: bool = True) -> None:
        """View > Theme: follow the system, or force light or dark."""
        name = name if name in THEMES else "system"
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, name)
        self.theme_actions[name].setChecked(True)
        if save:
            self.store.setValue(THEME_KEY, name)

    # ------------------------------------------------------------------------------------------ compare

    def compare_selected(self) -> bool:
        """Show the before/after view for the first selected finished item."""
        for item_id in self.view.selected_ids():
            if self.queue.get(item_id).state is ItemState.DONE:
                return self.open_compare(item_id)
        self._show("Select a finished item to compare.", "info")
        return False

    def _done_ids(self) -> list[int]:
        return [i.id for i in self.queue.items if i.state is ItemState.DONE and i.output is not None]

    def open_compare(self, item_id: int) -> bool:
        """Show the input and the output of a finished item side by side, in the Compare dock (for a video, a frame
        of each, read in the background: the frame slider chooses which)."""
        item = self.queue.find(item_id)
        if item is None or item.state is not ItemState.DONE or item.output is None:
            return False
        title = self.table_model.shown_name(item)
        self.explainer.clear()
        if item.is_video:
            self._compare_video(FramePair(item.source, item.output), title)
        else:
            try:
                self.compare.show_files(item.source, item.output, title)
            except (HATError, ValueError, OSError) as exc:
                self._show(f"Cannot compare: {describe_error(exc)}", "error")
                return False
            self._compare_video(None)
        first_time = not self.compare_dock.isVisible()
        self.compare_item = item_id
        done = self._done_ids()
        position = done.index(item_id)
        self.compare.set_neighbours(position > 0, position < len(done) - 1)
        self.compare_dock.setWindowTitle(f"Compare — {item.source.name}")
        self.compare_dock.show()
        self.compare_dock.raise_()
        if first_time and not self.compare_dock.isFloating():
            self.resizeDocks([self.compare_dock], [max(240, int(self.height() * 0.55))], Qt.Orientation.Vertical)
        self.compare.canvas.setFocus()
        return True

    def compare_step(self, step: int) -> bool:
        """Show the previous (-1) or next (+1) finished item in the comparison."""
        done = self._done_ids()
        if self.compare_item not in done:
            return False
        position = done.index(self.compare_item) + step
        if not 0 <= position < len(done):
            return False
        self.view.selectRow(self.queue.row_of(done[position]))
        return self.open_compare(done[position])

    def close_compare(self) -> None:
        """Hide the comparison (Esc)."""
        self.compare_dock.hide()
        self.compare_item = None
        self.explainer.clear()
        self._compare_video(None)
        self.view.setFocus()

    def _compare_video(self, pair: FramePair | None, title: str = "") -> None:
        """Compare the frames of ``pair`` from now on (its poster frame first), or no video (None)."""
        previous = self.compared_video
        self.compared_video = pair
        if previous is not None and previous is not pair:
            previous.close()  # waits for a frame being read, at most one decode
        if pair is not None:
            self.compare.begin_video(title)
            self._frame_pending = False
            self.request_frame(None)

    def request_frame(self, number: int | None) -> None:
        """Show frame ``number`` of the compared video (None: its poster frame). Frames are read one at a time off
        the UI thread; while one is read, only the latest request waits (dragging the slider skips frames)."""
        pair = self.compared_video
        if pair is None:
            return
        self.explainer.clear()
        if self.frame_task is not None:
            self._frame_wanted, self._frame_pending = number, True
            return
        task = FrameTask(pair, number)
        task.signals.reported.connect(self._on_frame)
        task.signals.finished.connect(self._on_frame_task_done)
        self.frame_task = task
        self.frames_pool.start(task)

    def _on_frame(self, event: object) -> None:
        if isinstance(event, VideoFrame) and event.pair is self.compared_video:
            self.compare.show_frame(event.number, event.frames, event.before, event.after)
        elif isinstance(event, FramesFailed) and event.pair is self.compared_video:
            self.compare.video_failed(event.message)
            self._show(f"Cannot compare: {event.message}", "error")

    def _on_frame_task_done(self) -> None:
        self.frame_task = None
        if self._frame_pending:
            self._frame_pending = False
            self.request_frame(self._frame_wanted)

    def _explain_source(self) -> ExplainSource | str:
        """What Explain works on: the compared item's input (for a video, the source frame shown), its output and
        the model that made it (the settings' model for an item restored without one); or why there is nothing to
        explain."""
        item = self.queue.find(self.compare_item) if self.compare_item is not None else None
        if item is None or item.output is None:
            return "Open a finished item in the comparison first."
        try:
            config = RunConfig.from_settings(self.panel.settings())
        except OptionError as exc:
            return f"Cannot explain: {describe_error(exc)}"
        if item.model is not None:
            config = dataclasses.replace(config, model=str(item.model), from_file=True)
        pair, frame, source = self.compared_video, self.compare.frame, item.source
        if item.is_video:
            if pair is None or frame < 0:
                return "Wait for the frame to show, then click it."
            return ExplainSource(lambda: pair.read(frame)[0], item.output, config)
        return ExplainSource(lambda: images.read_image(source).pixels, item.output, config)

    def _on_double_click(self, index: QModelIndex) -> None:
        item = self.table_model.item_at(index.row())
        if item.state is ItemState.DONE:
            self.open_compare(item.id)
        elif item.state is ItemState.FAILED:
            self._show(f"{item.source.name}: {item.message}", "error", [("Retry", lambda: self.retry([item.id]))])

    # -------------------------------------------------------------------------------------------- misc

    def save_settings(self) -> None:
        """Persist the panel's settings (called on every change) and the window layout."""
        save_settings(self.store, self.panel.settings())
        self.store.setValue("window/geometry", self.saveGeometry())
        self.store.setValue("window/state", self.saveState())
        self.store.sync()

    def save_queue(self) -> None:
        """Persist the queue with each item's state, so the next start shows it again."""
        self.store.setValue(QUEUE_KEY, json.dumps(self.queue.to_records()))
        self.store.sync()

    def _restore_queue(self) -> None:
        try:
            records = json.loads(str(self.store.value(QUEUE_KEY, "[]")))
        except ValueError:
            records = []
        if not isinstance(records, list) or not records:
            return
        restored, dropped = self.queue.restore(records)
        self.table_model.appended(restored)
        self._request_thumbnails([item.source for item in self.queue.items])
        gone = f"; {dropped} whose file is gone were left out" if dropped else ""
        self._status(f"Restored the queue of the last session: {restored} item(s){gone}", 8000)

    def _on_model_downloaded(self, name: str) -> None:
        self._status(f"Model {name} downloaded", 5000)

    def _status(self, text: str, timeout_ms: int = 0) -> None:
        bar = self.statusBar()
        if bar is not None:
            bar.showMessage(text, timeout_ms)

    def _show(self, text: str, kind: str, actions: Sequence[Action] = (), details: str = "") -> None:
        self.message_bar.show_message(text, kind, actions, details)

    def _update_actions(self) -> None:
        running = self.task is not None
        startable = bool(self.queue.startable())
        self.pages.setCurrentIndex(1 if len(self.queue) else 0)
        self.start_action.setEnabled(not running and startable)
        self.start_button.setEnabled(not running and startable)
        self.cancel_action.setEnabled(running)
        self.cancel_button.setEnabled(running)
        self.retry_action.setEnabled(any(i.state is ItemState.FAILED for i in self.queue.items))
        self.clear_action.setEnabled(any(i.state.completed for i in self.queue.items))
        selected = [item for item in map(self.queue.find, self.view.selected_ids()) if item is not None]
        self.remove_action.setEnabled(any(not i.state.busy for i in selected))
        self.compare_action.setEnabled(any(i.state is ItemState.DONE for i in selected))
        self.panel.show_video_settings(any(item.is_video for item in self.queue.items))

    def resizeEvent(self, event: QResizeEvent | None) -> None:
        """In a narrow window keep the queue the widest part: the docked settings take at most
        ``SETTINGS_SHARE`` of it, and the toolbar shows icons only."""
        super().resizeEvent(event)
        width = self.width()
        dock = self.settings_dock
        narrow = width < COMPACT_WIDTH
        if narrow and dock.isVisible() and not dock.isFloating() and dock.width() > SETTINGS_SHARE * width:
            self.resizeDocks([dock], [max(int(SETTINGS_SHARE * width), 1)], Qt.Orientation.Horizontal)
        style = Qt.ToolButtonStyle.ToolButtonIconOnly if narrow else Qt.ToolButtonStyle.ToolButtonTextBesideIcon
        if self.toolbar.toolButtonStyle() != style:
            self.toolbar.setToolButtonStyle(style)

    def confirm_stop(self) -> bool:
        """Ask whether to stop the run in progress and quit; True to quit."""
        box = QMessageBox(self)
        box.setIcon(QMessageBox.Icon.Question)
        box.setWindowTitle("Stop processing?")
        box.setText("Files are being upscaled. Stop and quit?")
        box.setInformativeText(
            "Finished images and the finished chunks of a video are kept; the rest stay in the queue for the next "
            "start, which continues a video from its chunks."
        )
        stop = box.addButton("Stop and quit", QMessageBox.ButtonRole.AcceptRole)
        box.addButton("Keep running", QMessageBox.ButtonRole.RejectRole)
        box.exec()
        return box.clickedButton() is stop

    def closeEvent(self, event: QCloseEvent | None) -> None:
        if self.task is not None and not self.confirm_stop():
            if event is not None:
                event.ignore()
            return
        self._closing = True
        self.cancel()
        picker = self.panel.models
        picker.cancel_download()
        for task in self._thumbnail_tasks:
            task.cancel()
        work: list[Worker | None] = [self.task, picker.download_task]
        wait_or_abandon(self.pool, work, self.close_wait_ms)
        wait_or_abandon(self.checks, [*self._thumbnail_tasks, picker.check_task], self.close_wait_ms)
        self.explainer.shutdown(self.close_wait_ms)
        self._frame_pending = False
        if wait_or_abandon(self.frames_pool, [self.frame_task], self.close_wait_ms):
            self._compare_video(None)
        if self.tracker is not None:
            self.tracker.cancelled = True
            self.tracker.end()
        self.save_queue()
        self.save_settings()
        super().closeEvent(event)
