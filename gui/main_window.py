"""The main window: a queue you drop images and videos on (with thumbnails), the settings panel (a dock that can be
hidden), Start/Cancel with overall progress and time left, and the before/after comparison docked below the queue
(for a video: source frame k beside output frame k).

The window builds the widgets and wires four controllers, each with one job: ``QueueController`` (adding,
removing, thumbnails, the context menu), ``RunController`` (Start/Cancel/Retry and the overall progress),
``CompareController`` (the comparison, video frames and what Explain works on) and ``SettingsController`` (what is
saved between sessions). Upscaling and downloads run on a one-thread pool; model checks and thumbnails on a second
one, so they never wait for a run; the compare view's video frames on a third, so stepping through frames never
waits for thumbnails.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PyQt6.QtCore import QSettings, QStandardPaths, Qt, pyqtSignal
from PyQt6.QtGui import (
    QAction,
    QActionGroup,
    QCloseEvent,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QKeySequence,
    QResizeEvent,
)
from PyQt6.QtWidgets import (
    QApplication,
    QDockWidget,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMenu,
    QMenuBar,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from gui.about import AboutDialog, about_html
from gui.compare_controller import CompareController
from gui.compare_view import ComparePanel
from gui.message_bar import MessageBar
from gui.qt_helpers import standard_icon
from gui.queue_controller import QueueController
from gui.queue_model import AddResult, ItemState, JobQueue
from gui.queue_view import QueueTableModel, QueueView
from gui.run_controller import RunController
from gui.settings_controller import SETTINGS_WIDTH, SettingsController
from gui.settings_panel import SettingsPanel
from gui.theme import THEMES
from gui.window_parts import WindowParts, one_thread_pool
from gui.worker import Worker, wait_or_abandon

__all__ = ["MainWindow", "default_paste_dir"]

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
        self.close_wait_ms = CLOSE_WAIT_MS
        work, checks = one_thread_pool(self), one_thread_pool(self)
        self.queue = JobQueue()
        self.table_model = QueueTableModel(self.queue, self)
        self.view = QueueView(self.table_model)
        self.panel = SettingsPanel(work, checks)
        self.compare = ComparePanel()
        self.message_bar = MessageBar()
        self.about_dialog: AboutDialog | None = None
        self.start_button = QPushButton("Start")
        self.cancel_button = QPushButton("Cancel")
        self.settings_dock = QDockWidget("Settings", self)
        self.compare_dock = QDockWidget("Compare", self)

        parts = WindowParts(self, self.queue, self.table_model, self.view, self.panel, self.message_bar)
        self.persistence = SettingsController(parts, self.store)
        self.runs = RunController(parts, work, self.persistence.save_queue)
        self.comparison = CompareController(parts, self.compare, self.compare_dock)
        self.queueing = QueueController(
            parts,
            checks,
            paste_dir if paste_dir is not None else default_paste_dir(),
            self.runs.busy_ids,
            self.comparison.open,
            self.runs.retry,
        )
        self.explainer = self.comparison.explainer
        self.progress = self.runs.progress
        self.time_left = self.runs.time_left
        self._build_layout()
        self._build_actions()

        self.persistence.load()
        self.panel.models.downloaded.connect(lambda name: parts.status(f"Model {name} downloaded", 5000))
        self.panel.models.failed.connect(self.message_bar.dismiss)  # one message: the picker's
        selection = self.view.selectionModel()
        assert selection is not None
        selection.selectionChanged.connect(self._update_actions)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.runs.changed.connect(self._update_actions)
        self.runs.finished.connect(self.run_finished)
        self.queueing.changed.connect(self._update_actions)
        self.queueing.changed.connect(self.runs.reset_overall)
        self.queueing.removed.connect(self.comparison.forget_removed)
        self.persistence.restore_window(self.settings_dock, self.compare_dock)
        self.persistence.restore_queue(self.queueing.request_thumbnails)
        self.persistence.set_theme(self.persistence.saved_theme(), save=False)
        self._update_actions()
        self.runs.reset_overall()

    # ------------------------------------------------------------------------------- what tests and main use

    @property
    def running(self) -> bool:
        """True while a run is in progress."""
        return self.runs.running

    def add_paths(self, paths: list[Path]) -> AddResult:
        """Queue image and video files and those in folders; say what was not added and why."""
        return self.queueing.add_paths(paths)

    def start(self) -> bool:
        """Process the queued and cancelled items in the background; False (with a message) when it cannot."""
        return self.runs.start()

    def cancel(self) -> None:
        """Stop the run in progress (what the Cancel button does)."""
        self.runs.cancel()

    def paste(self) -> AddResult | None:
        """Edit > Paste: queue copied files, or save a copied image and queue it."""
        return self.queueing.paste()

    def set_theme(self, name: str, save: bool = True) -> None:
        """View > Theme: follow the system, or force light or dark."""
        self.persistence.set_theme(name, save)

    @property
    def theme_actions(self) -> dict[str, QAction]:
        """View > Theme's actions, by theme name."""
        return self.persistence.theme_actions

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
        self.settings_dock.setObjectName("settingsDock")
        self.settings_dock.setWidget(scroll)
        self.settings_dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetClosable | QDockWidget.DockWidgetFeature.DockWidgetMovable
        )
        self.settings_dock.setAllowedAreas(Qt.DockWidgetArea.LeftDockWidgetArea | Qt.DockWidgetArea.RightDockWidgetArea)
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.settings_dock)

        self.compare_dock.setObjectName("compareDock")
        self.compare_dock.setWidget(self.compare)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.compare_dock)
        self.compare_dock.hide()
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        self.setCorner(Qt.Corner.TopRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        status = self.statusBar()
        if status is not None:
            status.showMessage("Ready")

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
        queueing, runs = self.queueing, self.runs
        self.add_files_action = self._action("Add files…", queueing.choose_files, keys.Open, pix.SP_FileIcon)
        self.add_folder_action = self._action("Add folder…", queueing.choose_folder, "Ctrl+Shift+O", pix.SP_DirIcon)
        self.paste_action = self._action("Paste", queueing.paste, keys.Paste)
        self.open_output_action = self._action(
            "Open output folder", queueing.open_output_folder, "Ctrl+Shift+F", pix.SP_DirOpenIcon
        )
        quit_action = self._action("Quit", self.close, keys.Quit)
        self.start_action = self._action("Start", runs.start, "Ctrl+Return", pix.SP_MediaPlay)
        self.cancel_action = self._action("Cancel", runs.cancel, "Ctrl+.", pix.SP_MediaStop)
        self.retry_action = self._action("Retry failed", runs.retry_failed, None, pix.SP_BrowserReload)
        self.remove_action = self._action("Remove", queueing.remove_selected, keys.Delete, pix.SP_TrashIcon)
        self.clear_action = self._action("Clear finished", queueing.clear_finished, None, pix.SP_DialogResetButton)
        self.estimate_action = self._action(
            "Estimate video time", lambda: runs.estimate(self.view.selected_ids()), None, pix.SP_MessageBoxQuestion
        )
        self.preview_action = self._action(
            "Preview video (first 5 s)", lambda: runs.preview(self.view.selected_ids()), None, pix.SP_MediaSeekForward
        )
        self.compare_action = self._action(
            "Compare", self.comparison.compare_selected, "Ctrl+D", pix.SP_FileDialogContentsView
        )
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
            self.estimate_action,
            self.preview_action,
        ):
            queue_menu.addAction(action)
        view_menu = _menu(menu_bar, "&View")
        view_menu.addAction(self.settings_action)
        theme_menu = _menu(view_menu, "Theme")
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

    def _update_actions(self) -> None:
        running, items = self.runs.running, self.queue.items
        startable = bool(self.queue.startable())
        cancellable = running and not self.runs.cancelling
        self.pages.setCurrentIndex(1 if items else 0)
        self.start_action.setEnabled(not running and startable)
        self.start_button.setEnabled(not running and startable)
        self.cancel_action.setEnabled(cancellable)
        self.cancel_button.setEnabled(cancellable)
        self.retry_action.setEnabled(any(i.state is ItemState.FAILED and i.retry for i in items))
        self.clear_action.setEnabled(any(i.state.completed for i in items))
        selected = [item for item in map(self.queue.find, self.view.selected_ids()) if item is not None]
        self.remove_action.setEnabled(any(not i.state.busy for i in selected))
        self.compare_action.setEnabled(any(i.state is ItemState.DONE for i in selected))
        self.estimate_action.setEnabled(not running and any(i.is_video for i in selected))
        self.preview_action.setEnabled(not running and any(i.is_video for i in selected))
        self.panel.show_video_settings(any(item.is_video for item in items))

    def show_about(self) -> AboutDialog:
        """Help > About: versions and the licence of the model in use."""
        picker = self.panel.models
        entry = picker.entry(picker.shown_model)
        self.about_dialog = AboutDialog(about_html(entry, picker.weights_file if picker.use_weights_file else ""), self)
        self.about_dialog.open()
        return self.about_dialog

    # ------------------------------------------------------------------------------------ window events

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
            self.queueing.add_mime(event.mimeData())
            event.acceptProposedAction()

    def resizeEvent(self, event: QResizeEvent | None) -> None:
        """In a narrow window keep the queue the widest part: the docked settings take at most
        ``SETTINGS_SHARE`` of it, and the toolbar shows icons only."""
        super().resizeEvent(event)
        width = self.width()
        dock = self.settings_dock
        narrow = width < COMPACT_WIDTH
        docked = dock.isVisible() and not dock.isFloating()
        if narrow and docked and dock.width() > SETTINGS_SHARE * width:
            self.resizeDocks([dock], [max(int(SETTINGS_SHARE * width), 1)], Qt.Orientation.Horizontal)
        elif not narrow and docked and dock.width() < SETTINGS_WIDTH:  # narrowed with the window: room again
            self.resizeDocks([dock], [SETTINGS_WIDTH], Qt.Orientation.Horizontal)
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
        if self.runs.running and not self.confirm_stop():
            if event is not None:
                event.ignore()
            return
        picker = self.panel.models
        picker.cancel_download()
        work: list[Worker | None] = [*self.runs.shutdown(), picker.download_task]
        thumbnails = self.queueing.shutdown()
        wait_or_abandon(self.runs.pool, work, self.close_wait_ms)
        wait_or_abandon(self.queueing.checks, [*thumbnails, picker.check_task], self.close_wait_ms)
        self.comparison.shutdown(self.close_wait_ms)
        QApplication.sendPostedEvents()  # what the stopped work reported last (an image it wrote is done)
        self.runs.abandon()
        self.persistence.save_queue()
        self.persistence.save_settings()
        super().closeEvent(event)
