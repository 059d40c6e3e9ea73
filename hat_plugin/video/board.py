"""The progress board of a Ray run: a tiny actor the workers report to and the driver reads.

It lives in its own module, free of PyTorch and PyAV imports, so the actor's process starts in a moment and the
driver's first look at the board does not wait for a model framework to load.
"""

from __future__ import annotations

__all__ = ["Board"]


class Board:
    """Frames done per running chunk, and where each runs (node name and process id)."""

    def __init__(self) -> None:
        self.reports: dict[int, tuple[int, str, int]] = {}

    def report(self, chunk: int, frames: int, node: str, pid: int) -> None:
        """A worker's latest count for ``chunk`` (a retried chunk starts again from 0)."""
        self.reports[chunk] = (frames, node, pid)

    def snapshot(self) -> dict[int, tuple[int, str, int]]:
        """All reports so far: ``{chunk: (frames, node, pid)}``."""
        return dict(self.reports)
