"""Batch planning shared by the front ends: which files of a folder are inputs, and where each output goes.

The CLI and the desktop app both use these, so a folder yields the same inputs and the same output names in
either, and neither can let two inputs write the same output file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import OutputError
from .images import extension_for, is_image_name, output_format

__all__ = ["find_images", "output_path", "OutputClaims"]

FALLBACK_FORMAT = "PNG"


def find_images(
    root: Path,
    recursive: bool,
    exclude: Path | None = None,
    on_skipped: Callable[[Path], None] | None = None,
) -> Iterator[tuple[Path, Path]]:
    """``(file, subfolder relative to root)`` for each image file in ``root`` (and below when ``recursive``),
    sorted. Hidden files and folders and the ``exclude`` folder (e.g. the output folder) are left out; other
    non-image files are passed to ``on_skipped``."""
    excluded = exclude.resolve() if exclude is not None else None
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (here / d).resolve() != excluded)
        if not recursive:
            dirs.clear()
        for name in sorted(files):
            if name.startswith("."):
                continue
            if is_image_name(name):
                yield here / name, here.relative_to(root)
            elif on_skipped is not None:
                on_skipped(here / name)


def output_path(source: Path, subfolder: Path | None, output_dir: Path | None, suffix: str, fmt: str | None) -> Path:
    """Where the upscaled ``source`` goes: beside it, or under ``output_dir`` keeping ``subfolder``.

    ``suffix`` is already formatted (e.g. ``_x4``). ``fmt`` None keeps the input's format when it can be
    written, else PNG; otherwise it is a format name ``images.write_image`` accepts.
    """
    if "/" in suffix or os.sep in suffix:
        raise OutputError(f"the suffix {suffix!r} contains a path separator; choose an output folder instead")
    try:
        same = output_format(source)
    except OutputError:
        same = None
    fmt = fmt or same or FALLBACK_FORMAT
    extension = source.suffix if fmt == same else extension_for(fmt)
    name = f"{source.stem}{suffix}{extension}"
    if output_dir is None:
        return source.with_name(name)
    return output_dir / (subfolder or Path()) / name


class OutputClaims:
    """Remembers which input each output belongs to in one run, so no output replaces an input or another
    input's output."""

    def __init__(self, sources: list[Path]) -> None:
        self._sources = {p.resolve() for p in sources}
        self._claimed: dict[Path, Path] = {}

    def conflict(self, source: Path, target: Path) -> str | None:
        """Why ``source`` may not write ``target`` (a message), or None after recording the claim."""
        key = target.resolve()
        if key in self._sources:
            return f"the output {target} would overwrite an input; change the suffix or the output folder"
        if key in self._claimed and self._claimed[key] != source.resolve():
            return f"its output {target} is already the output of {self._claimed[key]}"
        self._claimed[key] = source.resolve()
        return None
