"""A region followed through training: the exact tile holding one slice point at every checkpoint.

For each checkpoint the window's own tessellation (:func:`app.jobs.tessellate_all`, cached) is searched
for the tile holding the point ``u``; the track records that tile's polygon, area, slope norm ‖A_ω‖₂,
predicted class, its activation pattern's Hamming distance to the previous checkpoint's tile, and
whether the class changed. The window's Training tab plots it; ``splineatlas follow`` writes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geometry.errors import CancelledError, SplineAtlasError
from geometry.slices import Slice

from .bundle import Cancel, Progress, RunBundle, check_cancel
from .tessellate import slope_norm_of, tessellate_all


@dataclass(frozen=True, eq=False)
class RegionTrack:
    """The tile holding ``u`` at each of E checkpoints. epochs (E,); region (E,) tile index (-1 where the
    budget was exceeded); polygons: E arrays (n, 2) in slice coordinates; area (E,) in slice units²;
    slope_norm (E,); classes (E,) (-1 when unknown); hamming (E,) bits that differ from the previous
    checkpoint's tile (NaN at the first); class_changed (E,) bool."""

    u: tuple[float, float]
    epochs: np.ndarray
    region: np.ndarray
    polygons: tuple
    area: np.ndarray
    slope_norm: np.ndarray
    classes: np.ndarray
    hamming: np.ndarray
    class_changed: np.ndarray


def _full_pattern(tess, r: int) -> np.ndarray:
    return np.concatenate([np.asarray(tess.pattern(j)[r]).astype(np.int64).reshape(-1) for j in range(tess.depth)])


def follow_region(
    bundle: RunBundle,
    slice_: Slice,
    window,
    u,
    max_regions: int,
    cache=None,
    progress: Progress = None,
    cancel: Cancel = None,
) -> RegionTrack:
    """The track of the tile holding slice point ``u`` (inside ``window``) over every checkpoint."""
    u = (float(u[0]), float(u[1]))
    w = [float(v) for v in window]
    if slice_.dim != 2 or not (w[0] <= u[0] <= w[1] and w[2] <= u[1] <= w[3]):
        raise SplineAtlasError(f"the point {u} must lie in the 2D window {tuple(w)} to be followed.")
    if not bundle.piecewise_affine:
        raise SplineAtlasError("this network is not piecewise affine: it has no exact regions to follow.")
    E = len(bundle.run)
    region = np.full(E, -1, dtype=np.int64)
    area, slope, ham = np.full(E, np.nan), np.full(E, np.nan), np.full(E, np.nan)
    classes = np.full(E, -1, dtype=np.int64)
    polygons: list[np.ndarray] = []
    previous = None
    for i in range(E):
        check_cancel(cancel, "following the region")
        if progress is not None:
            progress(i / E, f"epoch {bundle.epochs[i]} ({i + 1}/{E})")
        try:
            tess = tessellate_all(bundle, i, slice_, w, max_regions, cache, cancel=cancel, slopes=False)[-1]
        except CancelledError:
            raise
        except SplineAtlasError:  # over the budget at this checkpoint: no tile (-1), the track goes on
            polygons.append(np.zeros((0, 2)))
            previous = None
            continue
        r = int(tess.region_of(np.array([u]))[0])
        if r < 0:
            polygons.append(np.zeros((0, 2)))
            previous = None
            continue
        region[i] = r
        polygons.append(tess.polygon(r).copy())
        area[i] = float(tess.areas()[r])
        slope[i] = slope_norm_of(bundle, i, tess, r)
        classes[i] = int(tess.classes[r])
        pattern = _full_pattern(tess, r)
        if previous is not None and len(previous) == len(pattern):
            ham[i] = float(np.count_nonzero(previous != pattern))
        previous = pattern
    changed = np.zeros(E, dtype=bool)
    known = classes >= 0
    changed[1:] = known[1:] & known[:-1] & (classes[1:] != classes[:-1])
    if progress is not None:
        progress(1.0, "done")
    return RegionTrack(u, np.asarray(bundle.epochs, dtype=np.int64), region, tuple(polygons), area, slope, classes, ham, changed)
