"""Per-item notices: the Python warnings and ``hat_plugin`` log warnings raised while one image is processed.

The engine has no per-call notice channel: it reports fallbacks (precision, 16-bit to JPEG) with ``warnings`` and
retries with ``logging``. Python's warning filters are process-wide (before 3.14), so ``warnings.catch_warnings``
is only correct when one thread at a time uses it. The app upscales on a one-thread pool, so at most one collector
is active; the lock below makes a second one wait instead of corrupting the saved filters, and warnings raised on
other threads meanwhile (the UI, thumbnails) go to the previous handler instead of into an item's notes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import warnings
from collections.abc import Iterator
from typing import TextIO

__all__ = ["collect_notices"]

_ONE_AT_A_TIME = threading.Lock()


class _ThreadHandler(logging.Handler):
    """Collects ``hat_plugin`` log records at WARNING and above that come from one thread."""

    def __init__(self, thread: int, into: list[str]) -> None:
        super().__init__(logging.WARNING)
        self.thread = thread
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.into.append(record.getMessage())


@contextlib.contextmanager
def collect_notices() -> Iterator[list[str]]:
    """Collect, in order and without repeats at the end, what the engine warns about on this thread in the block."""
    caught: list[str] = []
    me = threading.get_ident()
    logger = logging.getLogger("hat_plugin")
    handler = _ThreadHandler(me, caught)
    with _ONE_AT_A_TIME, warnings.catch_warnings():
        warnings.simplefilter("always")
        previous = warnings.showwarning

        def show(
            message: Warning | str,
            category: type[Warning],
            filename: str,
            lineno: int,
            file: TextIO | None = None,
            line: str | None = None,
        ) -> None:
            if threading.get_ident() == me:
                caught.append(str(message))
            else:
                previous(message, category, filename, lineno, file, line)

        warnings.showwarning = show
        logger.addHandler(handler)
        try:
            yield caught
        finally:
            logger.removeHandler(handler)
    caught[:] = list(dict.fromkeys(caught))
