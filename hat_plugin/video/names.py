"""Which file names are videos: the one list the CLI's routing, the folder walk and the desktop app share.

Kept free of heavy imports (no PyAV, no PyTorch), so checking names costs nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["VIDEO_EXTENSIONS", "WORK_SUFFIX", "is_video_name"]

VIDEO_EXTENSIONS = frozenset(
    {".mkv", ".mp4", ".m4v", ".mov", ".webm", ".avi", ".y4m", ".mpg", ".mpeg", ".ts", ".m2ts", ".mts", ".wmv", ".flv"}
)
"""Extensions taken as video inputs (FFmpeg reads more; these are the ones routed to the video path)."""

WORK_SUFFIX = ".hat-work"
"""Work folders (``OUT.mkv.hat-work``) hold chunk segments: never inputs."""


def is_video_name(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` has a video file extension (case-insensitive)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS
