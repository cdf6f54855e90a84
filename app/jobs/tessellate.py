"""Exact tessellations of a 2D or 3D slice window, cached, for every face (window, 3D tab, CLI, exports).

A tessellation is keyed by (checkpoint content hash, slice, window or box, region budget), so the window,
a prefetching worker and an export of the same view share one computation.
"""

from __future__ import annotations

import numpy as np

from geometry.cache import ResultCache, cache_key
from geometry.errors import CancelledError, SplineAtlasError
from geometry.slices import Slice
from geometry.tessellation import has_slope_norms, region_slope_norms, tessellate_all_depths, with_slope_norms

from .bundle import Cancel, Progress, RunBundle, check_cancel

TESSELLATION_VERSION = 2  # bump when what is cached under a tessellation key changes (2: max-pool pieces merged, LayerCodes)


def tessellation_key(bundle: RunBundle, epoch_index: int, slice_: Slice, window, max_regions: int) -> str:
    return cache_key(
        f"tessellation-{slice_.dim}d",
        TESSELLATION_VERSION,
        bundle.checkpoint_hash(epoch_index),
        slice_.origin,
        slice_.basis,
        np.asarray(window, dtype=np.float64),
        int(max_regions),
    )


def tessellate_all(
    bundle: RunBundle,
    epoch_index: int,
    slice_: Slice,
    window,
    max_regions: int,
    cache: ResultCache | None = None,
    progress: Progress = None,
    cancel: Cancel = None,
    slopes: bool = True,
) -> list:
    """Exact tessellation of ``window`` ((4,) for a 2D slice, (6,) box for 3D) at every depth 1..L
    (a list of Tessellation2D / Tessellation3D), cached.

    ``slopes=False`` leaves the full-depth ||A_w||_2 as NaN unless the cache already has them: they are
    most of the time of a CNN's tessellation and only the slope colouring needs all of them (the inspector
    and a followed region compute their one region, :func:`slope_norm_of`). ``slopes=True`` computes them
    (only them, on a cached entry without them) and upgrades the cached entry in place.
    """
    key = tessellation_key(bundle, epoch_index, slice_, window, max_regions)
    result = cache.get(key) if cache is not None else None
    changed = result is None  # computed here, or upgraded with slopes: (re)stored
    if changed:
        net = bundle.network(epoch_index)
        window = np.asarray(window, dtype=np.float64)
        result = list(tessellate_all_depths(net, slice_, window, max_regions=int(max_regions), progress=progress, cancel=cancel, slope_norm=False))
    if slopes and not has_slope_norms(result[-1]):
        if progress is not None:
            progress(0.98, f"slope norms ‖A_ω‖₂ of {result[-1].num_regions:,} regions")
        result = result[:-1] + [with_slope_norms(bundle.network(epoch_index), result[-1], cancel=cancel)]
        changed = True
    if cache is not None and changed:
        cache.put(key, result)
    return result


def budget_note(tess) -> str:
    """How a tessellation kept to the memory budget, said the same way by the status bar, the 3D tab and
    ``tessellate --summary``: "in N chunks", "glued from N sub-windows", both, or "" (it fitted at once)."""
    parts = [f"in {tess.chunks} chunks"] if getattr(tess, "chunks", 1) > 1 else []
    parts += [f"glued from {tess.pieces} sub-windows"] if getattr(tess, "pieces", 1) > 1 else []
    return " and ".join(parts)


def slope_norm_of(bundle: RunBundle, epoch_index: int, tess, region: int) -> float:
    """||A_w||_2 of one full-depth region of ``tess`` (the cached number when known, else computed for
    that region only); NaN for region -1 (outside the window)."""
    if region < 0:
        return float("nan")
    known = float(tess.slope_norm[region])
    if not np.isnan(known):
        return known
    return float(region_slope_norms(bundle.network(epoch_index), tess, [region])[0])


def tessellate_every_epoch(
    bundle: RunBundle, slice_: Slice, window, max_regions: int, cache: ResultCache, progress: Progress = None, cancel: Cancel = None
) -> np.ndarray:
    """Tessellate the window at every checkpoint into the cache (newest checkpoint first); returns the
    (E,) full-depth region counts (NaN where the budget was exceeded)."""
    E = len(bundle.run)
    counts = np.full(E, np.nan)
    for n, i in enumerate(range(E - 1, -1, -1)):
        check_cancel(cancel, "tessellating every epoch")
        if progress:
            progress(n / E, f"epoch {bundle.epochs[i]} ({n + 1}/{E})")
        try:
            counts[i] = tessellate_all(bundle, i, slice_, window, max_regions, cache, cancel=cancel)[-1].num_regions
        except CancelledError:
            raise
        except SplineAtlasError:
            pass
    return counts


def cached_region_counts(bundle: RunBundle, slice_: Slice, window, max_regions: int, cache: ResultCache) -> np.ndarray:
    """(E,) full-depth region counts of the window for the epochs whose tessellation is in memory (NaN elsewhere)."""
    out = np.full(len(bundle.run), np.nan)
    for i in range(len(out)):
        hit = cache.peek(tessellation_key(bundle, i, slice_, window, max_regions))
        if hit is not None:
            out[i] = hit[-1].num_regions
    return out
