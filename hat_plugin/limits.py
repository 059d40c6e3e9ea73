"""How big an input may be: the pixel limit checked from an image's header before any decoding, and the byte
limit on reading an input file, both derived from the memory this machine has.

The rule: upscaling one image costs about ``a + b * scale**2`` bytes per input pixel, for the decoded pixels, the
float copies the engine makes and the float32 result blended tile by tile, then converted and encoded
(``a``, ``b`` measured with ``python -m bench.memory``: peak RSS growth of the whole CLI run, RGBA, the worst
layout). The default limit is the number of pixels that fits in half of the memory available now at x4 (HAT's
largest scale), and never below ``MIN_DEFAULT_PIXELS`` so ordinary photos are not refused on a busy machine.
A file may hold at most ``FILE_BYTES_PER_PIXEL`` bytes per allowed pixel (4 samples of 64 bits, the widest
uncompressed layout a reader takes) plus ``FILE_METADATA_BYTES`` for metadata; a bigger file is refused before
its data is read.
"""

from __future__ import annotations

import os

from .errors import ImageError

__all__ = [
    "FILE_BYTES_PER_PIXEL",
    "FILE_METADATA_BYTES",
    "MIN_DEFAULT_PIXELS",
    "available_memory",
    "bytes_per_pixel",
    "check_pixels",
    "default_max_pixels",
    "max_file_bytes",
]

INPUT_BYTES_PER_PIXEL = 100
"""Bytes per input pixel that do not grow with the scale (decoded pixels, float copies); measured, rounded up."""
OUTPUT_BYTES_PER_PIXEL = 45
"""Bytes per output pixel (float32 result, its conversion and the encoded file); measured, rounded up."""
DEFAULT_SCALE = 4
MIN_DEFAULT_PIXELS = 4_000_000
FILE_BYTES_PER_PIXEL = 32
FILE_METADATA_BYTES = 64 << 20
_FALLBACK_MEMORY = 4 << 30


def available_memory() -> int:
    """Bytes of RAM a new allocation can count on now (``MemAvailable`` on Linux, free pages elsewhere)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return _FALLBACK_MEMORY


def bytes_per_pixel(scale: int = DEFAULT_SCALE) -> int:
    """Peak memory per input pixel of reading, upscaling by ``scale`` and writing one image (see the rule above)."""
    return INPUT_BYTES_PER_PIXEL + OUTPUT_BYTES_PER_PIXEL * scale * scale


def default_max_pixels(scale: int = DEFAULT_SCALE, available: int | None = None) -> int:
    """The largest input (in pixels) that fits in half of ``available`` memory (default: what is free now) when
    upscaled by ``scale``; at least ``MIN_DEFAULT_PIXELS``."""
    memory = available_memory() if available is None else available
    return max(MIN_DEFAULT_PIXELS, memory // 2 // bytes_per_pixel(scale))


def max_file_bytes(max_pixels: int) -> int:
    """The biggest input file worth reading when images may have up to ``max_pixels`` pixels (0: no limit)."""
    return max_pixels * FILE_BYTES_PER_PIXEL + FILE_METADATA_BYTES if max_pixels > 0 else 0


def check_pixels(width: int, height: int, max_pixels: int, what: str = "the image") -> None:
    """Raise ``ImageError`` when a ``width`` x ``height`` image is over ``max_pixels`` (0: no limit), before any
    memory is spent on it."""
    if width <= 0 or height <= 0:
        raise ImageError(f"{what} claims an empty size of {width}x{height} pixels (a damaged header?)")
    pixels = width * height
    if max_pixels > 0 and pixels > max_pixels:
        raise ImageError(
            f"{what} is {width}x{height} = {pixels:,} pixels, more than the limit of {max_pixels:,} "
            f"({_megapixels(max_pixels)} MP); a damaged or malicious file can claim any size. If it really is that "
            "big, raise the limit: --max-pixels (by default what half of the free memory allows), max_pixels= in Python"
        )


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:,.1f}"
