"""How the engine runs, as one frozen value, and the one table of the ``HAT_PLUGIN_*`` environment variables.

``EngineOptions`` is everything ``Upscaler`` is told: device, precision, tiling, the CUDA runner, padded attention
heads. Every front end builds one (the command line from its flags, the app from its settings, the VapourSynth filter
from its arguments) and passes it on unchanged: to the engine, to a video job, to a Ray task (it pickles). None of
these settings changes what the output should be, so work may be resumed with other options.

``ENVIRONMENT`` lists every environment variable the package reads; ``env`` and ``env_flag`` are the only readers,
called when a value is needed, never at import. ``EngineOptions.from_environment`` takes the engine's rows of it.
This module imports neither PyTorch nor anything heavy: the front ends use it before PyTorch loads.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from .errors import OptionError, whole_number
from .limits import memory_size

__all__ = [
    "COMPILE_MODES",
    "ENVIRONMENT",
    "PRECISION_ALIASES",
    "PRECISION_NAMES",
    "RUNNERS",
    "EngineOptions",
    "Variable",
    "env",
    "env_flag",
    "environment_table",
]

RUNNERS = ("eager", "graphs", "compile")
"""How the network is called on CUDA (see ``runners``): the module itself, CUDA graphs, or ``torch.compile``."""
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
"""``torch.compile`` modes for the ``compile`` runner."""
PRECISION_NAMES = ("auto", "fp32", "fp16", "bf16", "int8")
PRECISION_ALIASES = {
    "float32": "fp32",
    "float": "fp32",
    "float16": "fp16",
    "half": "fp16",
    "bfloat16": "bf16",
    "qint8": "int8",
}
_FALSE = frozenset({"", "0", "false", "no", "off"})


@dataclass(frozen=True)
class Variable:
    """One environment variable: its name, what it does, and what applies when it is unset."""

    name: str
    meaning: str
    unset: str


ENVIRONMENT: tuple[Variable, ...] = (
    Variable("HAT_PLUGIN_CACHE", "folder that downloaded weights are kept in", "the user cache folder"),
    Variable("HAT_PLUGIN_OFFLINE", "`1`: never touch the network; only bundled and cached models work", "downloads"),
    Variable(
        "HAT_PLUGIN_MIRROR", "an https base URL tried before the manifest's (files under their own names)", "none"
    ),
    Variable("HAT_PLUGIN_MANIFEST", "another weights manifest file (a private list of models)", "the packaged one"),
    Variable(
        "HAT_PLUGIN_USER_MANIFEST",
        "the file of the models you added by name, merged over the manifest",
        "`models.json` in the user config folder",
    ),
    Variable(
        "HAT_PLUGIN_CPU_PRECISION",
        "`fp32`, `bf16`, `fp16` or `int8`: what precision `auto` means on the CPU, without measuring",
        "measured once per machine",
    ),
    Variable(
        "HAT_PLUGIN_FORCE_PRECISION",
        "`1`: run fp16/bf16 asked for by name on a CPU without native support (`force_precision`)",
        "fp32 with a warning",
    ),
    Variable(
        "HAT_PLUGIN_CUDA_RUNNER",
        "`graphs` (replay one CUDA graph per tile shape) or `compile` (`torch.compile`) (`runner`); experimental",
        "`eager`",
    ),
    Variable(
        "HAT_PLUGIN_COMPILE_MODE",
        "the `torch.compile` mode of the `compile` runner: minutes of warm-up per shape (`compile_mode`)",
        "`max-autotune`",
    ),
    Variable(
        "HAT_PLUGIN_PAD_HEADS",
        "`1`: pad 30-channel attention heads to 32 so CUDA's efficient kernel applies (`pad_heads`); experimental",
        "off",
    ),
    Variable(
        "HAT_PLUGIN_NO_MALLOPT",
        "`1`: leave glibc's allocator alone (the front ends raise its mmap/trim thresholds so freed activation "
        "memory is reused, not faulted in again every tile)",
        "raised",
    ),
)
"""Every environment variable hat-plugin reads. A flag (``1``) is off when unset or ``0``, ``false``, ``no``, ``off``;
the engine's rows (named in brackets) are the defaults of ``EngineOptions.from_environment``."""
_NAMES = frozenset(variable.name for variable in ENVIRONMENT)


def env(name: str) -> str:
    """The value of the table's variable ``name``, stripped ('' when unset); a name not in the table is a bug."""
    if name not in _NAMES:
        raise KeyError(f"{name} is not in hat_plugin.options.ENVIRONMENT")
    return os.environ.get(name, "").strip()


def env_flag(name: str) -> bool:
    """Whether the table's flag ``name`` is on (set to anything but ``0``, ``false``, ``no`` or ``off``)."""
    return env(name).lower() not in _FALSE


def environment_table() -> str:
    """``ENVIRONMENT`` as a Markdown table (the README's)."""
    rows = ["| Variable | What it does | When unset |", "|---|---|---|"]
    rows += [f"| `{v.name}` | {v.meaning} | {v.unset} |" for v in ENVIRONMENT]
    return "\n".join(rows)


def _choice(option: str, value: object, allowed: tuple[str, ...], aliases: dict[str, str] | None = None) -> str:
    """``value`` normalised (stripped, lower case, alias resolved) when it is one of ``allowed``; else an
    ``OptionError`` keyed to ``option``."""
    text = value.strip().lower() if isinstance(value, str) else None
    text = (aliases or {}).get(text, text) if text is not None else None
    if text not in allowed:
        raise OptionError(f"unknown {{{option}}} {value!r}: use {', '.join(allowed)}", option=option)
    return text


@dataclass(frozen=True)
class EngineOptions:
    """How the engine runs (``hat_plugin.Upscaler``'s options), checked when made.

    Attributes:
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (whether it exists is checked by the engine).
        precision: ``auto`` (fp16 on CUDA; on the CPU what was measured fastest within the accuracy bound),
            ``fp32``, ``fp16``, ``bf16`` or ``int8`` (CPU only: Linear layers in int8, the rest fp32).
        tile: tile side in input pixels, rounded up to a multiple of the window size; 0 picks it from free memory.
        overlap: input pixels shared by neighbouring tiles (cross-faded).
        batch: tiles per forward pass; 0 picks it from free memory (1 on CPU).
        runner: how the network is called on CUDA: ``eager``, ``graphs`` or ``compile`` (see ``runners``).
        compile_mode: the ``torch.compile`` mode of the ``compile`` runner.
        pad_heads: zero-pad attention heads to a multiple of 8 channels (exact; lets CUDA use a fused kernel).
        force_precision: run a half precision asked for by name even where this device only emulates it.
        max_memory: on the CPU, the most memory (bytes, or a size such as ``"4G"``) the process should reach with
            the auto tile: the tile is chosen so that its estimated peak fits; 0 = a share of the free memory only.
    """

    device: str = "auto"
    precision: str = "auto"
    tile: int = 0
    overlap: int = 16
    batch: int = 0
    runner: str = "eager"
    compile_mode: str = "max-autotune"
    pad_heads: bool = False
    force_precision: bool = False
    max_memory: int | str = 0

    def __post_init__(self) -> None:
        device = str(self.device).strip().lower() if self.device is not None else ""
        if not device:
            raise OptionError(f"{{device}} must name a device, not {self.device!r}", option="device")
        checked: dict[str, Any] = {
            "device": device,
            "precision": _choice("precision", str(self.precision), PRECISION_NAMES, PRECISION_ALIASES),
            "tile": whole_number("tile", self.tile, 0),
            "overlap": whole_number("overlap", self.overlap, 0),
            "batch": whole_number("batch", self.batch, 0),
            "runner": _choice("runner", self.runner, RUNNERS),
            "compile_mode": _choice("compile_mode", self.compile_mode, COMPILE_MODES),
            "max_memory": memory_size(self.max_memory),
        }
        for name in ("pad_heads", "force_precision"):
            if not isinstance(getattr(self, name), bool):
                raise OptionError(f"{{{name}}} must be True or False, not {getattr(self, name)!r}", option=name)
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @classmethod
    def from_environment(cls, **overrides: Any) -> EngineOptions:
        """The defaults with the engine's ``HAT_PLUGIN_*`` variables applied (read now, once), then ``overrides``;
        a bad value in the environment is an ``OptionError`` naming the variable."""
        values: dict[str, Any] = {"pad_heads": env_flag("HAT_PLUGIN_PAD_HEADS")}
        values["force_precision"] = env_flag("HAT_PLUGIN_FORCE_PRECISION")
        for field, name in (("runner", "HAT_PLUGIN_CUDA_RUNNER"), ("compile_mode", "HAT_PLUGIN_COMPILE_MODE")):
            text = env(name).lower()
            if text:
                allowed = RUNNERS if field == "runner" else COMPILE_MODES
                if text not in allowed:
                    raise OptionError(f"{name}={text!r} is not a {field.replace('_', ' ')}: use {', '.join(allowed)}")
                values[field] = text
        return cls(**(values | overrides))

    def replace(self, **changes: Any) -> EngineOptions:
        """A copy with ``changes`` applied (and checked)."""
        return dataclasses.replace(self, **changes)


if __name__ == "__main__":
    print(environment_table())
