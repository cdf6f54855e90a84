"""What a sweep measures on each trained network: every measure is a function of (run, network,
dataset, settings) returning named numbers (NaN where it does not apply), each one an engine call.

Measures: ``scores`` (the recorded accuracy, or MSE and R², and the loss; always included),
``regions_box`` (exact regions in the square of half-width ``box`` about the origin of the input plane,
or of the data's PCA plane when the input is not 2D), ``regions_plane`` (all regions of that plane,
bounded and unbounded), ``cells_3d`` (exact 3D cells in the cube of half-width ``box``: the input space
of 3-input nets, else the PCA 3-space), ``local_complexity`` (mean LC at train/test points),
``boundary_density`` (exact regions per small square at the data, on the decision boundary and at
random points), ``chebyshev`` (mean and median inradius of the regions holding test points).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from geometry.errors import SplineAtlasError
from geometry.slices import Slice

DEFAULT_SETTINGS = {"box": 1.0, "points": 256, "max_regions": 1_000_000, "lc_radius": None}


def _plane(net, ds, k: int = 2) -> Slice:
    if net.input_dim == k:
        return Slice.input_plane(k)
    if ds is None:
        raise SplineAtlasError(f"a {net.input_dim}-input network is measured in its data's PCA {k}-space; the run has no dataset.")
    X = np.asarray(ds.X_train, dtype=np.float64)
    return Slice.pca(X, k, description=f"PCA {k}-space of the training data")


def _points(ds, n: int, which: str) -> np.ndarray:
    X = ds.X_test if which == "test" and len(ds.X_test) else ds.X_train
    X = np.asarray(X, dtype=np.float64)
    if len(X) > n:
        X = X[np.sort(np.random.default_rng(0).choice(len(X), n, replace=False))]
    return X


def scores(run, net, ds, st) -> dict:
    last = run.checkpoints[-1].metrics
    keep = ("train_accuracy", "test_accuracy", "train_mse", "test_mse", "train_r2", "test_r2", "loss", "val_loss")
    return {k: (float(last[k]) if last.get(k) is not None else float("nan")) for k in keep if k in last}


def regions_box(run, net, ds, st) -> dict:
    from geometry.tessellation import tessellate

    b = float(st["box"])
    t = tessellate(net, _plane(net, ds), [-b, b, -b, b], max_regions=int(st["max_regions"]), boundary=False, slope_norm=False)
    return {"regions_box": t.num_regions}


def regions_plane(run, net, ds, st) -> dict:
    from geometry.regions.plane import count_plane_regions

    pc = count_plane_regions(net, _plane(net, ds), start=2 * float(st["box"]), max_regions=int(st["max_regions"]))
    return {"regions_plane": pc.regions, "bounded_plane": pc.bounded, "unbounded_plane": pc.unbounded}


def cells_3d(run, net, ds, st) -> dict:
    from geometry.tessellation import tessellate

    b = float(st["box"])
    t = tessellate(net, _plane(net, ds, 3), [-b, b, -b, b, -b, b], max_regions=int(st["max_regions"]), boundary=False, slope_norm=False)
    return {"cells_3d": t.num_regions}


def _lc_radius(ds, st) -> float:
    from geometry.dynamics import default_radius

    return float(st["lc_radius"]) if st.get("lc_radius") else default_radius(ds.X_train)


def local_complexity(run, net, ds, st) -> dict:
    from geometry.local_complexity import local_complexity as lc

    r = _lc_radius(ds, st)
    n = int(st["points"])
    return {f"lc_{w}": lc(net, _points(ds, n, w), r).mean_total for w in ("train", "test")}


def boundary_density(run, net, ds, st) -> dict:
    from geometry.dynamics import DynamicsSettings, _points as dynamics_points, checkpoint_dynamics

    n = int(st["points"])
    r = _lc_radius(ds, st)
    settings = DynamicsSettings(
        max_points=n, random_points=n, boundary_points=n, lc_radius=r, square_half_width=r, with_trace_g=False, with_boundary_distance=False
    )
    d = checkpoint_dynamics(net, run.epochs[-1], dynamics_points(ds, settings), settings)
    return {"density_data": d.density_data, "density_boundary": d.density_boundary, "density_random": d.density_random}


def chebyshev(run, net, ds, st) -> dict:
    from geometry.regions import chebyshev as inradius, hrep_at

    X = _points(ds, min(int(st["points"]), 64), "test")
    lo, hi = X.min(0), X.max(0)
    pad = 0.1 * (hi - lo) + 1e-9
    radii = np.array([inradius(hrep_at(net, x), (lo - pad, hi + pad)).radius for x in X])
    radii = radii[np.isfinite(radii)]
    return {"chebyshev_mean": float(radii.mean()) if len(radii) else float("nan"), "chebyshev_median": float(np.median(radii)) if len(radii) else float("nan")}


MEASURES: dict[str, Callable] = {
    "scores": scores,
    "regions_box": regions_box,
    "regions_plane": regions_plane,
    "cells_3d": cells_3d,
    "local_complexity": local_complexity,
    "boundary_density": boundary_density,
    "chebyshev": chebyshev,
}


COLUMNS: dict[str, tuple[str, ...]] = {
    "regions_box": ("regions_box",),
    "regions_plane": ("regions_plane", "bounded_plane", "unbounded_plane"),
    "cells_3d": ("cells_3d",),
    "local_complexity": ("lc_train", "lc_test"),
    "boundary_density": ("density_data", "density_boundary", "density_random"),
    "chebyshev": ("chebyshev_mean", "chebyshev_median"),
}


def measure(name: str, run, net, ds, settings) -> tuple[dict, str | None]:
    """One measure's columns, or NaN in each of them and the one-line reason when it cannot be taken on
    this network (a budget, vertices too far for a whole-plane count, ...): the row is kept."""
    try:
        return MEASURES[name](run, net, ds, settings), None
    except SplineAtlasError as exc:
        if name not in COLUMNS:
            raise
        return dict.fromkeys(COLUMNS[name], float("nan")), f"{name}: {exc}"


def check_measures(names) -> tuple[str, ...]:
    """The measures asked for, ``scores`` first; an unknown name is refused naming the known ones."""
    names = [n.strip() for n in names if n.strip()]
    bad = [n for n in names if n not in MEASURES]
    if bad:
        raise SplineAtlasError(f"--measures {', '.join(bad)}: unknown; choose from {', '.join(MEASURES)}.")
    return tuple(["scores"] + [n for n in dict.fromkeys(names) if n != "scores"])
