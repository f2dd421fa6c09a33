"""glibc's allocator set to keep freed activations for reuse during inference.

By default glibc serves each block over its mmap threshold (128 KiB, raised dynamically
to at most 32 MiB) with a fresh ``mmap`` and returns freed heap tops to the kernel, so
every ResNet-50 activation at 224 px is a new mapping whose pages fault in on first
write: measured here, a 25 MB ``add`` took 12 ms in a forward pass and 1.5 ms alone,
and the whole batch-8 forward 10-25% longer (dense and sparse alike). Raising both
thresholds keeps freed blocks in the heap. The setting is process-wide: ``ticketzoo bench``
and ``predict`` apply it before every measurement, so dense baselines get it too.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

_log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's ceiling on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1 << 30


@functools.cache
def keep_freed_memory() -> bool:
    """Apply the thresholds (once per process); False where the C library is not glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl, macOS, Windows: no mallopt; nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    ok = mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    _log.debug("allocator: mmap threshold %d, trim threshold %d (%s)", MMAP_THRESHOLD, TRIM_THRESHOLD,
               "applied" if ok else "refused")
    return ok
