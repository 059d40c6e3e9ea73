"""What machine the numbers come from, and an estimate of its fp32 peak."""

from __future__ import annotations

import os
import platform
import re
from dataclasses import dataclass, field

import torch

from hat_plugin.runtime import CpuSample, read_cpu_sample

_FLAGS_OF_INTEREST = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


@dataclass(frozen=True)
class Machine:
    cpu: str
    cores: int
    flags: tuple[str, ...]
    ghz: float
    ghz_source: str
    split_avx512: bool = False
    """AVX-512 executed as two 256-bit halves (AMD Zen 4, CPU family 25): the 512-bit peak of Intel's cores is not
    there."""

    @property
    def fp32_lanes(self) -> int:
        """fp32 lanes an FMA unit completes per cycle with the widest vectors the kernels use."""
        if "avx512f" in self.flags and not self.split_avx512:
            return 16
        return 8 if "avx2" in self.flags or "avx512f" in self.flags else 4

    @property
    def peak_gflops(self) -> float:
        """cores x fp32 lanes x 2 FMA units x 2 flops per FMA x clock: the textbook fp32 peak of a server core."""
        return self.cores * self.fp32_lanes * 2 * 2 * self.ghz

    def peak_formula(self) -> str:
        return (
            f"{self.cores} cores x {self.fp32_lanes} fp32 lanes"
            f"{' (AVX-512 run as two 256-bit halves)' if self.split_avx512 else ''} x 2 FMA units x 2 flops x "
            f"{self.ghz:.2f} GHz "
            f"({self.ghz_source}) = {self.peak_gflops:.0f} GFLOP/s"
        )


def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def describe(threads: int) -> Machine:
    """The CPU model, the cores the benchmark uses, its SIMD flags and a clock estimate."""
    info = _cpuinfo()
    model = re.search(r"^model name\s*:\s*(.+)$", info, re.M)
    flags = re.search(r"^flags\s*:\s*(.+)$", info, re.M)
    present = set(flags.group(1).split()) if flags else set()
    mhz = re.search(r"^cpu MHz\s*:\s*([\d.]+)$", info, re.M)
    bogo = re.search(r"^bogomips\s*:\s*([\d.]+)$", info, re.M)
    vendor = re.search(r"^vendor_id\s*:\s*(\S+)$", info, re.M)
    family = re.search(r"^cpu family\s*:\s*(\d+)$", info, re.M)
    zen4 = bool(vendor and vendor.group(1) == "AuthenticAMD" and family and int(family.group(1)) == 25)
    if mhz:
        ghz, source = float(mhz.group(1)) / 1000, "cpu MHz in /proc/cpuinfo"
    elif bogo:
        ghz, source = float(bogo.group(1)) / 2000, "bogomips / 2"
    else:
        ghz, source = 2.5, "assumed"
    cores = min(threads, os.cpu_count() or threads)
    return Machine(
        cpu=model.group(1).strip() if model else platform.processor() or platform.machine(),
        cores=cores,
        flags=tuple(f for f in _FLAGS_OF_INTEREST if f in present),
        ghz=ghz,
        ghz_source=source,
        split_avx512=zen4 and "avx512f" in present,
    )


def gpu_name(device: str) -> str | None:
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(torch.device(device))


@dataclass
class LoadMeter:
    """What the machine was doing around one timed run: the 1-minute load average before and after, and how many
    CPUs processes other than the timed worker and this driver kept busy during it (from ``/proc/stat``'s busy
    ticks minus the worker's reported CPU seconds and the driver's own), which unlike the load average does not
    lag or count finished work."""

    ticks_per_second: int = field(default_factory=lambda: _ticks_per_second())
    _before: CpuSample | None = None
    _load_before: float | None = None

    def start(self) -> None:
        self._load_before = _load_average()
        self._before = read_cpu_sample()

    def stop(self, wall: float, worker_cpu: float) -> tuple[list[float], float | None]:
        """The load averages seen (before, after) and the other processes' busy CPUs during ``wall`` seconds."""
        after = read_cpu_sample()
        loads = [x for x in (self._load_before, _load_average()) if x is not None]
        if self._before is None or after is None or wall <= 0:
            return loads, None
        busy = (after.busy - self._before.busy - (after.own - self._before.own)) / self.ticks_per_second
        return loads, max(0.0, busy - worker_cpu) / wall


def _load_average() -> float | None:
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def _ticks_per_second() -> int:
    try:
        return int(os.sysconf("SC_CLK_TCK"))
    except (AttributeError, ValueError, OSError):
        return 100
