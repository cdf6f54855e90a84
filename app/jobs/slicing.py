"""The one slice vocabulary: how a 2D or 3D slice of input space is chosen, spelled, built and framed.

The window's data browser, the 3D tab, ``splineatlas tessellate|export-figure|export-video|render3d|
inspect`` and the export dialog all build slices here, so a slice has one meaning and one home window
everywhere. A choice is spelled on the command line as ``KIND[:I,J,...][@SEED]``:

    input              the input space itself (2-input nets in 2D, 3-input nets in 3D)
    points:I,J,K       the plane through three training points (four for a 3D slice)
    deepfool:I         through training point I, spanned by its DeepFool direction r(x_I) and a random
    deepfool:I,J@S     direction (seed S), or the direction towards training point J (a Fawzi cross-section)
    pca                the top principal directions of the training data
    random@S           the data mean (or 0) and random orthonormal directions drawn with seed S

The default (:func:`default_slice_choice`) is the input space where it is 2D (3D), else the plane through
three training points of different classes (so a decision boundary crosses it), else PCA, else random.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from geometry.boundary.cross_sections import DEFAULT_EXTENT, cross_sections
from geometry.boundary.deepfool import deepfool
from geometry.errors import DatasetError, SplineAtlasError
from geometry.slices import Slice, box_domain

from ..model.state import SLICE_KINDS, SliceChoice
from .bundle import Cancel, Progress, RunBundle

HOME_MARGIN = {"input": 0.08, "pca": 0.05}  # box_domain margin of the data extent
POINTS_PAD = 0.35  # a points slice shows its defining points plus 35% of their spread
SPELLING = "input, points:I,J,K, deepfool:I[,J][@SEED], pca or random[@SEED]"


def parse_slice_choice(text: str, dim: int = 2) -> SliceChoice:
    """``KIND[:I,J,...][@SEED]`` -> SliceChoice; one line naming the fix on any mistake."""
    text = str(text).strip()
    body, _, seed_text = text.partition("@")
    kind, _, idx_text = body.partition(":")
    kind = kind.strip().lower()
    if kind not in SLICE_KINDS or kind == "clip3d":
        raise SplineAtlasError(f"slice {text!r}: unknown kind {kind!r}; use {SPELLING}.")
    try:
        indices = tuple(int(s) for s in idx_text.split(",") if s.strip()) if idx_text else ()
        seed = int(seed_text) if seed_text else 0
    except ValueError:
        raise SplineAtlasError(f"slice {text!r}: indices and seed must be integers, e.g. points:0,10,20 or deepfool:5@1.") from None
    choice = SliceChoice(kind, indices, seed)
    _check_arity(choice, dim, f"slice {text!r}")
    return choice


def format_slice_choice(choice: SliceChoice) -> str:
    """The inverse of :func:`parse_slice_choice` (how the CLI twin of a window's slice is spelled)."""
    out = choice.kind + (":" + ",".join(map(str, choice.indices)) if choice.indices else "")
    return out + (f"@{choice.seed}" if choice.seed or choice.kind == "random" else "")


def _check_arity(choice: SliceChoice, dim: int, where: str) -> None:
    need = {"points": (dim + 1,), "deepfool": (1, 2) if dim == 2 else (1,)}.get(choice.kind, (0,))
    if len(choice.indices) not in need:
        what = {"points": f"exactly {dim + 1} training indices", "deepfool": "one training index" + (" (and optionally a second, J)" if dim == 2 else "")}.get(
            choice.kind, "no indices"
        )
        raise SplineAtlasError(f"{where}: a {dim}D {choice.kind} slice takes {what}.")
    if choice.seed < 0:
        raise SplineAtlasError(f"{where}: the seed must be 0 or more; got {choice.seed}.")


def default_slice_choice(bundle: RunBundle, dim: int = 2) -> SliceChoice:
    """The input space when it has ``dim`` dimensions; else ``dim + 1`` training points of different
    classes (fewer classes: filled with the first other points); else PCA; else random."""
    if bundle.input_dim == dim:
        return SliceChoice("input")
    X, y = bundle.points()
    if len(X) >= dim + 1 and dim == 2:
        idx: list[int] = []
        for c in np.unique(y):
            idx.append(int(np.flatnonzero(y == c)[0]))
            if len(idx) == dim + 1:
                break
        idx += [i for i in range(len(X)) if i not in idx][: dim + 1 - len(idx)]
        return SliceChoice("points", tuple(idx))
    return SliceChoice("pca" if len(X) > dim else "random")


def square_window(window, pad: float = 0.0) -> tuple[float, ...]:
    """Grow every side of a window (4,) or box (6,) to the longest (plus ``pad`` of it), keeping its centre."""
    b = np.asarray(window, dtype=np.float64).reshape(-1, 2)
    c = b.mean(1)
    half = max(float((b[:, 1] - b[:, 0]).max()), 1e-6) / 2 * (1 + pad)
    return tuple(float(v) for v in np.stack([c - half, c + half], 1).reshape(-1))


def make_slice(
    bundle: RunBundle,
    choice: SliceChoice,
    epoch_index: int = -1,
    dim: int = 2,
    progress: Progress = None,
    cancel: Cancel = None,
    extent: float = DEFAULT_EXTENT,
) -> tuple[Slice, tuple[float, ...]]:
    """The ``dim``-D slice for ``choice`` and its home window ((4,) or (6,) in slice coordinates, square).
    ``extent``: a DeepFool slice's half-width in units of ||r(x)||."""
    X, y = bundle.points()
    D = bundle.input_dim
    kind = choice.kind
    _check_arity(choice, dim, "slice")
    if D < dim:
        raise SplineAtlasError(f"a {dim}D slice needs at least {dim} inputs; this network has {D}.")
    for i in choice.indices:
        if not 0 <= i < len(X):
            raise DatasetError(
                f"slice index {i} is out of range: the training set has {len(X)} points" + ("" if len(X) else " (the run names no dataset)") + "."
            )
    if kind == "input":
        if D != dim:
            raise SplineAtlasError(
                f"the input space is a {dim}D slice only for {dim}-input networks; this one has "
                f"{D} inputs. Pick training points, a DeepFool plane, PCA or random."
            )
        sl = Slice.input_plane(dim)
        win = box_domain(sl, X if len(X) else None, margin=HOME_MARGIN["input"])
    elif kind == "points":
        sl = Slice.through_points(X[list(choice.indices)], description=f"plane through training points {', '.join(map(str, choice.indices))}")
        a = sl.anchors
        lo, hi = a.min(0), a.max(0)
        span = max(float((hi - lo).max()), 1e-3)
        win = np.stack([lo - POINTS_PAD * span, hi + POINTS_PAD * span], 1).reshape(-1)
    elif kind == "deepfool":
        if not extent > 0:
            raise SplineAtlasError(f"the DeepFool extent must be positive; got {extent}.")
        sl, win = _deepfool_slice(bundle, choice, epoch_index, dim, X, extent, progress, cancel)
    elif kind == "pca":
        if len(X) <= dim:
            raise DatasetError("a PCA slice needs the run's dataset; this run has none. Use random@SEED.")
        sl = Slice.pca(X, k=dim, description=f"PCA {'plane' if dim == 2 else 'space'} (top {dim} components)")
        win = box_domain(sl, X, margin=HOME_MARGIN["pca"])
    elif kind == "random":
        origin = X.mean(0) if len(X) else np.zeros(D)
        dirs = np.random.default_rng(choice.seed).standard_normal((dim, D))
        sl = Slice.from_directions(
            origin, dirs, description=f"random {'plane' if dim == 2 else 'space'} (seed {choice.seed}) through the {'data mean' if len(X) else 'origin'}"
        )
        win = box_domain(sl, X, margin=HOME_MARGIN["pca"]) if len(X) else np.tile([-1.0, 1.0], dim)
    else:  # clip3d: the 3D tab makes it from its clipping plane (app.jobs.scene3d.clip_slice)
        raise SplineAtlasError(f"a {kind!r} slice is made by the 3D tab; use {SPELLING}.")
    return sl, square_window(win)


def _deepfool_slice(bundle, choice, epoch_index, dim, X, extent, progress, cancel):
    """2D: a Fawzi cross-section (r(x) and a random direction, or the direction to point J), ±extent ||r||.
    3D: r(x) and two random directions, in the same box."""
    i = choice.indices[0]
    net = bundle.network(epoch_index)
    if progress:
        progress(0.2, "DeepFool direction")
    if dim == 2:
        second = None
        if len(choice.indices) == 2:
            j = choice.indices[1]
            if j == i:
                raise SplineAtlasError("deepfool:I,J needs a second training point J other than I.")
            second = X[j][None]
        cs = cross_sections(net, X[i][None], second, seed=choice.seed, extent=extent, cancel=cancel)[0]
        how = f"the direction to point {choice.indices[1]}" if second is not None else f"a random direction (seed {choice.seed})"
        sl = dataclasses.replace(cs.slice, description=f"point {i} + DeepFool direction + {how}")
        return sl, np.asarray(cs.domain, dtype=np.float64)
    res = deepfool(net, X[i][None], cancel=cancel)
    r = res.perturbation[0]
    if not np.linalg.norm(r) > 0:
        raise SplineAtlasError("DeepFool found no boundary direction at this point; pick another point.")
    w = np.random.default_rng(choice.seed).standard_normal((dim - 1, X.shape[1]))
    sl = Slice.from_directions(
        X[i], np.vstack([r[None], w]), anchors=np.stack([X[i], X[i] + r]), description=f"point {i} + DeepFool direction + {dim - 1} random directions"
    )
    s = extent * float(np.linalg.norm(r))
    return sl, np.tile([-s, s], dim)


def slice_from_text(text: str | None, bundle: RunBundle, epoch_index: int = -1, dim: int = 2) -> tuple[Slice, tuple[float, ...], SliceChoice]:
    """(slice, home window or box, choice) for a spelled choice (None: the window's default), built as the
    window builds it: what every ``--slice`` option of the CLI means."""
    choice = default_slice_choice(bundle, dim) if text is None else parse_slice_choice(text, dim)
    sl, home = make_slice(bundle, choice, epoch_index, dim=dim)
    return sl, home, choice


__all__ = ["SPELLING", "slice_from_text", "default_slice_choice", "format_slice_choice", "make_slice", "parse_slice_choice", "square_window"]
