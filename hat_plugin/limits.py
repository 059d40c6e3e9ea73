"""How big an input may be: the pixel limit checked from an image's header before any decoding, and the byte
limit on reading an input file, both derived from the memory this machine has.

The rule: reading, upscaling by ``scale`` and writing one image costs about ``a + b * scale**2`` bytes per input
pixel: ``a`` for the decoded pixels and their float copies, ``b`` per output pixel for the float32 result blended
tile by tile, its conversion and the encoded file (``b`` doubles with alpha, which is upscaled as a second image).
``a`` and ``b`` are measured with ``python -m bench.memory`` (growth of peak RSS of whole CLI runs per added pixel,
see docs/benchmarks.md) and rounded up. The default limit is the largest RGB image whose run fits in the memory
available now (never below ``MIN_DEFAULT_PIXELS``, so ordinary photos are not refused on a busy machine); the
engine then checks the exact layout (alpha included) against the memory free when it upscales.
A file may hold at most ``FILE_BYTES_PER_PIXEL`` bytes per allowed pixel (4 samples of 64 bits, the widest
uncompressed layout a reader takes) plus ``FILE_METADATA_BYTES`` for metadata; a bigger file is refused after only
its header has been read.
"""

from __future__ import annotations

import os

from .errors import ImageError, OptionError

__all__ = [
    "FILE_BYTES_PER_PIXEL",
    "FILE_METADATA_BYTES",
    "INPUT_BYTES_PER_PIXEL",
    "MIN_DEFAULT_PIXELS",
    "OUTPUT_BYTES_PER_PIXEL",
    "OUTPUT_BYTES_PER_PIXEL_ALPHA",
    "available_memory",
    "bytes_per_pixel",
    "check_pixels",
    "default_max_pixels",
    "max_file_bytes",
    "memory_size",
    "resident_memory",
]

INPUT_BYTES_PER_PIXEL = 192
"""``a``: bytes per input pixel that do not grow with the scale (decoded pixels, float copies)."""
OUTPUT_BYTES_PER_PIXEL = 40
"""``b`` for images without alpha: bytes per output pixel."""
OUTPUT_BYTES_PER_PIXEL_ALPHA = 96
"""``b`` for images with alpha (colour and alpha are two images through the network)."""
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


def bytes_per_pixel(scale: int = DEFAULT_SCALE, alpha: bool = False) -> int:
    """Peak memory per input pixel of reading, upscaling by ``scale`` and writing one image (the rule above)."""
    return INPUT_BYTES_PER_PIXEL + (OUTPUT_BYTES_PER_PIXEL_ALPHA if alpha else OUTPUT_BYTES_PER_PIXEL) * scale * scale


def default_max_pixels(scale: int = DEFAULT_SCALE, available: int | None = None) -> int:
    """The largest RGB input (in pixels) whose upscaling by ``scale`` fits in ``available`` bytes (default: the
    memory free now); at least ``MIN_DEFAULT_PIXELS``."""
    memory = available_memory() if available is None else available
    return max(MIN_DEFAULT_PIXELS, memory // bytes_per_pixel(scale))


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
            "big, raise the limit: {max_pixels} (by default what the free memory allows)",
            option="max_pixels",
        )


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:,.1f}"


_BINARY = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def memory_size(value: int | str, name: str = "max_memory") -> int:
    """Bytes from a whole number or a text such as ``4G``, ``1.5G``, ``512M`` (binary multiples; an optional ``B``
    or ``iB`` after the letter); 0 means no limit. ``OptionError`` naming ``name`` otherwise."""
    if isinstance(value, bool):
        raise OptionError(f"{{{name}}} must be a size in bytes such as 4G, not {value!r}", option=name)
    if isinstance(value, int):
        number: float = value
    else:
        text = str(value).strip().upper().removesuffix("B").removesuffix("I")
        multiple = _BINARY.get(text[-1:], 1)
        try:
            number = float(text[:-1] if multiple > 1 else text) * multiple
        except ValueError:
            raise OptionError(
                f"{{{name}}} must be a size in bytes such as 4G or 512M, not {value!r}", option=name
            ) from None
    if not 0 <= number < float("inf"):
        raise OptionError(f"{{{name}}} must be 0 (no limit) or a positive size such as 4G, not {value!r}", option=name)
    return int(number)


def resident_memory() -> int:
    """This process's resident memory now in bytes (``/proc/self/statm``); 0 where it cannot be read."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return 0
