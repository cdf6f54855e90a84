"""Give the C heap's free memory back to the operating system between the engine's big steps.

glibc keeps the memory of freed tensors of a few MB in its heap (its mmap threshold grows to the
largest block freed, up to 32 MB), and a heap that is fragmented by many such blocks cannot shrink
from its top. ``malloc_trim(0)`` returns every free page of the heap wherever it lies; Dask's workers
do the same to keep their memory honest. The engine calls :func:`release_free_memory` once per layer,
so the peak resident memory of a tessellation is its live data plus one layer's work, not the sum of
the holes left by earlier layers. Elsewhere than glibc (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import lru_cache


@lru_cache(maxsize=1)
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Return the heap's free pages to the OS; True when it could (glibc), False where it does nothing."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
