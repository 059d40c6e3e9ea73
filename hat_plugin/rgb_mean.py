"""The RGB mean a HAT subtracts from its input (and adds back): a property of the trained weights.

The official models use the DF2K mean (0.4488, 0.4371, 0.4040); HATs trained with neosr since April 2024 use 0.5 for
every channel. A ``.pth`` file does not say which, so the mean comes from, in order: the user, the model's manifest
entry, the file's safetensors metadata, else the official mean. One spelling everywhere: ``official``, ``0.5`` (one
number for all channels) or ``R,G,B``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

from .errors import OptionError

__all__ = ["METADATA_KEY", "OFFICIAL_RGB_MEAN", "RgbMean", "describe_rgb_mean", "mean_from_metadata", "parse_rgb_mean"]

RgbMean = tuple[float, float, float]
OFFICIAL_RGB_MEAN: RgbMean = (0.4488, 0.4371, 0.4040)
METADATA_KEY = "rgb_mean"
"""The safetensors metadata key this project writes (and reads) the mean under, spelled as ``parse_rgb_mean`` takes."""


def parse_rgb_mean(value: str | Sequence[float]) -> RgbMean:
    """``official``, one number (all channels) or three numbers ``R,G,B`` in [0, 1] -> the mean;
    ``OptionError`` saying what is accepted otherwise."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("official", "df2k"):
            return OFFICIAL_RGB_MEAN
        parts = [p for p in text.replace(" ", ",").split(",") if p]
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            numbers = []
    else:
        try:
            numbers = [float(v) for v in value]
        except (TypeError, ValueError):
            numbers = []
    if len(numbers) == 1:
        numbers *= 3
    if len(numbers) != 3 or not all(math.isfinite(n) and 0.0 <= n <= 1.0 for n in numbers):
        raise OptionError(
            f"{{rgb_mean}} {value!r} is not 'official', one number or three numbers R,G,B from 0 to 1 (e.g. 0.5)",
            option="rgb_mean",
        )
    return numbers[0], numbers[1], numbers[2]


def describe_rgb_mean(mean: Sequence[float]) -> str:
    """The short spelling of a mean for messages and model lines: ``official``, ``0.5`` or ``R,G,B``."""
    values = tuple(round(float(v), 4) for v in mean)
    if values == OFFICIAL_RGB_MEAN:
        return "official"
    if len(set(values)) == 1:
        return f"{values[0]:g}"
    return ",".join(f"{v:g}" for v in values)


def mean_from_metadata(metadata: Mapping[str, str] | None) -> RgbMean | None:
    """The mean a safetensors header states: its ``rgb_mean`` key, else ``rgb_mean`` inside a JSON ``hat_config``
    (``hat-upscale train``) or ``config``; None when the file does not say. A malformed value is refused."""
    if not metadata:
        return None
    if METADATA_KEY in metadata:
        return parse_rgb_mean(metadata[METADATA_KEY])
    for key in ("hat_config", "config"):
        config = metadata.get(key)
        if not config:
            continue
        try:
            stated = json.loads(config).get(METADATA_KEY)
        except (ValueError, AttributeError):
            continue
        if stated is not None:
            return parse_rgb_mean(stated if isinstance(stated, str) else list(stated))
    return None
