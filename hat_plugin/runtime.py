"""Process-wide tuning, applied only when a front end asks for it (never as a side effect of building an engine).

``configure_process()`` is called once by the command line, the desktop app and the VapourSynth filter, before
they import PyTorch; a library user who wants the same calls it too. It makes idle OpenMP threads sleep instead of
spin (see ``passive_threads``) and raises glibc's allocator thresholds (see ``tune_allocator``).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import sys

__all__ = ["ALLOCATOR_OPT_OUT", "WAIT_POLICY", "configure_process", "passive_threads", "tune_allocator"]

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)
_MMAP_THRESHOLD = 32 << 20  # glibc's upper limit on 64-bit
_TRIM_THRESHOLD = 1 << 30
ALLOCATOR_OPT_OUT = "HAT_PLUGIN_NO_MALLOPT"
WAIT_POLICY = "OMP_WAIT_POLICY"
_SPIN_COUNT = "GOMP_SPINCOUNT"
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


@functools.cache
def passive_threads() -> bool:
    """Make PyTorch's idle OpenMP threads sleep at once instead of spinning (``OMP_WAIT_POLICY=PASSIVE``).

    By default each OpenMP worker busy-waits for its next task. On a CPU shared with other programs a spinning
    thread takes a core from them, and one that the OS has descheduled holds every barrier up: measured on a
    2-core machine, PyTorch's forward slowed 5-13x under load while OpenVINO (TBB) slowed 2-3x; sleeping threads
    fixed most of it (see docs/benchmarks.md, "Shared CPU"). The OpenMP runtime reads the policy once, when it is
    loaded, so this only works before ``import torch``; an explicit ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` in
    the environment is kept. Returns whether the policy is (now) passive.
    """
    current = os.environ.get(WAIT_POLICY)
    if current is not None or _SPIN_COUNT in os.environ:
        return (current or "").strip().upper() == "PASSIVE"
    if _openmp_loaded():
        log.debug("OpenMP is already loaded: its threads keep their default wait policy")
        return False
    os.environ[WAIT_POLICY] = "PASSIVE"
    return True


@functools.cache
def tune_allocator() -> bool:
    """Keep freed tensor buffers inside the process instead of returning them to the OS after every op.

    glibc serves blocks above its mmap threshold (128 KiB, adaptive) with fresh mmaps and trims the heap when
    its top is free: each forward pass then faults all of its activation memory in again, hundreds of
    thousands of minor page faults per tile, a large share of CPU time. Raising both thresholds once makes
    glibc reuse those pages. Linux with glibc only; set ``HAT_PLUGIN_NO_MALLOPT=1`` to opt out.
    Returns whether the tuning was applied.
    """
    if os.environ.get(ALLOCATOR_OPT_OUT) or not sys.platform.startswith("linux"):
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
    passive_threads()
    tune_allocator()
