"""Per-point region reports and the statistics of Liu et al. Section 4 (Tables 3-7, Fig. 6).

- :func:`describe_region`: everything about the region of one point (pattern, H-rep, active bits,
  neighbours, Chebyshev ball, boundary distance, smallest in-region decision-changing perturbation).
- :func:`region_stats`: Chebyshev radius, active-bit count and boundary distance of the regions holding
  many points, grouped in named sets (train / test / adversarial), with a summary table (their Tables 6-7).
- :func:`hamming_at_distance` (their Table 4), :func:`nearest_neighbour_agreement` (Table 3),
  :func:`walk_counts` (Table 5: Hamming distance vs regions crossed on the segment between two points).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geometry.errors import CancelledError, SplineAtlasError
from geometry.regions.affine import HRep, boundary_distance, hreps_from_patterns, pairwise_hamming, patterns_of
from geometry.regions.linewalk import line_walk
from geometry.regions.lp import ActiveBits, Chebyshev, Neighbours, active_bits, as_box, chebyshev, neighbours
from geometry.regions.qp import RegionPerturbation, min_region_perturbation
from geometry.safe_io import atomic_open


REGION_SETS = ("train", "test", "adversarial")


def sample_region_sets(net, dataset, names, n: int, seed: int = 0, overshoot: float = 0.02, cancel=None) -> dict[str, np.ndarray]:
    """The point sets of a region-statistics study (Liu et al. Tables 6-7): ``n`` random training and test
    points (fixed ``seed``, test drawn first) and "adversarial" = DeepFool(test points) with ``overshoot``.
    One sampling for the CLI and the app, so their numbers agree. Returns name -> (n, D) float64."""
    names = list(names)
    bad = [s for s in names if s not in REGION_SETS]
    if bad or not names:
        raise SplineAtlasError(f"region statistics: sets must be among {', '.join(REGION_SETS)}; got {names}.")
    if int(n) < 1:
        raise SplineAtlasError(f"region statistics need at least one point per set; got n = {n}.")
    rng = np.random.default_rng(seed)

    def pick(X):
        X = np.asarray(X, np.float64)
        return X[np.sort(rng.choice(len(X), size=min(int(n), len(X)), replace=False))]

    X_test = pick(dataset.X_test)
    out: dict[str, np.ndarray] = {}
    for s in names:
        if s == "train":
            out[s] = pick(dataset.X_train)
        elif s == "test":
            out[s] = X_test
        else:
            from geometry.boundary.deepfool import deepfool

            out[s] = deepfool(net, X_test, overshoot=overshoot, cancel=cancel).perturbed
    return out


def data_box(X_train, extra=(), margin: float = 0.1) -> tuple[float, float]:
    """A box (lo, hi, same for every coordinate) around the training data and ``extra`` point sets, with a
    ``margin`` of the value range on each side: the default domain of the region LPs."""
    pts = [np.asarray(X_train, np.float64).reshape(len(X_train), -1)]
    pts += [np.asarray(e, np.float64).reshape(len(e), -1) for e in extra if len(e)]
    lo, hi = min(float(p.min()) for p in pts), max(float(p.max()) for p in pts)
    pad = margin * (hi - lo if hi > lo else 1.0)
    return lo - pad, hi + pad


@dataclass(frozen=True)
class RegionReport:
    """The region of one point x: see the fields' classes. ``boundary_distance`` is exact (no LP),
    ``nearest_bit`` the bit whose hyperplane realises it; ``predicted`` the class at x."""

    x: np.ndarray
    hrep: HRep
    active: ActiveBits
    neighbours: Neighbours
    chebyshev: Chebyshev | None
    boundary_distance: float
    nearest_bit: int
    predicted: int
    perturbation: RegionPerturbation | None

    def to_json(self) -> dict:
        h = self.hrep
        offs = h.layer_offsets
        return {
            "pattern": "".join("1" if v else "0" for v in h.pattern),
            "layer_offsets": offs.tolist(),
            "n_bits": h.n_bits,
            "active_bits": self.active.bits.tolist(),
            "active_count": self.active.count,
            "active_per_layer": np.bincount(np.searchsorted(offs, self.active.bits, side="right") - 1, minlength=len(offs) - 1).tolist(),
            "lps_solved": self.active.n_lps,
            "neighbours": [
                {"flipped_bit": int(b), "layer": h.layer_of(int(b)), "verified": bool(v), "chebyshev_radius": None if not np.isfinite(r) else float(r)}
                for b, v, r in zip(self.neighbours.bits, self.neighbours.verified, self.neighbours.radius)
            ],
            "chebyshev": None if self.chebyshev is None else {"centre": self.chebyshev.centre.tolist(), "radius": self.chebyshev.radius},
            "boundary_distance": self.boundary_distance,
            "nearest_bit": self.nearest_bit,
            "predicted": self.predicted,
            "affine_map": {"W": h.W.tolist(), "b": h.b.tolist()},
            "min_perturbation": None if self.perturbation is None else self.perturbation.to_json(),
        }


def describe_region(net, x, box=None, active_box: bool = False, check_neighbours: bool = False, perturbation: bool = True, device=None) -> RegionReport:
    """Full report on the region of x ((D,) array). box: (lo, hi) for the Chebyshev LP (needed when the
    region is unbounded) and, with ``active_box``, for the active bits too (default: active bits in all
    of R^D, as the article). check_neighbours: also solve each neighbour's Chebyshev LP."""
    x = np.asarray(x, np.float64).reshape(-1)
    h = hreps_from_patterns(net, patterns_of(net, x[None, :], device=device), device=device)[0]
    dist, kbit = boundary_distance(h, x)
    bx = as_box(box, h.dim)
    interior = x if dist > 0 and (bx is None or (np.all(x > bx[0]) and np.all(x < bx[1]))) else None
    act = active_bits(h, interior=interior, box=bx if (active_box or interior is None) else None)
    nb = neighbours(net, h, act, box=bx, chebyshev_check=check_neighbours, device=device)
    cb = chebyshev(h, box=bx) if bx is not None else None
    pert = min_region_perturbation(h, x, box=bx, rows=None) if perturbation and h.W.shape[0] > 1 else None
    return RegionReport(x, h, act, nb, cb, dist, kbit, int(np.argmax(h.logits(x))), pert)


@dataclass(frozen=True)
class RegionStats:
    """Per-point region statistics: set_names (N,) str; index (N,) within its set; radius (N,) Chebyshev
    radius of region ∩ box (NaN when the region does not meet the box); active (N,) active-bit count (in R^D); boundary (N,) exact distance to the
    region's boundary; predicted (N,) class."""

    set_names: np.ndarray
    index: np.ndarray
    radius: np.ndarray
    active: np.ndarray
    boundary: np.ndarray
    predicted: np.ndarray
    box: tuple

    def summary(self) -> dict:
        """{set: {quantity: {mean, sd, max, min, n}}} (their Tables 6-7 layout)."""
        out = {}
        for s in dict.fromkeys(self.set_names.tolist()):
            m = self.set_names == s
            out[s] = {}
            acts = self.active[m].astype(float)
            for name, v in (("radius", self.radius[m]), ("active", np.where(acts >= 0, acts, np.nan)), ("boundary", self.boundary[m])):
                v = v[np.isfinite(v)]
                out[s][name] = {
                    "mean": float(v.mean()) if len(v) else None,
                    "sd": float(v.std()) if len(v) else None,
                    "max": float(v.max()) if len(v) else None,
                    "min": float(v.min()) if len(v) else None,
                    "n": int(len(v)),
                }
        return out

    def write_csv(self, path) -> None:
        with atomic_open(Path(path), "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["set", "index", "predicted", "chebyshev_radius", "active_bits", "boundary_distance"])
            for row in zip(self.set_names, self.index, self.predicted, self.radius, self.active, self.boundary):
                w.writerow([row[0], int(row[1]), int(row[2]), f"{row[3]:.9g}", int(row[4]), f"{row[5]:.9g}"])

    def write_summary_csv(self, path) -> None:
        with atomic_open(Path(path), "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["set", "quantity", "mean", "sd", "max", "min", "n"])
            for s, qs in self.summary().items():
                for q, d in qs.items():
                    w.writerow([s, q, d["mean"], d["sd"], d["max"], d["min"], d["n"]])


def region_stats(net, sets: dict[str, np.ndarray], box, device=None, active: bool = True, progress=None, cancel=None) -> RegionStats:
    """Chebyshev radius (region ∩ box), active-bit count and boundary distance for the region of every
    point of every named set (e.g. {"train": X1, "test": X2, "adversarial": X3}, each (n, D)).
    active=False skips the active bits (their count is then -1): one LP per point instead of hundreds."""
    names, idx, rad, act, bd, pred = [], [], [], [], [], []
    total = sum(len(v) for v in sets.values())
    done = 0
    bx = as_box(box, net.input_dim)
    for name, X in sets.items():
        X = np.asarray(X, np.float64).reshape(-1, net.input_dim)
        P = patterns_of(net, X, device=device)
        hs = hreps_from_patterns(net, P, device=device)
        for i, (x, h) in enumerate(zip(X, hs)):
            if cancel is not None and cancel():
                raise CancelledError("region statistics were cancelled.")
            d, _ = boundary_distance(h, x)
            if active:
                a = active_bits(h, interior=x if d > 0 else None, box=None if d > 0 else bx)
                c = chebyshev(h, box=bx, rows=a.bits if d > 0 else None)
            else:
                c = chebyshev(h, box=bx)
            names.append(name)
            idx.append(i)
            rad.append(c.radius if c.radius > 0 else np.nan)  # NaN: the region does not meet the box
            act.append(a.count if active else -1)
            bd.append(d)
            pred.append(int(np.argmax(h.logits(x))))
            done += 1
            if progress is not None:
                progress(done / total, f"{name} {i + 1}/{len(X)}")
    return RegionStats(np.array(names), np.array(idx, np.int64), np.array(rad), np.array(act, np.int64), np.array(bd), np.array(pred, np.int64), bx)


def hamming_at_distance(net, X, radius: float, samples: int = 1, seed: int = 0, device=None) -> np.ndarray:
    """Hamming distance between each point and random points at Euclidean distance ``radius`` from it
    (their Table 4). X: (N, D) -> (N, samples) int64."""
    X = np.asarray(X, np.float64)
    rng = np.random.default_rng(seed)
    u = rng.standard_normal((len(X), samples, X.shape[1]))
    u /= np.linalg.norm(u, axis=2, keepdims=True)
    Y = (X[:, None, :] + radius * u).reshape(-1, X.shape[1])
    P = patterns_of(net, X, device=device)
    Q = patterns_of(net, Y, device=device).reshape(len(X), samples, -1)
    return np.count_nonzero(P[:, None, :] != Q, axis=2).astype(np.int64)


def nearest_neighbour_agreement(net, X, y, device=None) -> dict:
    """Leave-one-out 1-nearest-neighbour label agreement with Euclidean vs Hamming (pattern) distance
    (their Table 3). Hamming ties are broken by Euclidean distance. Returns {"euclidean", "hamming"}."""
    X = np.asarray(X, np.float64)
    y = np.asarray(y)
    P = patterns_of(net, X, device=device)
    E = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(E, np.inf)
    H = pairwise_hamming(P).astype(np.float64)
    np.fill_diagonal(H, np.inf)
    Hn = H + E / (np.nanmax(E[np.isfinite(E)]) + 1.0) * 0.5  # Hamming first, Euclidean as tie-break
    return {"euclidean": float(np.mean(y[np.argmin(E, 1)] == y)), "hamming": float(np.mean(y[np.argmin(Hn, 1)] == y))}


@dataclass(frozen=True)
class PairDistances:
    """Segment pairs A[k] -> B[k]: euclidean (n,), hamming (n,) of the endpoint patterns, regions (n,)
    crossed by the segment (exact line walk), max_step (n,) largest Hamming jump between consecutive
    regions on the segment (1 unless the segment passes through a lower-dimensional face)."""

    euclidean: np.ndarray
    hamming: np.ndarray
    regions: np.ndarray
    max_step: np.ndarray


def pair_distances(net, A, B, device=None, cancel=None) -> PairDistances:
    """Euclidean vs Hamming distance vs regions crossed for point pairs (Liu et al. Tables 4-5)."""
    A = np.asarray(A, np.float64)
    B = np.asarray(B, np.float64)
    eu, ham, nreg, mx = [], [], [], []
    for a, b in zip(A, B):
        if cancel is not None and cancel():
            raise CancelledError("pair distances were cancelled.")
        w = line_walk(net, a, b, device=device)
        eu.append(w.euclidean)
        ham.append(int(np.count_nonzero(w.patterns[0] != w.patterns[-1])))
        nreg.append(w.n_regions)
        mx.append(int(w.hamming.max(initial=0)))
    return PairDistances(np.array(eu), np.array(ham, np.int64), np.array(nreg, np.int64), np.array(mx, np.int64))


def walk_counts(net, A, B, device=None) -> tuple[np.ndarray, np.ndarray]:
    """For segment pairs A[k] -> B[k] ((n, D) each): (Hamming distance of the endpoints, number of regions
    the segment crosses, exactly) — their Table 5."""
    ham, nreg = [], []
    for a, b in zip(np.asarray(A, np.float64), np.asarray(B, np.float64)):
        w = line_walk(net, a, b, device=device)
        ham.append(int(np.count_nonzero(w.patterns[0] != w.patterns[-1])))
        nreg.append(w.n_regions)
    return np.array(ham, np.int64), np.array(nreg, np.int64)
