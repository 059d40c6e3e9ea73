"""Choosing where and in which precision the network runs, with clear errors for what is not there."""

from __future__ import annotations

import functools
import re
import warnings

import torch

from .errors import DeviceError
from .precisions import PRECISIONS, precision_name

__all__ = ["resolve_device", "resolve_precision", "available_devices", "free_memory", "PRECISIONS"]


def _mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def available_devices() -> list[str]:
    """Device names usable here, best first (e.g. ``["cuda:0", "cpu"]``)."""
    names = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    if _mps_available():
        names.append("mps")
    return [*names, "cpu"]


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then CPU; a named device that is not present is a ``DeviceError``."""
    text = str(spec or "auto").strip().lower()
    if text == "auto":
        return torch.device(available_devices()[0])
    match = re.fullmatch(r"(cpu|mps|cuda)(?::(\d+))?", text)
    if not match:
        raise DeviceError(f"unknown device {spec!r}: use auto, cpu, cuda, cuda:N or mps")
    kind, index = match.group(1), match.group(2)
    if kind == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        wanted = int(index or 0)
        if wanted >= count:
            found = f"{count} CUDA device(s)" if count else "no CUDA device (or a CPU-only PyTorch)"
            raise DeviceError(
                f"device {text!r} is not available: this machine has {found}; set {{device}} to cpu or auto",
                option="device",
            )
        return torch.device("cuda", wanted)
    if kind == "mps" and not _mps_available():
        raise DeviceError("device 'mps' is not available (Apple Silicon with a MPS-enabled PyTorch is needed)")
    if index not in (None, "0"):
        raise DeviceError(f"device {text!r} takes no index other than 0")
    return torch.device(kind)


@functools.cache
def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def _cpu_has_fast(dtype: torch.dtype) -> bool:
    """Whether this CPU has native instructions for the half type (else PyTorch emulates it very slowly)."""
    flags = _cpu_flags()
    if dtype == torch.bfloat16:
        return bool(flags & {"avx512_bf16", "amx_bf16"})
    return bool(flags & {"avx512_fp16", "amx_fp16"})


def resolve_precision(
    spec: str | torch.dtype | None,
    device: torch.device,
    *,
    auto: str | torch.dtype | None = None,
    force: bool = False,
) -> torch.dtype:
    """The compute precision: the one policy every front end uses.

    ``auto`` on a GPU is ``auto`` if the caller gives one (the VapourSynth filter passes the clip's sample type),
    else fp16; on the CPU it is the fastest precision within the accuracy bound, measured once per machine
    (``precision_probe.cpu_auto_precision``: fp32 unless the CPU has native bf16/fp16 that pays). Half precision
    asked for by name that this device cannot run fast falls back to fp32 with a warning, unless ``force``
    (``EngineOptions.force_precision``). ``int8`` (``torch.qint8``: Linear layers in int8, see ``quantize.py``)
    runs on the CPU only, and only with PyTorch's quantized kernels; else a ``DeviceError``.
    """
    name = precision_name(spec)
    if name == "auto":
        hint = precision_name(auto)
        if device.type == "cpu":
            from .precision_probe import cpu_auto_precision

            return PRECISIONS[cpu_auto_precision().precision]
        if hint != "auto":
            return PRECISIONS[hint]
        return torch.float16 if device.type == "cuda" else torch.float32
    dtype = PRECISIONS[name]
    if dtype == torch.qint8:
        if device.type != "cpu":
            raise DeviceError(f"int8 runs on the CPU only; use fp16 or fp32 on {device}")
        from .quantize import int8_engine

        int8_engine()
        return dtype
    if dtype == torch.float32 or force:
        return dtype
    if device.type == "cuda" and dtype == torch.bfloat16 and not torch.cuda.is_bf16_supported():
        raise DeviceError(f"{torch.cuda.get_device_name(device)} does not support bf16; use fp16 or fp32")
    if device.type == "cpu" and not _cpu_has_fast(dtype):
        warnings.warn(
            f"{name} on this CPU would be emulated and many times slower than fp32; running in fp32",
            RuntimeWarning,
            stacklevel=3,
        )
        return torch.float32
    return dtype


def free_memory(device: torch.device) -> int:
    """Bytes that a new allocation on ``device`` can count on (an estimate for choosing the tile size)."""
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        allocated = torch.cuda.memory_allocated(device)
        usable = free + torch.cuda.memory_reserved(device) - allocated
        # A cap set with torch.cuda.set_per_process_memory_fraction binds before the card's free memory does.
        fraction = getattr(torch.cuda, "get_per_process_memory_fraction", lambda _device: 1.0)(device)
        if fraction < 1.0:
            usable = min(usable, int(fraction * total) - allocated)
        return max(int(usable), 0)
    if device.type == "mps":
        recommended = getattr(torch.mps, "recommended_max_memory", lambda: 8 << 30)()
        return int(recommended - torch.mps.current_allocated_memory())
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30
