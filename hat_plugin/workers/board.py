"""The progress board of a Ray run: a tiny actor the workers report to and the driver reads.

It lives in its own module, free of PyTorch and PyAV imports, so the actor's process starts in a moment and the
driver's first look at the board does not wait for a model framework to load.
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["Board"]


class Board:
    """How far each running unit is, and where it runs (node name and process id)."""

    def __init__(self) -> None:
        self.reports: dict[Hashable, tuple[int, str, int]] = {}

    def report(self, unit: Hashable, done: int, node: str, pid: int) -> None:
        """A worker's latest count for ``unit`` (a unit run again starts from 0)."""
        self.reports[unit] = (done, node, pid)

    def snapshot(self) -> dict[Hashable, tuple[int, str, int]]:
        """All reports so far: ``{unit key: (done, node, pid)}``."""
        return dict(self.reports)
