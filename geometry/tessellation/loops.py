"""Ragged closed loops (polygons, face loops) stored flat with offsets: each item's successor.

Its own module, below both the tessellation types and the vertex table, so neither imports the other.
"""

from __future__ import annotations

import numpy as np


def next_in_loop(offsets: np.ndarray) -> np.ndarray:
    """(V,) index of each item's successor in its closed loop, for ragged loops ``offsets`` (L + 1,)
    (loop l is items offsets[l]:offsets[l + 1]; its last item's successor is its first; empty loops
    are skipped). The one place every polygon edge, face edge and shoelace sum gets its next vertex."""
    offsets = np.asarray(offsets, np.int64)
    n = int(offsets[-1]) if offsets.shape[0] else 0
    nxt = np.arange(1, n + 1, dtype=np.int64)
    filled = np.diff(offsets) > 0
    nxt[offsets[1:][filled] - 1] = offsets[:-1][filled]
    return nxt
