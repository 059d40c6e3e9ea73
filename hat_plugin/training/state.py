"""A training run's resumable state on disk: one ``checkpoint.pt`` replaced atomically, read back safely.

The file holds everything the next step depends on: the weights, the EMA, the optimiser (Adam's moments and step
counts), the AMP loss scaler, the stage and step (the learning rate is a function of them, see ``recipe.lr_at``),
the random states of torch, numpy and Python, and the data order (a function of seed, stage and step, see
``patches``). It holds only tensors, numbers, strings, lists and dicts, so it loads with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import CheckpointError
from ..files import atomic_path

__all__ = ["FORMAT", "capture_rng", "load_state", "restore_rng", "save_state"]

FORMAT = "hat-plugin-train/1"


def capture_rng() -> dict[str, Any]:
    """The global random states of torch (CPU and CUDA), numpy and Python, in a ``weights_only``-safe form."""
    numpy_state = np.random.get_state(legacy=False)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "bit_generator": numpy_state["bit_generator"],
            "key": torch.from_numpy(np.asarray(numpy_state["state"]["key"], dtype=np.int64)),
            "pos": int(numpy_state["state"]["pos"]),
            "has_gauss": int(numpy_state["has_gauss"]),
            "gauss": float(numpy_state["gauss"]),
        },
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():  # type: ignore[no-untyped-call]
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Put back the random states ``capture_rng`` saved."""
    torch.set_rng_state(state["torch"])
    saved = state["numpy"]
    np.random.set_state(
        {
            "bit_generator": saved["bit_generator"],
            "state": {"key": saved["key"].numpy().astype(np.uint32), "pos": saved["pos"]},
            "has_gauss": saved["has_gauss"],
            "gauss": saved["gauss"],
        }
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write the training state to ``path`` atomically: a crash or SIGKILL leaves the previous file intact."""
    with atomic_path(path) as temp:
        torch.save({"format": FORMAT, **state}, temp)


def load_state(path: Path) -> dict[str, Any]:
    """Read a state written by ``save_state`` (tensors to the CPU; no arbitrary objects are unpickled)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no training checkpoint there") from None
    except Exception as exc:  # a damaged or foreign file: one clear message
        raise CheckpointError(f"{path}: not a readable training checkpoint: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a hat-plugin training checkpoint (format {FORMAT})")
    return state
