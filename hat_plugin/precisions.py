"""Precision names: ``fp32``/``fp16``/``bf16`` and their spellings, mapped to PyTorch dtypes.

Kept apart from ``device.py`` (which decides the precision) so that the CPU precision probe, which the decision
calls, can name dtypes without importing the decision back.
"""

from __future__ import annotations

import torch

from .errors import OptionError
from .options import PRECISION_ALIASES, PRECISION_NAMES

__all__ = ["PRECISIONS", "precision_label", "precision_name"]

PRECISIONS: dict[str, torch.dtype] = {
    "fp32": torch.float32,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
    "int8": torch.qint8,
}


def precision_name(spec: str | torch.dtype | None) -> str:
    """``fp32``/``fp16``/``bf16``/``auto`` for any accepted spelling; ``OptionError`` otherwise."""
    if isinstance(spec, torch.dtype):
        name = next((k for k, v in PRECISIONS.items() if v == spec), "")
    else:
        text = str(spec or "auto").strip().lower()
        name = PRECISION_ALIASES.get(text, text)
    if name not in PRECISION_NAMES:
        raise OptionError(f"unknown {{precision}} {spec!r}: use auto, fp32, fp16, bf16 or int8", option="precision")
    return name


def precision_label(dtype: torch.dtype) -> str:
    """How the front ends name an engine's precision: the dtype (``float32``, ``bfloat16``), and for int8 what it
    quantizes."""
    if dtype == torch.qint8:
        return "int8 (Linear layers; the rest float32)"
    return str(dtype).removeprefix("torch.")
