"""Which files of a training or validation folder are usable images: found recursively, checked, counted.

Users' folders hold mixed sizes and formats, stray files, broken downloads and thumbnails. Every image file
(by extension, hidden files and folders left out) is opened; those that cannot be read are reported and skipped,
those smaller than one training patch are skipped with a count, and a folder with nothing usable is an error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image as PILImage

from ..errors import DataError, HATError
from ..images import is_image_name, read_image

__all__ = ["FolderScan", "image_files", "scan_folder"]


@dataclass
class FolderScan:
    """The result of scanning one folder: usable files (sorted, with their sizes) and what was skipped."""

    folder: Path
    files: list[Path] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    """``(height, width)`` of each usable file, as the image is displayed (EXIF orientation applied)."""
    corrupt: list[tuple[Path, str]] = field(default_factory=list)
    too_small: list[Path] = field(default_factory=list)

    def summary(self, what: str) -> str:
        """One line: how many images are used and how many were skipped, and why."""
        parts = [f"{what}: {len(self.files)} images in {self.folder}"]
        if self.too_small:
            parts.append(f"{len(self.too_small)} too small skipped")
        if self.corrupt:
            parts.append(f"{len(self.corrupt)} unreadable skipped")
        return ", ".join(parts)


def image_files(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively; hidden files and folders left out), in a stable sorted order."""
    found = []
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / n for n in names if not n.startswith(".") and is_image_name(Path(n))]
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def _probe(path: Path) -> tuple[int, int]:
    """``(height, width)`` from the file header when Pillow knows the format, else by decoding it."""
    try:
        with PILImage.open(path) as im:
            width, height = im.size
            orientation = im.getexif().get(0x0112, 1)
        return (width, height) if orientation in (5, 6, 7, 8) else (height, width)
    except (OSError, ValueError, SyntaxError, PILImage.DecompressionBombError):
        pixels = read_image(path).pixels  # formats Pillow cannot open (float TIFF); raises ImageError if broken
        return int(pixels.shape[0]), int(pixels.shape[1])


def scan_folder(folder: str | os.PathLike[str], min_side: int, what: str = "training") -> FolderScan:
    """Every usable image under ``folder``: readable, and at least ``min_side`` pixels on its shorter side.

    Raises ``DataError`` when the folder is missing or empty or nothing in it is usable.
    """
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DataError(f"{what} folder {root} does not exist or is not a folder")
    scan = FolderScan(root)
    candidates = image_files(root)
    if not candidates:
        raise DataError(
            f"{what} folder {root} has no images (looked recursively for image files: .png, .jpg, .webp, .tif, ...)"
        )
    for path in candidates:
        try:
            height, width = _probe(path)
        except (HATError, OSError) as exc:
            scan.corrupt.append((path, str(exc)))
            continue
        if min(height, width) < min_side:
            scan.too_small.append(path)
        else:
            scan.files.append(path)
            scan.sizes.append((height, width))
    if not scan.files:
        raise DataError(
            f"none of the {len(candidates)} images in {what} folder {root} is usable: "
            f"{len(scan.corrupt)} unreadable, {len(scan.too_small)} smaller than {min_side} pixels on a side"
        )
    return scan
