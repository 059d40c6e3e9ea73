"""Which file names are videos: the one list the CLI's routing, the folder walk and the desktop app share.

Kept free of heavy imports (no PyAV, no PyTorch), so checking names costs nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["VIDEO_EXTENSIONS", "WORK_SUFFIX", "WRITABLE_EXTENSIONS", "is_video_name", "output_extension"]

VIDEO_EXTENSIONS = frozenset(
    {".mkv", ".mp4", ".m4v", ".mov", ".webm", ".avi", ".y4m", ".mpg", ".mpeg", ".ts", ".m2ts", ".mts", ".wmv", ".flv"}
)
"""Extensions taken as video inputs (FFmpeg reads more; these are the ones routed to the video path)."""

WRITABLE_EXTENSIONS = (".mkv", ".mp4", ".m4v", ".mov", ".webm")
"""Containers the output can be written in."""

WORK_SUFFIX = ".hat-work"
"""Work folders (``OUT.mkv.hat-work``) hold chunk segments: never inputs."""


def is_video_name(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` has a video file extension (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def output_extension(source: str | os.PathLike[str], codec: str) -> str:
    """The container of an upscaled video when none is named: the input's when it can be written (WebM only holds
    AV1 here), else Matroska. The CLI and the desktop app name their outputs by this one rule."""
    extension = Path(source).suffix.lower()
    if extension not in WRITABLE_EXTENSIONS or (extension == ".webm" and codec != "av1"):
        return ".mkv"
    return extension
