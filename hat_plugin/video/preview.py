"""One frame of a video as an RGB picture, for a front end's compare view (source frame k beside output frame k).

Uses the same decoding (frame ``k`` is the ``k``-th timestamp) and the same colour conversion as the upscaling,
so the two pictures compare like for like.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..errors import OptionError
from ..pixels import from_unit_float
from .colour import ColourConverter
from .decode import SourceReader
from .index import build_index
from .probe import probe

__all__ = ["frame_count", "read_frame"]


def frame_count(path: str | os.PathLike[str]) -> int:
    """How many frames the video at ``path`` has (from its packets; no decoding)."""
    info = probe(path)
    return len(build_index(info.path, info.stream_index))


def read_frame(path: str | os.PathLike[str], number: int) -> np.ndarray:
    """Frame ``number`` (0-based) of the video at ``path`` as ``HxWx3`` RGB: ``uint8`` for 8-bit video,
    ``uint16`` for deeper. Raises ``VideoError`` for an unreadable file, ``OptionError`` for a frame it lacks."""
    info = probe(Path(path))
    index = build_index(info.path, info.stream_index)
    if not 0 <= number < len(index):
        raise OptionError(f"{path} has {len(index)} frames; there is no frame {number}")
    with SourceReader(info, index) as reader:
        _, planes = next(iter(reader.frames(number, number + 1)))
    converter = ColourConverter(info.layout, info.colour, info.width, info.height, torch.device("cpu"))
    rgb = converter.to_rgb(planes)[0].permute(1, 2, 0).numpy()
    return from_unit_float(rgb, np.uint8 if info.layout.bits == 8 else np.uint16)
