"""Chunks of one depth's regions: how many a layer needs, and the 2D engine's results for them put back
together as one tessellation.

When a layer does not fit the memory budget, the regions of that depth go through the rest of the network
in chunks, one after the other (:func:`geometry.tessellation.engine._chunked`). A region never straddles
two chunks, so every deeper depth is the chunks' regions one after the other: this module shifts their
indices (parents, codes' rows, offsets, boundary and argmax-cell regions) and concatenates.
"""

from __future__ import annotations

import numpy as np

from geometry.tessellation.types import LayerCodes

# full-depth outputs: concatenated as they are, or shifted by the chunk's first full-depth region
_PER_REGION = ("out_linear", "out_offset", "slope_norm", "classes", "class_mixed", "classes_const")
_PLAIN = _PER_REGION + ("segments", "segment_classes", "cell_vertices", "cell_class")
_REGION_INDEX = ("segment_region", "cell_region")


def chunk_count(need: int, budget: int) -> int:
    """Chunks for work of ``need`` bytes to fit ``budget`` (with a margin: chunks are never quite equal)."""
    return max(2, int(np.ceil(1.5 * need / budget)))


def starts(counts) -> np.ndarray:
    """(n + 1,) where each of n consecutive blocks of ``counts`` starts, and the total."""
    return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)


def cat_offsets(offsets: list, shifts: np.ndarray) -> np.ndarray:
    """Ragged offset arrays ``(n_i + 1,)`` of blocks laid one after the other, block i's items shifted by ``shifts[i]``."""
    return np.concatenate([[0]] + [o[1:] + shifts[i] for i, o in enumerate(offsets)]).astype(np.int64)


def concat_chunks(parts: list, bounds: np.ndarray, depth0: int) -> tuple[list, dict]:
    """One tessellation's records and full-depth outputs from its chunks' own.

    ``parts[i] = (records, full)`` of chunk i, the regions ``bounds[i]:bounds[i + 1]`` of depth ``depth0``;
    each chunk's codes of layers ``0..depth0-1`` index the shared arrays of the whole (see
    ``engine._restrict``), its deeper layers' codes are its own. Record k of a chunk is depth ``depth0 + 1 + k``.
    """
    n_depths = len(parts[0][0])
    sizes = [starts([p[0][k]["offsets"].shape[0] - 1 for p in parts]) for k in range(n_depths)]  # chunk starts per depth
    records = []
    for k in range(n_depths):
        recs = [p[0][k] for p in parts]
        base = bounds if k == 0 else sizes[k - 1]  # where each chunk's parents start
        own, rows = [], []
        for l in range(depth0 + 1 + k):
            chunk_rows = [r["codes"].rows[l] for r in recs]
            if l < depth0:  # shared: every chunk's rows index the same array
                own.append(recs[0]["codes"].own[l])
                rows.append(np.concatenate([np.asarray(r) for r in chunk_rows]).astype(np.int32))
                continue
            own.append(np.concatenate([r["codes"].own[l] for r in recs]))
            if chunk_rows[0] is None:  # cut at this depth: the rows are the regions
                rows.append(None)
            else:  # this layer's own codes live on depth l + 1: record l - depth0 of each chunk
                rows.append(np.concatenate([np.asarray(c) + sizes[l - depth0][i] for i, c in enumerate(chunk_rows)]).astype(np.int32))
        records.append(
            dict(
                vertices=np.concatenate([r["vertices"] for r in recs]),
                offsets=cat_offsets([r["offsets"] for r in recs], starts([r["vertices"].shape[0] for r in recs])),
                edge_layer=np.concatenate([r["edge_layer"] for r in recs]),
                codes=LayerCodes(tuple(own), tuple(rows), n=int(sizes[k][-1])),
                parent=np.concatenate([r["parent"] + base[i] for i, r in enumerate(recs)]).astype(np.int64),
                seconds=max(r["seconds"] for r in recs),
            )
        )
    full = {}
    fulls = [p[1] for p in parts]
    if fulls[0]:
        region0 = sizes[-1] if n_depths else bounds  # no cut in the chunks: their regions are the full-depth ones
        for key in _PLAIN:
            full[key] = np.concatenate([f[key] for f in fulls])
        for key in _REGION_INDEX:
            full[key] = np.concatenate([f[key] + region0[i] for i, f in enumerate(fulls)]).astype(np.int64)
        full["cell_offsets"] = cat_offsets([f["cell_offsets"] for f in fulls], starts([f["cell_vertices"].shape[0] for f in fulls]))
        if set(full) != set(fulls[0]):  # pragma: no cover  (a new output must be added above)
            raise KeyError(f"internal: chunks' outputs {sorted(set(fulls[0]) ^ set(full))} are not concatenated")
    return records, full
