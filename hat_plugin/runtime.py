"""Process-wide tuning, applied only when a front end asks for it (never as a side effect of building an engine).

``configure_process()`` is called once by the command line, the desktop app and the VapourSynth filter, before
they import PyTorch; a library user who wants the same calls it too. It chooses how idle OpenMP threads wait (a
brief spin on an idle CPU, sleep on a busy one: see ``thread_wait_policy``) and raises glibc's allocator thresholds
(see ``tune_allocator``).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import sys

from .options import env_flag

__all__ = [
    "ALLOCATOR_OPT_OUT",
    "IDLE_SPIN_COUNT",
    "SPIN_COUNT",
    "WAIT_POLICY",
    "configure_process",
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
_IDLE_LOAD_SHARE = 0.25  # the CPU counts as idle below this 1-minute load average per logical CPU


def wait_setting() -> dict[str, str]:
    """The OpenMP environment for this machine as it is now: a brief spin (``GOMP_SPINCOUNT=10000``) when the
    1-minute load average is under a quarter of the logical CPUs, else ``OMP_WAIT_POLICY=PASSIVE``."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # no load average (Windows): assume a shared machine
        return {WAIT_POLICY: "PASSIVE"}
    if load < _IDLE_LOAD_SHARE * (os.cpu_count() or 1):
        return {SPIN_COUNT: IDLE_SPIN_COUNT}
    return {WAIT_POLICY: "PASSIVE"}


@functools.cache
def thread_wait_policy() -> str:
    """Choose what PyTorch's idle OpenMP threads do between tasks, once, before PyTorch loads; returns it in words.

    By default each OpenMP worker busy-waits for its next task. On a CPU shared with other programs a spinning
    thread takes a core from them, and one that the OS has descheduled holds every barrier up: measured on a
    2-core machine, PyTorch's forward slowed 5-13x under load while OpenVINO (TBB) slowed 2-3x; sleeping threads
    fixed most of it. On an idle CPU, though, sleeping at once costs about 10 % (threads wake up late), and a
    brief spin of 10,000 rounds gets that back. So: a brief spin when the machine is idle as the process starts,
    sleep at once when it is busy (``wait_setting``; docs/benchmarks.md, Optimisations measured). The OpenMP runtime
    reads this once, when it is loaded, so it only works before ``import torch``; an explicit
    ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` in the environment is kept.
    """
    if WAIT_POLICY in os.environ or SPIN_COUNT in os.environ:
        return "as set in the environment"
    if _openmp_loaded():
        log.debug("OpenMP is already loaded: its threads keep their default wait policy")
        return "OpenMP's default (it was loaded first)"
    setting = wait_setting()
    os.environ.update(setting)
    return "brief spin (idle CPU)" if SPIN_COUNT in setting else "sleep at once (busy CPU)"


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
