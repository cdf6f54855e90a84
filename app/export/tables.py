"""Numbers out of the window's panels as CSV: one tidy table per panel (a row per epoch or per path step),
written atomically. The Training tab's accuracy/regions/Tr G curves and a path's diagnostics are written
here; the LC/density curves and the region tables use the engine's own writers
(:meth:`geometry.dynamics.DynamicsCurves.to_csv`, :meth:`geometry.regions.stats.RegionStats.write_csv`), the
same files ``splineatlas dynamics`` and ``splineatlas region-stats`` write.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from geometry.safe_io import atomic_open


def write_csv(path, header: list[str], columns: list) -> Path:
    """Write equal-length ``columns`` under ``header``: integers as integers, floats with 9 significant
    digits, NaN (not computed) as an empty cell."""
    cols = [np.asarray(c) for c in columns]
    if len(header) != len(cols) or len({len(c) for c in cols}) > 1:
        raise ValueError("a CSV table needs one column of equal length per header name")
    path = Path(path)
    with atomic_open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        for row in zip(*cols):
            w.writerow([_cell(v) for v in row])
    return path


def _cell(v) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, (int, np.integer, bool, np.bool_)):
        return str(int(v))
    f = float(v)
    return "" if not np.isfinite(f) else f"{f:.9g}"


def training_table(epochs, accuracy: dict[str, np.ndarray], regions=None, mean_trace=None) -> tuple[list[str], list]:
    """The Training tab's curves, a row per checkpoint: epoch, each recorded accuracy, the exact region count
    in the slice window (empty where not computed) and the mean Tr G (empty where not computed)."""
    e = np.asarray(epochs, dtype=np.int64)
    n = len(e)
    header, cols = ["epoch"], [e]
    for name, vals in accuracy.items():
        header.append(name)
        cols.append(np.asarray(vals, dtype=np.float64))
    header.append("regions_in_window")
    cols.append(np.full(n, np.nan) if regions is None else np.asarray(regions, dtype=np.float64))
    header.append("mean_trace_g")
    cols.append(np.full(n, np.nan) if mean_trace is None else np.asarray(mean_trace, dtype=np.float64))
    return header, cols


def path_table(result, class_names) -> tuple[list[str], list]:
    """A traced path's diagnostics (:class:`app.jobs.paths.PathResult`), a row per point: step, slice
    coordinates u, v, distance from the slice plane, distance to the target, Tr G, and p(class | x)."""
    C = result.probs.shape[1]
    names = [str(n) for n in list(class_names)[:C]] + [str(c) for c in range(len(class_names), C)]
    header = ["step", "u", "v", "off_plane", "distance_to_target", "trace_g"] + [f"p_{n}" for n in names]
    cols = [np.asarray(result.steps, dtype=np.int64), result.u[:, 0], result.u[:, 1], result.off_plane, result.distance, result.trace_g]
    cols += [result.probs[:, c] for c in range(C)]
    return header, cols


def track_table(track) -> tuple[list[str], list]:
    """A followed region (:class:`app.jobs.follow.RegionTrack`), a row per checkpoint: epoch, tile index
    (-1: not tessellated), area (slice units²), ‖A_ω‖₂, class, whether it changed, the Hamming distance of
    its pattern to the previous checkpoint's tile, and its polygon as ``u v;u v;...``."""
    polygons = np.array([";".join(f"{a:.10g} {b:.10g}" for a, b in p) for p in track.polygons], dtype=object)
    header = ["epoch", "region", "area", "slope_norm", "class", "class_changed", "hamming_to_previous", "vertices"]
    cols = [track.epochs, track.region, track.area, track.slope_norm, track.classes, track.class_changed.astype(np.int64), track.hamming, polygons]
    return header, cols
