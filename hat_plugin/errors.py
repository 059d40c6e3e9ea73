"""One error hierarchy for the whole product: front ends catch ``HATError`` and show its message.

Each leaf also inherits the builtin it refines, so callers that only know the builtins still work. Every error
the package raises on purpose is defined here, so a front end needs this one module to tell them apart.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import SupportsIndex

__all__ = [
    "whole_number",
    "Cancelled",
    "CheckpointError",
    "DataError",
    "ClusterError",
    "DamagedVideoError",
    "DeviceError",
    "DownloadError",
    "ExportError",
    "HATError",
    "ImageError",
    "ManifestError",
    "ModelNotFoundError",
    "UnknownModelError",
    "OptionError",
    "OutOfMemoryError",
    "OutputError",
    "TrainingError",
    "UnsafeURLError",
    "UnverifiedError",
    "VideoError",
    "WorkFolderError",
    "describe_exception",
    "is_out_of_memory",
    "out_of_memory_message",
    "plain_spelling",
]

_PLACEHOLDER = re.compile(r"\{([a-z][a-z0-9_]*)\}")


def plain_spelling(option: str) -> str:
    """An option key as the Python API spells it (``crf``, ``pix_fmt``): what ``str(error)`` shows."""
    return option


class HATError(Exception):
    """Root of every error hat-plugin raises on purpose; its message is meant for the user.

    An error about a setting names its key: ``option="crf"`` (or several keys, the first the one at fault), and
    the message writes each key as a placeholder, ``"{crf} must be from 0 to 51"``. ``str(error)`` spells the keys
    as the Python API does; each front end spells them its own way with ``worded`` (``--crf`` on the command
    line, ``crf=`` in the VapourSynth filter, the settings panel's label in the app), so the engine never names
    one front end's flags.
    """

    def __init__(self, message: str = "", *, option: str | tuple[str, ...] | None = None) -> None:
        keys = (option,) if isinstance(option, str) else tuple(option or ())
        self.template = message
        self.options = keys
        super().__init__(self.worded(plain_spelling))

    @property
    def option(self) -> str | None:
        """The key of the setting at fault, if the error is about one."""
        return self.options[0] if self.options else None

    def worded(self, spell: Callable[[str], str]) -> str:
        """The message with each option key written by ``spell`` (a front end's spelling)."""
        if not self.options:
            return self.template
        return _PLACEHOLDER.sub(lambda m: spell(m[1]) if m[1] in self.options else m[0], self.template)


class OptionError(HATError, ValueError):
    """An option or argument has a value that cannot work (a negative tile, an unknown name, a wrong type)."""


class CheckpointError(HATError, ValueError):
    """A weights file is missing, unreadable, truncated, or not a HAT checkpoint."""


class DeviceError(HATError, RuntimeError):
    """The requested device or precision is not available on this machine."""


class OutOfMemoryError(DeviceError, MemoryError):
    """The device ran out of memory even with the smallest tiles."""


class ImageError(HATError, ValueError):
    """An input image cannot be read or has a layout the engine cannot process."""


class OutputError(HATError, OSError):
    """An output file cannot be written (folder missing or read-only, disk full)."""


class ModelNotFoundError(HATError, LookupError):
    """A model name is not in the manifest, or is not cached while offline."""


class UnknownModelError(ModelNotFoundError):
    """No model has this name: each front end adds where its user finds the known ones."""


class ManifestError(HATError, ValueError):
    """The weights manifest is missing, not JSON, or breaks one of its rules."""


class DownloadError(HATError, OSError):
    """Weights could not be fetched and verified from any source."""


class UnverifiedError(DownloadError):
    """A download whose sha256 no public record states: refused until the user chooses to trust the source."""

    def __init__(self, message: str, name: str) -> None:
        super().__init__(message)
        self.name = name


class UnsafeURLError(HATError, ValueError):
    """A URL uses a scheme or host that weights must not be fetched from."""


class DataError(HATError, ValueError):
    """A training or validation folder is missing or holds no usable image (all corrupt or too small)."""


class TrainingError(HATError, RuntimeError):
    """A training run cannot start or resume: the run folder is taken, is not a run, or its state does not fit."""


class VideoError(HATError, ValueError):
    """A video file cannot be read or upscaled as it is (not a video, no video stream, interlaced, an unsupported
    pixel format or colour matrix, or a codec the output container cannot hold)."""


class DamagedVideoError(VideoError):
    """The video data is damaged part-way through; ``frame`` is the first frame that cannot be trusted."""

    def __init__(self, message: str, frame: int | None = None, *, option: str | tuple[str, ...] | None = None) -> None:
        super().__init__(message, option=option)
        self.frame = frame


class WorkFolderError(HATError, RuntimeError):
    """A video's work folder holds chunks made from another source or with other settings, so they cannot be
    resumed; it is left untouched."""


class ClusterError(HATError, RuntimeError):
    """A Ray cluster cannot be used: Ray is not installed, no cluster answers at the address, or the workers run
    another version of hat-plugin."""


class ExportError(HATError, RuntimeError):
    """The network could not be exported (to ONNX), or the export does not compute what the network does."""


class Cancelled(HATError):
    """The caller cancelled the work (raised between tiles or download chunks)."""


def describe_exception(exc: BaseException) -> str:
    """``Type: message`` for an exception that is not ours, the type named once (pypng's messages, for one, start
    with their class name already)."""
    name, text = type(exc).__name__, str(exc).strip()
    if not text:
        return name
    return text if text.startswith(f"{name}:") else f"{name}: {text}"


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure (CUDA, MPS or CPU), as PyTorch reports them."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def out_of_memory_message(device: object, tile: int | None = None, what: str = "") -> str:
    """The one out-of-memory text every front end shows: where it happened and the ways out (running on the CPU
    only where it is not already the CPU)."""
    where = f" ({what})" if what else ""
    tiles = f" even with {tile}px tiles" if tile else ""
    ways = ["use a smaller tile (e.g. 128)", "close other programs", "use a smaller model"]
    if not str(device).startswith("cpu"):  # said on the CPU itself, the last way out would be no way
        ways.append("run on the CPU")
    return f"out of memory on {device}{tiles}{where}: {', '.join(ways[:-1])}, or {ways[-1]}"


def whole_number(name: str, value: object, minimum: int) -> int:
    """``value`` as an ``int`` when it is a whole number (``bool`` excluded) of at least ``minimum``; otherwise an
    ``OptionError`` keyed to the option: the one check of the API's integer options."""
    if isinstance(value, bool) or not isinstance(value, SupportsIndex):
        raise OptionError(f"{{{name}}} must be a whole number, not {value!r}", option=name)
    number = value.__index__()
    if number < minimum:
        raise OptionError(f"{{{name}}} must be {minimum} or more, not {number}", option=name)
    return number
