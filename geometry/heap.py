"""Give the C heap's free memory back to the operating system between the engine's big steps.

glibc keeps the memory of freed tensors of a few MB in its heap (its mmap threshold grows to the
largest block freed, up to 32 MB), and a heap that is fragmented by many such blocks cannot shrink
from its top. ``malloc_trim(0)`` returns every free page of the heap wherever it lies; Dask's workers
do the same to keep their memory honest. The 3D engine calls :func:`release_free_memory` after every
layer and the 2D engine after every big one (:func:`release_if_large`), so the peak resident memory of a
tessellation is its live data plus one layer's work, not the sum of the holes left by earlier layers.
Elsewhere than glibc (macOS, Windows, musl) it does nothing.

The other way round, :func:`reuse_freed_memory` (called once by the app and the CLI at start-up) keeps
freed memory in the heap: glibc gives every block over 32 MB its own mmap and unmaps it when freed,
and worker threads get arenas of their own that mmap too, so each layer's maps (hundreds of MB) are
fresh pages that the kernel faults in and zeroes -- 300k page faults, a third of an epoch change of the
digits demo in the window's worker thread. With one arena and no mmap, the next layer and the next
epoch reuse those pages; :func:`release_if_large` still trims after a layer that is a large part of the
memory budget, and the app trims when it has been idle for a minute.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import lru_cache


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_MAX, _M_ARENA_MAX = -1, -2, -4, -8
KEEP_AT_TOP_BYTES = 1 << 30  # free memory at the heap's top that glibc keeps instead of returning it at once
TOP_PAD_BYTES = 64 << 20  # the heap grows by at least this much, so growing is rare
RELEASE_FRACTION = 0.125  # a layer whose work is at least this share of the memory budget is trimmed after,
RELEASE_BYTES = 512 << 20  # ... or at least this much: its holes would count against the peak


@lru_cache(maxsize=1)
def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc has both
    except (OSError, AttributeError):  # not glibc
        return None
    return libc


@lru_cache(maxsize=1)
def reuse_freed_memory() -> bool:
    """Make the process keep and reuse freed memory instead of unmapping it (see the module docstring):
    one arena for all threads, no per-block mmap, up to :data:`KEEP_AT_TOP_BYTES` kept at the top. Call
    before threads start; True when it applied (glibc), False where it does nothing."""
    libc = _libc()
    if libc is None:
        return False
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    settings = ((_M_ARENA_MAX, 1), (_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, KEEP_AT_TOP_BYTES), (_M_TOP_PAD, TOP_PAD_BYTES))
    return all(libc.mallopt(param, value) == 1 for param, value in settings)


def release_if_large(nbytes: int, budget: int | None) -> bool:
    """After a layer whose work took ``nbytes``: return the free pages when that is big (a large part of
    the memory budget, or :data:`RELEASE_BYTES`): a deeper layer, bigger, does not fit in those holes and
    the heap grows past them, so they would count against the peak. Smaller layers' holes are kept:
    the next layer reuses them without page faults."""
    if budget is not None and nbytes < min(RELEASE_FRACTION * budget, RELEASE_BYTES):
        return False
    return release_free_memory()


@lru_cache(maxsize=1)
def _malloc_trim():
    libc = _libc()
    if libc is None:
        return None
    trim = libc.malloc_trim
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
