"""Progress and cancel hooks shared by the engine (between tiles), the downloader and the cache lock."""

from __future__ import annotations

import threading
from collections.abc import Callable

from .errors import Cancelled

__all__ = ["CancelCheck", "ProgressFn", "raise_if_cancelled"]

ProgressFn = Callable[[int, int | None], None]
"""``progress(done_bytes, total_bytes_or_None)``, called as bytes arrive."""

CancelCheck = threading.Event | Callable[[], bool] | None
"""A ``threading.Event`` or a zero-argument callable returning True once the caller wants to stop."""


def raise_if_cancelled(cancel: CancelCheck, what: str) -> None:
    """Raise ``Cancelled`` naming ``what`` when the caller asked to stop."""
    if cancel is None:
        return
    wanted = cancel.is_set() if isinstance(cancel, threading.Event) else cancel()
    if wanted:
        raise Cancelled(f"{what} cancelled")
