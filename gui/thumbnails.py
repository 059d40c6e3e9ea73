"""Queue thumbnails: small pictures of the inputs (a frame of a video), made off the UI thread (``QImage`` is
safe there) and kept."""

from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import QSize, Qt
from PyQt6.QtGui import QIcon, QImage, QImageReader, QPixmap

from gui.qimage import array_to_qimage
from hat_plugin import images
from hat_plugin.errors import HATError
from hat_plugin.files import is_regular_file
from hat_plugin.video import is_video_name, read_poster

__all__ = ["ThumbnailCache", "make_thumbnail", "poster_frame"]


def poster_frame(frames: int) -> int:
    """The frame that stands for a video of ``frames`` frames: a tenth of the way in, past a black or titled
    opening."""
    return max(frames // 10, 0)


def make_thumbnail(path: Path, size: QSize) -> QImage:
    """``path`` scaled to fit ``size`` (a null image when it is not a regular, readable image file). Qt's reader
    decodes at the small size where the format allows (JPEG); other formats go through the engine's reader."""
    if not is_regular_file(path):
        return QImage()  # never open a pipe or a device: reading it could block forever
    if is_video_name(path):
        return _video_thumbnail(path, size)
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    original = reader.size()
    if original.isValid() and not original.isEmpty():
        reader.setScaledSize(original.scaled(size, Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    if image.isNull():
        try:
            image = array_to_qimage(images.read_image(path).pixels)
        except (HATError, ValueError, MemoryError):
            return QImage()
    if image.width() > size.width() or image.height() > size.height():
        image = image.scaled(size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    return image


def _video_thumbnail(path: Path, size: QSize) -> QImage:
    """The poster frame of a video, scaled to fit ``size`` (a null image when it cannot be read)."""
    try:
        image = array_to_qimage(read_poster(path))
    except (HATError, ValueError, MemoryError):
        return QImage()
    return image.scaled(size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)


class ThumbnailCache:
    """Thumbnails by file, made once: ``wanted`` says which files still need one, ``put`` stores a finished one."""

    def __init__(self) -> None:
        self._icons: dict[Path, QIcon] = {}
        self._asked: set[Path] = set()

    def get(self, path: Path) -> QIcon | None:
        """The thumbnail of ``path`` if it was made (a null icon when the file could not be read)."""
        return self._icons.get(path)

    def wanted(self, paths: list[Path]) -> list[Path]:
        """The paths with no thumbnail made or asked for yet; they are marked as asked for."""
        new = [p for p in dict.fromkeys(paths) if p not in self._icons and p not in self._asked]
        self._asked.update(new)
        return new

    def put(self, path: Path, image: QImage) -> None:
        """Store a finished thumbnail (on the UI thread: a ``QPixmap`` is made here)."""
        self._icons[path] = QIcon(QPixmap.fromImage(image)) if not image.isNull() else QIcon()
        self._asked.discard(path)

    def forget(self, paths: list[Path]) -> None:
        """Drop asked-for marks of thumbnails that will not come (the task making them was cancelled)."""
        self._asked.difference_update(paths)
