"""Short human texts for sizes and durations, shared by the queue, the model picker and the status line."""

from __future__ import annotations

__all__ = ["format_seconds", "format_size"]


def format_seconds(seconds: float | None) -> str:
    """A short human time such as ``"45 s"``, ``"3 min 05 s"`` or ``"1 h 02 min"``; ``"estimating…"`` when unknown."""
    if seconds is None:
        return "estimating…"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_size(size: int | None) -> str:
    """Bytes as a short human size (``"81 MB"``, ``"1.3 MB"``); ``"size unknown"`` when the size is not known."""
    if not size:
        return "size unknown"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            if unit == "B":
                return f"{size} B"
            return f"{value:.1f} {unit}" if value < 10 else f"{value:.0f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")
