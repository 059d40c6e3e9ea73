"""Pixel values between integer and float: the one conversion (and rounding rule) every part of the product uses.

Integers map to [0, 1] by dividing by the type's maximum (255 or 65535); floats map back by multiplying, rounding
to the nearest integer (ties to even, as ``numpy.round`` and ``torch.round`` do) and clipping. Floats are cleaned
on the way in: NaN becomes 0, and values are clipped to [0, 1].
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["INTEGER_MAX", "convert_depth", "from_unit_float", "to_unit_float"]

INTEGER_MAX: dict[np.dtype[Any], int] = {np.dtype(np.uint8): 255, np.dtype(np.uint16): 65535}
"""The largest value of each integer sample type, which stands for 1.0."""


def to_unit_float(pixels: np.ndarray) -> np.ndarray:
    """``uint8``/``uint16``/float samples -> ``float32`` in [0, 1] (a new array; NaN -> 0, clipped)."""
    top = INTEGER_MAX.get(pixels.dtype)
    if top is not None:
        return pixels.astype(np.float32) / np.float32(top)
    if pixels.dtype.kind != "f":
        raise TypeError(f"unsupported pixel type {pixels.dtype}")
    values = pixels.astype(np.float32)
    np.nan_to_num(values, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(values, 0.0, 1.0, out=values)


def from_unit_float(values: np.ndarray, dtype: np.dtype[Any] | type, *, inplace: bool = False) -> np.ndarray:
    """Float samples in [0, 1] -> ``dtype`` (``uint8``, ``uint16``, or a float type). With ``inplace`` the float
    array is used as scratch space, so a large image needs no second float copy."""
    target = np.dtype(dtype)
    work = values if inplace and values.dtype == np.float32 else values.astype(np.float32)
    np.nan_to_num(work, copy=False, nan=0.0, posinf=1.0, neginf=0.0)
    np.clip(work, 0.0, 1.0, out=work)
    top = INTEGER_MAX.get(target)
    if top is None:
        if target.kind != "f":
            raise TypeError(f"unsupported pixel type {target}")
        return work.astype(target, copy=False)
    np.multiply(work, top, out=work)
    np.round(work, out=work)
    return work.astype(target)


def convert_depth(pixels: np.ndarray, dtype: np.dtype[Any] | type) -> np.ndarray:
    """The same picture in another sample type (e.g. 16-bit to 8-bit for JPEG), by the rule above."""
    target = np.dtype(dtype)
    if pixels.dtype == target:
        return pixels
    if pixels.dtype == np.uint8 and target == np.uint16:
        return pixels.astype(np.uint16) * np.uint16(257)  # exact: 255 * 257 == 65535
    return from_unit_float(to_unit_float(pixels), target, inplace=True)
