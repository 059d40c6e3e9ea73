"""Process-wide tuning, applied only when a front end asks for it (never as a side effect of building an engine).

``configure_process()`` is called once by the command line, the desktop app and the VapourSynth filter, before
they import PyTorch; a library user who wants the same calls it too. It chooses how idle OpenMP threads wait (a
brief spin on an idle CPU, sleep on a busy one: see ``thread_wait_policy``) and raises glibc's allocator thresholds
(see ``tune_allocator``).
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import logging
import os
import sys
import time
from collections.abc import Callable

from .options import env_flag

__all__ = [
    "ALLOCATOR_OPT_OUT",
    "IDLE_SPIN_COUNT",
    "CpuSample",
    "SPIN_COUNT",
    "WAIT_POLICY",
    "configure_process",
    "others_busy_cpus",
    "parse_cpu_sample",
    "read_cpu_sample",
    "thread_wait_policy",
    "tune_allocator",
    "wait_setting",
]

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)
_MMAP_THRESHOLD = 32 << 20  # glibc's upper limit on 64-bit
_TRIM_THRESHOLD = 1 << 30
ALLOCATOR_OPT_OUT = "HAT_PLUGIN_NO_MALLOPT"
WAIT_POLICY = "OMP_WAIT_POLICY"
SPIN_COUNT = "GOMP_SPINCOUNT"
_OPENMP_RUNTIMES = ("libgomp", "libiomp", "libomp")


def _openmp_loaded() -> bool:
    """Whether an OpenMP runtime is already mapped into this process (it reads its settings once, on load)."""
    if "torch" in sys.modules:
        return True
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            return any(name in line for line in f for name in _OPENMP_RUNTIMES)
    except OSError:
        return False


IDLE_SPIN_COUNT = "10000"
_IDLE_SHARE = 0.25  # the CPU counts as idle while other processes use less than this share of the logical CPUs
SAMPLE_SECONDS = 0.15


@dataclasses.dataclass(frozen=True)
class CpuSample:
    """Cumulative CPU time in clock ticks: ``busy`` of all CPUs (everything but idle and iowait), ``total`` of all
    CPUs, ``own`` of this process and its waited-for children, and how many logical CPUs ``/proc/stat`` lists."""

    busy: int
    total: int
    own: int
    cpus: int


def read_cpu_sample() -> CpuSample | None:
    """The counters now, from ``/proc/stat`` and ``/proc/self/stat``; None where there is no /proc (not Linux)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            lines = f.read().splitlines()
        with open("/proc/self/stat", encoding="ascii", errors="replace") as f:
            own_fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return parse_cpu_sample(lines, own_fields)


def parse_cpu_sample(stat_lines: list[str], own_fields: list[str]) -> CpuSample | None:
    """``/proc/stat``'s lines and the fields of ``/proc/self/stat`` after the command name -> a ``CpuSample``."""
    total_line = next((line.split() for line in stat_lines if line.startswith("cpu ")), None)
    if total_line is None or len(total_line) < 5 or len(own_fields) < 15:
        return None
    # user nice system idle iowait irq softirq steal (guest time is already inside user and nice)
    ticks = [int(v) for v in total_line[1:9]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    own = sum(int(v) for v in own_fields[11:15])  # utime stime cutime cstime (fields 14-17 of the whole line)
    cpus = sum(1 for line in stat_lines if line.startswith("cpu") and line[3:4].isdigit())
    return CpuSample(busy=sum(ticks) - idle, total=sum(ticks), own=own, cpus=max(cpus, 1))


def others_busy_cpus(
    read: Callable[[], CpuSample | None] | None = None,
    wait: Callable[[float], None] | None = None,
    seconds: float = SAMPLE_SECONDS,
) -> tuple[float, int] | None:
    """How many CPUs other processes kept busy over the next ``seconds``, and how many there are: the busy time of
    all CPUs in that interval minus this process's own (and its children's). None without /proc. ``read`` and
    ``wait`` replace the /proc reader and the sleep (tests)."""
    read = read or read_cpu_sample
    before = read()
    (wait or time.sleep)(seconds)
    after = read()
    if before is None or after is None or after.total <= before.total:
        return None
    others = (after.busy - before.busy) - (after.own - before.own)
    return max(others, 0) / (after.total - before.total) * after.cpus, after.cpus


def wait_setting(
    read: Callable[[], CpuSample | None] | None = None, wait: Callable[[float], None] | None = None
) -> tuple[dict[str, str], str]:
    """The OpenMP environment for this machine as it is now, and why in words: a brief spin
    (``GOMP_SPINCOUNT=10000``) while other processes use under a quarter of the logical CPUs
    (``others_busy_cpus``), else ``OMP_WAIT_POLICY=PASSIVE``.
    Without /proc it falls back to the 1-minute load average, and without that assumes a shared machine."""
    measured = others_busy_cpus(read, wait)
    if measured is not None:
        others, cpus = measured
        seen = f"other processes using {others:.1f} of {cpus} CPUs"
        idle = others < _IDLE_SHARE * cpus
    else:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # no load average (Windows): assume a shared machine
            return {WAIT_POLICY: "PASSIVE"}, "sleep at once (CPU use unknown)"
        cpus = os.cpu_count() or 1
        seen = f"load average {load:.1f} on {cpus} CPUs"
        idle = load < _IDLE_SHARE * cpus
    if idle:
        return {SPIN_COUNT: IDLE_SPIN_COUNT}, f"brief spin (idle CPU: {seen})"
    return {WAIT_POLICY: "PASSIVE"}, f"sleep at once (busy CPU: {seen})"


@functools.cache
def thread_wait_policy() -> str:
    """Choose what PyTorch's idle OpenMP threads do between tasks, once, before PyTorch loads; returns it in words.

    By default each OpenMP worker busy-waits for its next task. On a CPU shared with other programs a spinning
    thread takes a core from them, and one that the OS has descheduled holds every barrier up: measured on a
    2-core machine, PyTorch's forward slowed 5-13x under load while OpenVINO (TBB) slowed 2-3x; sleeping threads
    fixed most of it. On an idle CPU, though, sleeping at once costs about 10 % (threads wake up late), and a
    brief spin of 10,000 rounds gets that back (docs/benchmarks.md, Optimisations measured).

    So the choice follows what the other processes use now, sampled from ``/proc/stat`` over 0.15 s as the
    process starts, minus this process's own ticks (``wait_setting``). Not the load average: its 1-minute value
    still counts work that has just finished (a previous run of ours included), so one job after another would
    get sleeping threads on an idle machine. Not adaptively either (timing forwards each way and keeping the
    faster): the OpenMP runtime reads the setting once, when it is loaded, so trying the other way would need a
    second process, and a few forwards on a shared machine vary more than the 10 % at stake. An explicit
    ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` in the environment is kept; after ``import torch`` it is too late.
    """
    if WAIT_POLICY in os.environ or SPIN_COUNT in os.environ:
        return "as set in the environment"
    if _openmp_loaded():
        log.debug("OpenMP is already loaded: its threads keep their default wait policy")
        return "OpenMP's default (it was loaded first)"
    setting, words = wait_setting()
    os.environ.update(setting)
    log.debug("OpenMP threads: %s", words)
    return words


@functools.cache
def tune_allocator() -> bool:
    """Keep freed tensor buffers inside the process instead of returning them to the OS after every op.

    glibc serves blocks above its mmap threshold (128 KiB, adaptive) with fresh mmaps and trims the heap when
    its top is free: each forward pass then faults all of its activation memory in again, hundreds of
    thousands of minor page faults per tile, a large share of CPU time. Raising both thresholds once makes
    glibc reuse those pages. Linux with glibc only; set ``HAT_PLUGIN_NO_MALLOPT=1`` to opt out.
    Returns whether the tuning was applied.
    """
    if env_flag(ALLOCATOR_OPT_OUT) or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False  # not glibc (e.g. musl)
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    applied = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    log.debug("glibc allocator thresholds raised: %s", applied)
    return applied


def configure_process() -> None:
    """Apply the process-wide settings the front ends want for inference (idempotent). Call it before importing
    PyTorch, or the thread wait policy cannot take effect."""
    thread_wait_policy()
    tune_allocator()
