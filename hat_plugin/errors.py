"""One error hierarchy for the whole product: front ends catch ``HATError`` and show its message.

Each leaf also inherits the builtin it refines, so callers that only know the builtins still work.
"""

from __future__ import annotations


class HATError(Exception):
    """Root of every error hat-plugin raises on purpose; its message is meant for the user."""


class CheckpointError(HATError, ValueError):
    """A weights file is missing, unreadable, truncated, or not a HAT checkpoint."""


class DeviceError(HATError, RuntimeError):
    """The requested device or precision is not available on this machine."""


class OutOfMemoryError(DeviceError, MemoryError):
    """The device ran out of memory even with the smallest tiles."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure (CUDA, MPS or CPU), as PyTorch reports them."""
    if isinstance(exc, MemoryError | OutOfMemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


class ImageError(HATError, ValueError):
    """An input image cannot be read or has a layout the engine cannot process."""


class OutputError(HATError, OSError):
    """An output file cannot be written (folder missing or read-only, disk full)."""


class ModelNotFoundError(HATError, LookupError):
    """A model name is not in the manifest, or is not cached while offline."""


class DownloadError(HATError, OSError):
    """Weights could not be fetched and verified from any source."""


class Cancelled(HATError):
    """The caller cancelled the work (raised between tiles or download chunks)."""
