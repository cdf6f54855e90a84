"""Colours of a 3D tessellation's faces (the 3D tab and ``splineatlas render3d``), from the one palette, so
a class, a layer and an activation pattern have the same colour in 3D as in the 2D view."""

from __future__ import annotations

import numpy as np

from geometry.tessellation.mesh3d import face_cells

from . import palette
from .tiles import pattern_hashes

FACE_COLOR_MODES = ("class", "slope", "volume", "layer", "hash")


def face_values(tess, mode: str) -> np.ndarray:
    """(F,) value per face for colour ``mode``.

    class: the owning cell's class (int, -1 unknown); slope: the cell's ||A_w|| (NaN at partial depth);
    volume: the log volume change log sqrt(det(AᵀA)) of the cell's map (a 3-latent generator's stretch);
    layer: the 0-based layer that created the face's plane (-1: the domain box); hash: the cell's
    pattern hash (uint32).
    """
    fc = face_cells(tess)
    if mode == "class":
        return np.asarray(tess.classes, dtype=np.int64)[fc]
    if mode == "slope":
        return np.asarray(tess.slope_norm, dtype=np.float64)[fc]
    if mode == "volume":
        return log_volume_change(tess)[fc]
    if mode == "layer":
        return np.asarray(tess.face_layer, dtype=np.int64)
    if mode == "hash":
        return pattern_hashes(tess.codes, tess.num_regions)[fc]
    raise ValueError(f"face colour mode must be one of {FACE_COLOR_MODES}, got {mode!r}")


def colorize(values: np.ndarray, mode: str, alpha: float = 0.35, depth: int | None = None, levels: tuple[float, float] | None = None) -> np.ndarray:
    """(F,) face values -> (F, 4) float32 RGBA in [0, 1].

    class: the class palette; slope: the slope colour map over ``levels`` (default: the finite values'
    min..max); layer: face layer -1 (the domain box, grey) .. L-1 on the layer ramp of ``depth`` layers
    (default: the largest value + 1); hash: the hash palette. Unknown values (class -1, NaN) are grey.
    """
    v = np.asarray(values)
    n = v.shape[0]
    rgb = np.zeros((n, 4))
    known = np.ones(n, dtype=bool)
    if mode == "class":
        known = v >= 0
        rgb[known] = palette.class_rgba(int(v.max(initial=0)) + 1)[v[known].astype(np.int64)]
    elif mode == "slope":
        known = np.isfinite(v)
        if known.any():
            lo, hi = levels if levels is not None else (float(v[known].min()), float(v[known].max()))
            rgb[known] = palette.colormap(palette.SLOPE_CMAP, (v[known] - lo) / max(hi - lo, 1e-300))
    elif mode == "layer":
        L = int(v.max(initial=-1)) + 1 if depth is None else int(depth)
        pal = palette.layer_rgba(L)
        rgb = pal[np.clip(v.astype(np.int64) + 1, 0, len(pal) - 1)].copy()
    elif mode == "hash":
        pal = palette.hash_palette()
        rgb = pal[(v.astype(np.uint64) % np.uint64(len(pal))).astype(np.int64)].copy()
    else:
        raise ValueError(f"face colour mode must be one of {FACE_COLOR_MODES}, got {mode!r}")
    rgb[:, 3] = float(alpha)
    rgb[~known] = palette.UNKNOWN
    return rgb.astype(np.float32)


def log_volume_change(tess) -> np.ndarray:
    """(R,) log sqrt(det(A_ωᵀA_ω)) of each full-depth cell's map on the slice (-inf where it is flat)."""
    from geometry.generative import volume_change

    if tess.out_linear is None:
        return np.full(tess.num_regions, np.nan)
    with np.errstate(divide="ignore"):
        return np.log(volume_change(np.asarray(tess.out_linear, dtype=np.float64)))


__all__ = ["FACE_COLOR_MODES", "colorize", "face_values", "log_volume_change"]
