"""FFmpeg's error messages, counted per source, so damaged data is noticed even when FFmpeg decodes on.

Many decoders conceal damage (a slice CRC mismatch in FFV1, a broken macroblock in H.264) and return a picture
anyway, saying so only in their log. PyAV forwards FFmpeg's log to Python's ``logging`` under ``libav.<name>``
once a level is set; ``ErrorLog`` sets it to errors (once, process-wide), keeps those records out of the user's
terminal, and counts them by the name of the decoder or demuxer that wrote them.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter

import av.logging

__all__ = ["ErrorLog", "error_log"]

log = logging.getLogger("hat_plugin.video")


class ErrorLog(logging.Handler):
    """Counts FFmpeg error records by source name (``ffv1``, ``h264``, ``matroska,webm``) and keeps the last one."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self._lock_counts = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._last: dict[str, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        name = record.name.removeprefix("libav.")
        message = record.getMessage().strip()
        with self._lock_counts:
            self._counts[name] += 1
            if message and not message.startswith("at "):  # FFmpeg continues some messages with "at 1.2 seconds"
                self._last[name] = message
        log.debug("FFmpeg %s: %s", name, message)

    def count(self, *names: str) -> int:
        """How many errors the sources ``names`` have reported so far in this process."""
        with self._lock_counts:
            return sum(self._counts[name] for name in names)

    def last(self, *names: str) -> str:
        """The last error message of any of ``names`` (empty when none)."""
        with self._lock_counts:
            return next((self._last[name] for name in names if name in self._last), "")


_installed: ErrorLog | None = None
_install_lock = threading.Lock()


def error_log() -> ErrorLog:
    """The process's FFmpeg error counter, installed on first use."""
    global _installed
    with _install_lock:
        if _installed is None:
            level = av.logging.get_level()
            handler = ErrorLog()
            libav = logging.getLogger("libav")
            libav.addHandler(handler)
            if level is None or level < av.logging.ERROR:
                av.logging.set_level(av.logging.ERROR)
                libav.propagate = False  # FFmpeg's lines are not for the user's terminal: errors become ours
            _installed = handler
        return _installed
