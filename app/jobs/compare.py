"""Two networks on one slice: the exact tiles of each (two epochs of a run, or the same epoch of two runs of
one architecture) and, for every tile, whether the *other* network has another activation pattern there.

"Changed" is decided at the tile's centroid (an interior point of the convex tile): the tile is highlighted
when the other network's pattern at that point differs from the tile's own pattern, and the Hamming
distance counts the differing units (a max-pool unit counts once when its argmax moved). Both patterns come
from float64 forward passes of the same points, so the test is exact for what it says; a tile whose pattern
is kept at its centroid may still be cut by the other network's new hyperplanes elsewhere.

The Compare tab and ``splineatlas compare`` call :func:`compare_epochs`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from geometry.errors import SplineAtlasError
from geometry.slices import Slice

from .bundle import Cancel, Progress, RunBundle, check_cancel
from .tessellate import tessellate_all


@dataclass(frozen=True, eq=False)
class CompareSide:
    """One side of a comparison: ``label`` (run name and epoch), its full-depth tiles ``by_depth`` (as the 2D
    tab's), and per tile of the full depth ``changed`` (R,) bool and ``hamming`` (R,) int64 against the
    other side."""

    bundle: RunBundle
    epoch_index: int
    label: str
    by_depth: list
    changed: np.ndarray
    hamming: np.ndarray

    @property
    def epoch(self) -> int:
        return int(self.bundle.epochs[self.epoch_index])

    def summary(self) -> dict:
        n = int(len(self.changed))
        k = int(self.changed.sum())
        return {
            "label": self.label,
            "run": self.bundle.run.name,
            "epoch": self.epoch,
            "regions": n,
            "changed_regions": k,
            "changed_fraction": k / n if n else 0.0,
            "mean_hamming": float(self.hamming.mean()) if n else 0.0,
            "max_hamming": int(self.hamming.max(initial=0)),
        }


@dataclass(frozen=True, eq=False)
class Comparison:
    """Both sides of one comparison on ``slice_`` over ``window``."""

    a: CompareSide
    b: CompareSide
    slice_: Slice
    window: tuple[float, float, float, float]

    def sides(self) -> tuple[CompareSide, CompareSide]:
        return (self.a, self.b)

    def summary(self) -> dict:
        return {"slice": self.slice_.description, "window": list(self.window), "a": self.a.summary(), "b": self.b.summary()}

    def text(self) -> str:
        a, b = self.a.summary(), self.b.summary()
        return (
            f"{a['label']}: {a['changed_regions']:,} of {a['regions']:,} regions change pattern at {b['label']} "
            f"(mean Hamming {a['mean_hamming']:.3g}) · {b['label']}: {b['changed_regions']:,} of {b['regions']:,} "
            f"change at {a['label']} (mean Hamming {b['mean_hamming']:.3g}) · decided at each region's centroid"
        )


def same_architecture(a: RunBundle, b: RunBundle) -> None:
    """Raise a one-line SplineAtlasError unless ``a`` and ``b`` have the same inputs and nonlinearities."""
    na, nb = a.network(-1), b.network(-1)
    if na.input_dim != nb.input_dim:
        raise SplineAtlasError(f"run {b.run.name} takes {nb.input_dim} inputs and run {a.run.name} {na.input_dim}; compare runs of one architecture.")
    wa = [(li.kind, li.width) for li in na.layer_infos]
    wb = [(li.kind, li.width) for li in nb.layer_infos]
    if wa != wb:
        raise SplineAtlasError(f"run {b.run.name}'s nonlinearities {wb} differ from run {a.run.name}'s {wa}; compare runs of one architecture.")
    if not (a.piecewise_affine and b.piecewise_affine):
        raise SplineAtlasError("comparing activation patterns needs piecewise-affine networks (ReLU-type, max-pool).")


def patterns_at(net64, X: np.ndarray, batch: int = 4096) -> list[np.ndarray]:
    """Every nonlinearity's pattern at the points X (N, D) from a forward pass of ``net64`` (a float64
    copy: ``Network.to_dtype_device``): (N, w) bool for ReLU-type layers, (N, w) int64 argmax for max-pooling."""
    out: list[list[np.ndarray]] = []
    with torch.no_grad():
        for s in range(0, len(X), batch):
            tr = net64.trace(torch.as_tensor(X[s : s + batch], dtype=torch.float64))
            out.append([p.cpu().numpy() for p in tr.patterns])
    if not out:
        return [np.zeros((0, li.width), bool) for li in net64.layer_infos]
    return [np.concatenate([o[j] for o in out]) for j in range(len(out[0]))]


def pattern_distance(p: list[np.ndarray], q: list[np.ndarray]) -> np.ndarray:
    """(N,) int64 number of units whose pattern differs (summed over layers)."""
    if not p:
        return np.zeros(0, np.int64)
    return sum(np.count_nonzero(a != b, axis=1) for a, b in zip(p, q)).astype(np.int64)


def compare_epochs(
    a: RunBundle,
    epoch_a: int,
    b: RunBundle,
    epoch_b: int,
    slice_: Slice,
    window,
    max_regions: int,
    cache=None,
    progress: Progress = None,
    cancel: Cancel = None,
) -> Comparison:
    """Tessellate ``window`` of ``slice_`` for network ``a[epoch_a]`` and ``b[epoch_b]`` (b may be a) and
    mark every tile whose pattern differs in the other network at its centroid."""
    if b is not a:
        same_architecture(a, b)
    ea, eb = epoch_a % len(a.run), epoch_b % len(b.run)
    if progress:
        progress(0.0, "tessellating the first network")
    ta = tessellate_all(a, ea, slice_, window, max_regions, cache=cache, cancel=cancel)
    check_cancel(cancel, "the comparison")
    if progress:
        progress(0.45, "tessellating the second network")
    tb = tessellate_all(b, eb, slice_, window, max_regions, cache=cache, cancel=cancel)
    check_cancel(cancel, "the comparison")
    if progress:
        progress(0.9, "comparing activation patterns")
    na, nb = (bd.network(e).to_dtype_device(torch.float64, "cpu") for bd, e in ((a, ea), (b, eb)))  # once each
    sides = []
    for own, other, tess, bd, e in ((na, nb, ta, a, ea), (nb, na, tb, b, eb)):
        X = slice_.to_input(tess[-1].centroids())
        d = pattern_distance(patterns_at(own, X), patterns_at(other, X))
        run = f"{bd.run.name} · " if b is not a else ""
        sides.append(CompareSide(bd, e, f"{run}epoch {bd.epochs[e]}", tess, d > 0, d))
    return Comparison(sides[0], sides[1], slice_, tuple(float(v) for v in window))
