"""Progress and cancel hooks shared by the engine (between tiles), the downloader and the cache lock."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import Cancelled

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["CancelCheck", "ProgressFn", "is_cancelled", "raise_if_cancelled", "tqdm_progress"]

ProgressFn = Callable[[int, int | None], None]
"""``progress(done, total_or_None)``: tiles done of all tiles (engine), or bytes received (downloads)."""

CancelCheck = threading.Event | Callable[[], bool] | None
"""A ``threading.Event`` or a zero-argument callable returning True once the caller wants to stop."""


def is_cancelled(cancel: CancelCheck) -> bool:
    """True once the caller asked to stop (never for None)."""
    if cancel is None:
        return False
    return cancel.is_set() if isinstance(cancel, threading.Event) else bool(cancel())


def raise_if_cancelled(cancel: CancelCheck, what: str) -> None:
    """Raise ``Cancelled`` naming ``what`` when the caller asked to stop."""
    if is_cancelled(cancel):
        raise Cancelled(f"{what} cancelled")


def tqdm_progress(bar: tqdm[Any]) -> ProgressFn:
    """A progress callback that drives a tqdm bar (the command line's tile and download bars)."""

    def update(done: int, total: int | None) -> None:
        if total is not None and bar.total != total:
            bar.total = total
        bar.update(done - bar.n)

    return update
