"""Turning the engine's numpy images into ``QImage`` for display (8 and 16 bit, grey, RGB, RGBA)."""

from __future__ import annotations

from typing import Any

import numpy as np
from PyQt6.QtGui import QImage

from hat_plugin.pixels import from_unit_float

_FORMATS = {
    (np.dtype(np.uint8), 1): QImage.Format.Format_Grayscale8,
    (np.dtype(np.uint8), 3): QImage.Format.Format_RGB888,
    (np.dtype(np.uint8), 4): QImage.Format.Format_RGBA8888,
    (np.dtype(np.uint16), 1): QImage.Format.Format_Grayscale16,
    (np.dtype(np.uint16), 4): QImage.Format.Format_RGBA64,
}


def array_to_qimage(pixels: np.ndarray[Any, Any]) -> QImage:
    """A ``QImage`` holding its own copy of ``pixels`` (HxW or HxWx1..4; uint8, uint16 or float in [0, 1]).

    Alpha stays straight (not premultiplied), as the engine returns it; grey + alpha is shown as RGBA.
    """
    array = np.asarray(pixels)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim == 3 and array.shape[2] == 2:
        array = array[..., [0, 0, 0, 1]]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise ValueError(f"cannot display an image of shape {array.shape}")
    if array.dtype.kind == "f":
        array = from_unit_float(array, np.uint16)  # the product's one rounding rule
    if array.dtype == np.uint16 and array.shape[2] == 3:
        opaque = np.full(array.shape[:2] + (1,), 65535, dtype=np.uint16)
        array = np.concatenate([array, opaque], axis=2)
    key = (array.dtype, array.shape[2])
    if key not in _FORMATS:
        raise ValueError(f"cannot display {array.dtype} images")
    array = np.ascontiguousarray(array)
    height, width = array.shape[:2]
    view = QImage(array.data, width, height, array.strides[0], _FORMATS[key])  # type: ignore[call-overload]
    return view.copy()  # the pixels are borrowed from ``array``: own them before it goes away


def qimage_to_array(image: QImage) -> np.ndarray[Any, Any]:
    """The pixels of ``image`` as an owned HxWx3 (or HxWx4 when it has alpha) ``uint8`` array."""
    channels = 4 if image.hasAlphaChannel() else 3
    fmt = QImage.Format.Format_RGBA8888 if channels == 4 else QImage.Format.Format_RGB888
    converted = image.convertToFormat(fmt)
    width, height = converted.width(), converted.height()
    buffer = converted.constBits()
    buffer.setsize(converted.sizeInBytes())
    rows = np.frombuffer(buffer, dtype=np.uint8).reshape(height, converted.bytesPerLine())  # type: ignore[call-overload]
    return rows[:, : width * channels].reshape(height, width, channels).copy()
