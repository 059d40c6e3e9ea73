"""The window's queue: what is added (files, folders, drops, pastes) and what is said about it, thumbnails made on
the checks pool, removing and clearing items, the context menu and the output folder."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from PyQt6.QtCore import QMimeData, QModelIndex, QObject, QPoint, QThreadPool, QTimer, QUrl, pyqtSignal
from PyQt6.QtGui import QDesktopServices, QImage
from PyQt6.QtWidgets import QApplication, QFileDialog, QMenu

from gui.qimage import qimage_to_array
from gui.queue_model import AddResult, ItemState, QueueItem, describe_items
from gui.queue_view import THUMBNAIL
from gui.runner import describe_error
from gui.window_parts import WindowParts
from gui.worker import Thumbnail, ThumbnailTask, Worker
from hat_plugin import images
from hat_plugin.errors import HATError
from hat_plugin.video import VIDEO_EXTENSIONS

__all__ = ["IMAGE_PATTERNS", "VIDEO_PATTERNS", "QueueController"]

IMAGE_PATTERNS = " ".join(f"*{ext}" for ext in images.IMAGE_EXTENSIONS)
VIDEO_PATTERNS = " ".join(f"*{ext}" for ext in sorted(VIDEO_EXTENSIONS))


class QueueController(QObject):
    """Adds to and removes from the window's queue. ``paste_dir`` receives pasted images; ``busy_ids`` names the
    items of the run in progress (never removed); ``compare`` and ``retry`` are what the context menu offers."""

    changed = pyqtSignal()
    """Items were added or removed."""
    removed = pyqtSignal()
    """Items left the queue."""

    def __init__(
        self,
        parts: WindowParts,
        checks: QThreadPool,
        paste_dir: Path,
        busy_ids: Callable[[], set[int]],
        compare: Callable[[int], bool],
        retry: Callable[[Sequence[int]], None],
    ) -> None:
        super().__init__(parts.window)
        self.parts = parts
        self.checks = checks
        self.paste_dir = paste_dir
        self.busy_ids = busy_ids
        self.compare = compare
        self.retry = retry
        self.context_menu: QMenu | None = None
        self.thumbnail_tasks: list[ThumbnailTask] = []
        self._paste_names = itertools.count(1)
        parts.view.doubleClicked.connect(self._on_double_click)
        parts.view.customContextMenuRequested.connect(self._on_context_menu)

    # ------------------------------------------------------------------------------------------- adding

    def add_paths(self, paths: Sequence[Path]) -> AddResult:
        """Queue image and video files and those in folders; say what was not added and why."""
        result = self.parts.queue.add_paths(paths, recursive=self.parts.panel.settings().recursive)
        self.parts.table_model.appended(len(result.added))
        if result.added:  # the new rows in view (once the view has laid them out), also beside the comparison
            index = self.parts.table_model.index(self.parts.queue.row_of(result.added[-1].id), 0)
            QTimer.singleShot(0, lambda: self.parts.view.scrollTo(index))
        self._report_added(result)
        self.request_thumbnails([item.source for item in result.added])
        self.changed.emit()
        return result

    def _report_added(self, result: AddResult) -> None:
        def listing(paths: list[tuple[Path, str]]) -> str:
            shown = ", ".join(f"{p.name} ({why})" for p, why in paths[:3])
            return shown + ("…" if len(paths) > 3 else "")

        rejected = [(p, result.reasons.get(p, "not an image or video file")) for p in result.rejected]
        not_added = listing(rejected + result.skipped)
        if (rejected or result.skipped) and not result.added:
            self.parts.show(
                f"Not added: {not_added}. Drop PNG, JPEG, WebP, TIFF or other image files, MKV, MP4, MOV or other "
                "videos, or folders of them.",
                "error",
            )
        elif rejected or result.skipped:
            self.parts.show(f"Added {describe_items(result.added)}. Not added: {not_added}.", "info")
        elif result.duplicates and not result.added:
            self.parts.show(f"Already in the queue: {', '.join(p.name for p in result.duplicates[:3])}", "info")
        elif result.added:
            self.parts.message_bar.dismiss()
            self.parts.status(f"Added {describe_items(result.added)}", 5000)

    def choose_files(self) -> None:
        """File > Add files… (images and videos)"""
        files, _ = QFileDialog.getOpenFileNames(
            self.parts.window,
            "Add images or videos",
            "",
            f"Images and videos ({IMAGE_PATTERNS} {VIDEO_PATTERNS});;Images ({IMAGE_PATTERNS});;"
            f"Videos ({VIDEO_PATTERNS});;All files (*)",
        )
        if files:
            self.add_paths([Path(f) for f in files])

    def choose_folder(self) -> None:
        """File > Add folder…"""
        folder = QFileDialog.getExistingDirectory(self.parts.window, "Add a folder of images or videos")
        if folder:
            self.add_paths([Path(folder)])

    def paste(self) -> AddResult | None:
        """Queue files copied in a file manager, or save a copied image to ``paste_dir`` and queue it."""
        clipboard = QApplication.clipboard()
        return self.add_mime(clipboard.mimeData() if clipboard is not None else None)

    def add_mime(self, mime: QMimeData | None) -> AddResult | None:
        """Queue what was dropped or pasted: local files and folders, else an image."""
        if mime is None:
            return None
        files = [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
        models = [f for f in files if f.suffix.lower() in (".pth", ".safetensors") and f.is_file()]
        if models:  # weights, not images: offered as the user's models
            self.parts.panel.models.offer_to_add(models)
            files = [f for f in files if f not in models]
            if not files:
                return None
        if files:
            return self.add_paths(files)
        if mime.hasImage():
            data = mime.imageData()
            return self._add_image_data(data if isinstance(data, QImage) else None)
        self.parts.show("Nothing to add: paste or drop image or video files, folders or an image.", "error")
        return None

    def _add_image_data(self, image: QImage | None) -> AddResult | None:
        if image is None or image.isNull():
            self.parts.show("The pasted data is not an image.", "error")
            return None
        name = f"pasted-{time.strftime('%Y%m%d-%H%M%S')}-{next(self._paste_names)}.png"
        target = self.paste_dir / name
        try:
            images.write_image(target, images.Image(qimage_to_array(image)), overwrite=False)
        except (HATError, OSError) as exc:
            self.parts.show(f"Could not save the pasted image: {describe_error(exc)}", "error")
            return None
        return self.add_paths([target])

    # --------------------------------------------------------------------------------------- thumbnails

    def request_thumbnails(self, paths: list[Path]) -> None:
        """Make the thumbnails of ``paths`` not made yet, in the background."""
        wanted = self.parts.table_model.thumbnails.wanted(paths)
        if not wanted:
            return
        task = ThumbnailTask(wanted, THUMBNAIL * self.parts.window.devicePixelRatioF())
        task.signals.reported.connect(self._on_thumbnail)
        task.signals.finished.connect(lambda: self._forget_task(task))
        self.thumbnail_tasks.append(task)
        self.checks.start(task)

    def _on_thumbnail(self, event: object) -> None:
        if isinstance(event, Thumbnail):
            event.image.setDevicePixelRatio(self.parts.window.devicePixelRatioF())
            self.parts.table_model.thumbnail_ready(event.path, event.image)

    def _forget_task(self, task: ThumbnailTask) -> None:
        if task in self.thumbnail_tasks:
            self.thumbnail_tasks.remove(task)
        if task.cancelled:
            self.parts.table_model.thumbnails.forget(task.paths)

    def shutdown(self) -> list[Worker | None]:
        """Closing: cancel the thumbnails being made; returns the work to wait for."""
        for task in self.thumbnail_tasks:
            task.cancel()
        return list(self.thumbnail_tasks)

    # ---------------------------------------------------------------------------------------- editing

    def remove_selected(self) -> None:
        """Remove the selected items that are not being processed."""
        self.remove(self.parts.view.selected_ids())

    def remove(self, item_ids: Sequence[int]) -> None:
        """Remove the given items that are not part of the run in progress."""
        busy = self.busy_ids()
        if self.parts.queue.remove([i for i in item_ids if i not in busy]):
            self.parts.table_model.reset()
            self.removed.emit()
        self.changed.emit()

    def clear_finished(self) -> None:
        """Remove done and skipped items from the list (their files stay on disk)."""
        if self.parts.queue.remove_finished():
            self.parts.table_model.reset()
        self.changed.emit()

    # ------------------------------------------------------------------------------------ menus, folders

    def build_context_menu(self, item_ids: Sequence[int]) -> QMenu:
        """The queue's context menu for the given items: open, show in folder, compare, retry, remove."""
        menu = QMenu(self.parts.window)
        items = [item for item in map(self.parts.queue.find, item_ids) if item is not None]
        first = items[0] if items else None
        target = file_of(first) if first is not None else None
        open_action = menu.addAction("Open", lambda: self.open_path(target) if target else None)
        show_action = menu.addAction("Show in folder", lambda: self.show_in_folder(target) if target else None)
        compare_action = menu.addAction("Compare", lambda: self.compare(first.id) if first else None)
        menu.addSeparator()
        retry_action = menu.addAction("Retry", lambda: self.retry([i.id for i in items]))
        remove_action = menu.addAction("Remove", lambda: self.remove([i.id for i in items]))
        for action, enabled in (
            (open_action, target is not None),
            (show_action, target is not None),
            (compare_action, first is not None and first.state is ItemState.DONE),
            (retry_action, any(i.state.finished and i.state is not ItemState.DONE and i.retry for i in items)),
            (remove_action, any(not i.state.busy for i in items)),
        ):
            if action is not None:
                action.setEnabled(enabled)
        return menu

    def _on_context_menu(self, position: QPoint) -> None:
        view = self.parts.view
        index = view.indexAt(position)
        selection = view.selectionModel()
        selected = {i.row() for i in selection.selectedRows()} if selection is not None else set()
        if index.isValid() and index.row() not in selected:
            view.selectRow(index.row())
        ids = view.selected_ids()
        if not ids:
            return
        self.context_menu = self.build_context_menu(ids)
        viewport = view.viewport()
        assert viewport is not None
        self.context_menu.popup(viewport.mapToGlobal(position))

    def _on_double_click(self, index: QModelIndex) -> None:
        item = self.parts.table_model.item_at(index.row())
        if item.state is ItemState.DONE:
            self.compare(item.id)
        elif item.state is ItemState.FAILED:
            retry = [("Retry", lambda: self.retry([item.id]))] if item.retry else []
            self.parts.show(f"{item.source.name}: {item.message}", "error", retry)

    def open_path(self, path: Path) -> bool:
        """Open a file with the system's default program."""
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))

    def show_in_folder(self, path: Path) -> bool:
        """Open the folder that holds ``path`` in the file manager."""
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(path.parent)))

    def output_folder(self) -> Path | None:
        """The folder results go to: the chosen output folder, else that of the selected (or last) result."""
        chosen = self.parts.panel.settings().output_folder
        if chosen is not None:
            return chosen
        queue = self.parts.queue
        selected = [item for item in map(queue.find, self.parts.view.selected_ids()) if item is not None]
        done = [item for item in queue.items if item.state is ItemState.DONE and item.output is not None]
        for item in [*selected, *reversed(done)]:
            if item.output is not None:
                return item.output.parent
        return selected[0].source.parent if selected else None

    def open_output_folder(self) -> bool:
        """File > Open output folder."""
        folder = self.output_folder()
        if folder is None:
            self.parts.show(
                "No output folder yet: results are written beside each input unless you choose one.", "info"
            )
            return False
        if not folder.is_dir():
            self.parts.show(f"The output folder {folder} does not exist yet: the first result creates it.", "info")
            return False
        return QDesktopServices.openUrl(QUrl.fromLocalFile(str(folder)))


def file_of(item: QueueItem) -> Path:
    """The file an item stands for: its output once written, else its input."""
    return item.output if item.state is ItemState.DONE and item.output is not None else item.source
