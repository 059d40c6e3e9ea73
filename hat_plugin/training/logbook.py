"""The run's log: one JSON object per line in ``log.jsonl`` (training loss and learning rate every few steps,
every validation score), kept in memory and rewritten atomically, so it always matches the checkpoint after a
resume (the records travel inside the checkpoint)."""

from __future__ import annotations

import json
import math
import os
from typing import Any

from ..files import atomic_write

__all__ = ["Logbook"]


def _clean(value: Any) -> Any:
    """JSON has no infinity or NaN: such values are written as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


class Logbook:
    """Records of one run: ``{"kind": "train"|"val"|..., "step": n, ...}``."""

    def __init__(self, records: list[dict[str, Any]] | None = None) -> None:
        self.records: list[dict[str, Any]] = list(records or [])

    def add(self, kind: str, step: int, **values: float | int | str) -> dict[str, Any]:
        """Append one record and return it."""
        record: dict[str, Any] = {"kind": kind, "step": step, **{k: _clean(v) for k, v in values.items()}}
        self.records.append(record)
        return record

    def series(self, kind: str, key: str) -> list[tuple[float, float]]:
        """``(step, value)`` of every record of ``kind`` that has a number under ``key``."""
        return [
            (float(r["step"]), float(r[key]))
            for r in self.records
            if r["kind"] == kind and isinstance(r.get(key), int | float)
        ]

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write every record as JSON Lines, replacing the file atomically."""
        text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.records)
        atomic_write(path, text.encode())
