"""The one path tracer: horizontal and normal leaf paths, same-class region paths and straight segments,
with one step rule per kind, for the window's path tools, ``splineatlas path`` and path animations.

Step rule (every face): a leaf path's step is ``STEP_FRACTION`` of a length the path itself defines:
the start-end distance for a horizontal path (so it makes sense at any zoom), ``max(||start||, 1)``
for a normal path (which has no end). The step budget is ``DEFAULT_STEPS`` unless given; a normal
path's random direction is seeded by its path id in the window (``splineatlas path --seed S`` draws the
n directions of one batch from seed S).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from geometry.foliation import leaf_paths
from geometry.errors import SplineAtlasError
from geometry.foliation.local_data_matrix import local_data_matrix
from geometry.slices import Slice

from ..model.state import DEFAULT_PATH_STEPS as DEFAULT_STEPS
from ..model.state import DEFAULT_STEP_FRACTION as STEP_FRACTION
from ..model.state import LEAF_DTYPE
from ..model.state import PATH_KINDS, PATH_NAMES, PathSpec
from .bundle import Cancel, Progress, RunBundle

REGION_DEPTH = 10  # how many times a region path may halve a segment
# the window draws positions, p(y|x), the class, Tr G and the distance of a path: the spectrum, step angles
# and pattern changes per step (the CLI's npz) are not computed for it; the path itself is the same
LEAF_DIAGNOSTICS = "lean"
SEGMENT_SAMPLES = 200  # forward passes along a straight segment
LEAF_KINDS = ("horizontal", "normal")


def leaf_step_sizes(kind: str, S: np.ndarray, D: np.ndarray | None, fraction: float = STEP_FRACTION) -> np.ndarray:
    """(n,) absolute step lengths of leaf paths from S (n, D) (to D for horizontal paths): the step rule."""
    if not fraction > 0:
        raise SplineAtlasError(f"the step size must be a positive fraction; got {fraction}.")
    if kind == "horizontal":
        length = np.linalg.norm(np.asarray(D) - np.asarray(S), axis=1)
        if not (length > 0).all():
            raise SplineAtlasError("a horizontal path needs a destination other than its start.")
        return fraction * length
    return fraction * np.maximum(np.linalg.norm(np.asarray(S), axis=1), 1.0)


@dataclass(frozen=True)
class PathTrace:
    """A traced path in input space. X: (n, D) points along it; per recorded step t (m of them): steps (m,),
    probs (m, C), trace_g (m,) Tr G(x_t), distance (m,) ||d − x_t|| (NaN without a target); summary: one
    line; crossings: (k, D) points where a straight segment crosses from one region to the next, or None."""

    kind: str
    X: np.ndarray
    steps: np.ndarray
    probs: np.ndarray
    trace_g: np.ndarray
    distance: np.ndarray
    summary: str
    crossings: np.ndarray | None = None

    def in_slice(self, slice_: Slice) -> "PathResult":
        """This path as the window draws it: projected into ``slice_`` with its distance from the plane."""
        marks = None if self.crossings is None else slice_.project(self.crossings)
        return PathResult(
            self.X,
            slice_.project(self.X),
            slice_.distance_to_plane(self.X),
            self.steps,
            self.probs,
            self.trace_g,
            self.distance,
            self.summary,
            marks,
            self.crossings,
        )


@dataclass(frozen=True)
class PathResult:
    """A traced path seen in a slice: X (n, D) as in :class:`PathTrace`, u (n, 2) its projection, off_plane
    (n,) its distance from the slice plane, marks (k, 2) the exact region crossings of a segment (or None)."""

    X: np.ndarray
    u: np.ndarray
    off_plane: np.ndarray
    steps: np.ndarray
    probs: np.ndarray
    trace_g: np.ndarray
    distance: np.ndarray
    summary: str
    marks: np.ndarray | None = None
    crossings: np.ndarray | None = None

    def in_slice(self, slice_: Slice) -> "PathResult":
        """The same traced path seen in another slice (a slice change re-projects; nothing is traced again)."""
        return PathTrace("", self.X, self.steps, self.probs, self.trace_g, self.distance, self.summary, self.crossings).in_slice(slice_)


def class_sequence(pred) -> str:
    """'0 → 2 → 1' : the predicted classes along a path, consecutive repeats merged."""
    pred = np.asarray(pred).reshape(-1)
    if len(pred) == 0:
        return "—"
    keep = np.concatenate([[True], pred[1:] != pred[:-1]])
    seq = [str(int(c)) for c in pred[keep]]
    return " → ".join(seq if len(seq) <= 8 else seq[:4] + ["…"] + seq[-3:])


def trace_paths(
    bundle: RunBundle,
    epoch_index: int,
    kind: str,
    S,
    D=None,
    steps: int | None = None,
    step_fraction: float = STEP_FRACTION,
    seeds=None,
    progress: Progress = None,
    cancel: Cancel = None,
) -> list[PathTrace]:
    """Trace n paths of one ``kind`` from S (n, D) (to D (n, D) where the kind has an end) on checkpoint
    ``epoch_index``. Leaf paths are one batched engine call; ``seeds`` (n,) seed each normal path's random
    direction (default 0..n-1)."""
    if kind not in PATH_KINDS:
        raise SplineAtlasError(f"path kind must be one of {', '.join(PATH_KINDS)}; got {kind!r}.")
    S = np.atleast_2d(np.asarray(S, dtype=np.float64))
    if kind != "normal":
        if D is None:
            raise SplineAtlasError(f"a {PATH_NAMES[kind]} needs an end point.")
        D = np.atleast_2d(np.asarray(D, dtype=np.float64))
        if D.shape != S.shape:
            raise SplineAtlasError(f"{len(S)} starts but {len(D)} ends; give one end per start.")
    net = bundle.network(epoch_index)
    if kind in LEAF_KINDS:
        return _leaf_paths(
            net,
            kind,
            S,
            D,
            DEFAULT_STEPS if steps is None else int(steps),
            step_fraction,
            np.arange(len(S)) if seeds is None else np.asarray(seeds),
            progress,
            cancel,
        )
    out = []
    for k in range(len(S)):
        fn = _segment if kind == "segment" else _region_path
        out.append(fn(net, bundle, S[k], D[k], REGION_DEPTH if steps is None else int(steps), progress, cancel))
    return out


def _leaf_paths(net, kind, S, D, steps, fraction, seeds, progress, cancel) -> list[PathTrace]:
    alpha = leaf_step_sizes(kind, S, D, fraction)
    as_window = dict(dtype=getattr(torch, LEAF_DTYPE), diagnostics=LEAF_DIAGNOSTICS)
    if kind == "horizontal":
        res = leaf_paths.horizontal_paths(net, S, D, step_size=alpha, max_steps=steps, record_every=1, progress=progress, cancel=cancel, **as_window)
    else:
        W = np.concatenate([leaf_paths.random_directions(1, S.shape[1], seed=int(s)) for s in seeds])
        res = leaf_paths.normal_paths(net, S, W, step_size=alpha, steps=steps, record_every=1, progress=progress, cancel=cancel, **as_window)
    out = []
    for i in range(len(S)):
        n = int(res.num_steps[i])
        X = np.asarray(res.points[i][res.point_steps <= n], np.float64)
        summary = (
            f"{kind} leaf path, {n} steps of {alpha[i]:.3g}, {leaf_paths.STATUS_NAMES[int(res.status[i])]}, classes {class_sequence(res.predicted[i, : n + 1])}"
        )
        if kind == "normal" and n == 0:
            summary += "; " + _why_no_normal_step(net, S[i])
        dist = res.distance[i, : n + 1] if kind == "horizontal" else np.full(n + 1, np.nan)
        out.append(PathTrace(kind, X, np.arange(n + 1), res.probs[i, : n + 1], res.trace[i, : n + 1], dist, summary))
    return out


def _why_no_normal_step(net, x: np.ndarray) -> str:
    """Why a normal path could not move: it steps in the kernel of G(x) (directions the output ignores), and
    G's rank (at most C − 1) can fill the whole input space, as on a 2-input, 3-class network."""
    ldm = local_data_matrix(net, x[None])
    r, D = int(ldm.rank[0]), int(x.shape[0])
    if r >= D:
        return f"no normal direction here: G(x) has full rank {r} = D, so every direction changes the output (try a horizontal path)"
    return f"it stopped at once although G(x) has rank {r} < D = {D}: try a larger step (View > Path settings)"


def _segment(net, bundle, s, d, _steps, progress, cancel) -> PathTrace:
    from geometry.regions.linewalk import line_walk

    t = np.linspace(0.0, 1.0, SEGMENT_SAMPLES)[:, None]
    X = s[None] * (1 - t) + d[None] * t
    ldm = local_data_matrix(net, X, cancel=cancel)
    crossings, walk_text = None, ""
    if bundle.piecewise_affine:
        try:
            walk = line_walk(net, s, d, cancel=cancel)
        except SplineAtlasError as exc:
            walk_text = f"; no exact line walk ({exc})"
        else:
            crossings = np.asarray(walk.points[1:-1], np.float64)
            walk_text = f"; exact line walk: {walk.n_regions} regions, mean Hamming step {float(np.mean(walk.hamming)) if len(walk.hamming) else 0:.2f}"
    return _forward_trace("segment", X, d, ldm, f"straight segment, classes {class_sequence(ldm.predicted)}{walk_text}", crossings)


def _region_path(net, _bundle, s, d, depth, progress, cancel) -> PathTrace:
    from geometry.boundary.region_paths import find_region_path

    res = find_region_path(net, s, d, max_depth=depth, progress=progress, cancel=cancel)
    A = np.asarray(res.anchors, np.float64)
    per = max(2, min(32, 400 // max(len(A) - 1, 1)))
    t = np.linspace(0.0, 1.0, per, endpoint=False)[:, None]
    X = np.concatenate([a0[None] * (1 - t) + a1[None] * t for a0, a1 in zip(A[:-1], A[1:])] + [A[-1:]])
    ldm = local_data_matrix(net, X, cancel=cancel)
    summary = f"same-class region path (class {res.label}), {len(A)} anchors, depth {res.depth}: {res.message}"
    return _forward_trace("region", X, d, ldm, summary)


def _forward_trace(kind: str, X: np.ndarray, d: np.ndarray, ldm, summary: str, crossings=None) -> PathTrace:
    """A path sampled at the points X (one step per point) with the local data matrix's diagnostics there."""
    return PathTrace(kind, X, np.arange(len(X)), ldm.probs, ldm.trace, np.linalg.norm(X - d[None], axis=1), summary, crossings)


def compute_paths(bundle: RunBundle, slice_: Slice, specs: list[PathSpec], progress: Progress = None, cancel: Cancel = None) -> dict[int, PathResult]:
    """The window's paths ``specs`` (one kind, epoch and step budget; endpoints in slice coordinates), each
    what it would be alone: its own step rule and, for a normal path, the direction seeded by its id."""
    if len({(sp.kind, sp.epoch_index, sp.steps, sp.step_size) for sp in specs}) != 1:
        raise SplineAtlasError("a batch of paths needs one kind, epoch, step budget and step size.")
    sp0 = specs[0]

    def inputs(us, xs):  # the input-space endpoints when the spec has them (a path made in another slice)
        return np.array([x if x is not None else slice_.to_input(np.asarray(u, np.float64)[None])[0] for u, x in zip(us, xs)], np.float64)

    S = inputs([sp.start for sp in specs], [sp.x_start for sp in specs])
    D = None if sp0.kind == "normal" else inputs([sp.end for sp in specs], [sp.x_end for sp in specs])
    steps = sp0.steps if sp0.kind in LEAF_KINDS else None
    traces = trace_paths(bundle, sp0.epoch_index, sp0.kind, S, D, steps, sp0.step_size, [sp.id for sp in specs], progress, cancel)
    return {sp.id: tr.in_slice(slice_) for sp, tr in zip(specs, traces)}


def compute_path(bundle: RunBundle, slice_: Slice, spec: PathSpec, progress: Progress = None, cancel: Cancel = None) -> PathResult:
    """One path of the window (see :func:`compute_paths`)."""
    return compute_paths(bundle, slice_, [spec], progress, cancel)[spec.id]


__all__ = [
    "DEFAULT_STEPS",
    "LEAF_KINDS",
    "PathResult",
    "PathTrace",
    "STEP_FRACTION",
    "class_sequence",
    "compute_path",
    "compute_paths",
    "leaf_step_sizes",
    "trace_paths",
]
