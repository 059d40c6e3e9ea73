"""Process-wide tuning, applied only when a front end asks for it (never as a side effect of building an engine).

``configure_process()`` is called once by the command line, the desktop app and the VapourSynth filter; a library
user who wants the same calls it too. It raises glibc's allocator thresholds (see ``tune_allocator``).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import sys

__all__ = ["ALLOCATOR_OPT_OUT", "configure_process", "tune_allocator"]

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc mallopt parameters (malloc.h)
_MMAP_THRESHOLD = 32 << 20  # glibc's upper limit on 64-bit
_TRIM_THRESHOLD = 1 << 30
ALLOCATOR_OPT_OUT = "HAT_PLUGIN_NO_MALLOPT"


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
    """Apply the process-wide settings the front ends want for inference (idempotent)."""
    tune_allocator()
