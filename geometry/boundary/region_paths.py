"""Same-class region paths and convex combinations (Fawzi et al., "Classification regions of deep nets").

Region path (their Algorithm 1): between x1, x2 of the same predicted class k, take the midpoint
xm = (x1 + x2)/2; if k̂(xm) ≠ k, replace it by xm + r with r the minimal (targeted DeepFool)
perturbation into class k; the path (x1, xm, x2) is accepted when sampled points of the convex
segments between consecutive anchors all keep class k, otherwise both halves are processed the
same way, recursively. We run the recursion breadth-first (all segments of one depth at once, one
batched forward pass for all samples and one batched targeted DeepFool for all midpoints) with a
depth budget; a valid straight segment is kept as is (their recursion would add its in-class midpoint).

Convex combinations (their Fig. 3): probability that a random convex combination (Dirichlet(1)
weights, i.e. uniform on the simplex — the paper does not say which) of k points of one predicted
class keeps that class.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from geometry.boundary.deepfool import deepfool

from geometry.networks.torch_utils import prepare_model
from geometry.errors import CancelledError, DatasetError, SplineAtlasError


@dataclass(frozen=True)
class RegionPath:
    """A piecewise-linear path kept inside one classification region.

    anchors: (K, D) float64, anchors[0] = x1, anchors[-1] = x2; label: the class k̂(x1) == k̂(x2);
    success: every sampled point of every segment (and every anchor) is classified ``label``;
    segment_valid: (K-1,) bool per segment; depth: recursion depth used; projections: targeted DeepFool
    calls (midpoints that had left the class); samples_per_segment: the check's resolution; message.
    """

    anchors: np.ndarray
    label: int
    success: bool
    segment_valid: np.ndarray
    depth: int
    projections: int
    samples_per_segment: int
    message: str

    @property
    def length(self) -> float:
        return float(np.linalg.norm(np.diff(self.anchors, axis=0), axis=1).sum())

    @property
    def points(self) -> np.ndarray:
        """(M, D) the path sampled 8 points per segment (for drawing and per-point diagnostics)."""
        return self.sample(8)

    def sample(self, per_segment: int = 16) -> np.ndarray:
        """(M, D) points along the path, ``per_segment`` per segment plus the last anchor."""
        t = np.linspace(0.0, 1.0, per_segment, endpoint=False)[None, :, None]
        a, b = self.anchors[:-1, None], self.anchors[1:, None]
        pts = (a + t * (b - a)).reshape(-1, self.anchors.shape[1])
        return np.concatenate([pts, self.anchors[-1:]])

    def to_json(self) -> dict:
        return {
            "label": self.label,
            "success": self.success,
            "depth": self.depth,
            "projections": self.projections,
            "num_anchors": int(len(self.anchors)),
            "length": self.length,
            "straight_distance": float(np.linalg.norm(self.anchors[-1] - self.anchors[0])),
            "segment_valid": self.segment_valid.tolist(),
            "samples_per_segment": self.samples_per_segment,
            "message": self.message,
        }


def _predict(model: nn.Module, X: torch.Tensor, batch: int = 8192) -> torch.Tensor:
    with torch.no_grad():
        outs = []
        for s in range(0, X.shape[0], batch):
            lo = model(X[s : s + batch])
            outs.append((lo[:, 0] > 0).long() if lo.shape[1] == 1 else lo.argmax(1))
        return torch.cat(outs) if outs else torch.zeros(0, dtype=torch.long, device=X.device)


def find_region_path(
    net: nn.Module,
    x1,
    x2,
    *,
    max_depth: int = 10,
    samples_per_segment: int = 32,
    overshoot: float = 0.02,
    margin: float = 0.25,
    deepfool_iters: int = 50,
    max_anchors: int = 4097,
    dtype: torch.dtype = torch.float64,
    device=None,
    progress: Callable[[float, str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> RegionPath:
    """Their Algorithm 1 between x1, x2: (D,) points of the same predicted class.

    max_depth: how many times a segment may be halved; samples_per_segment: interior points checked
    on each segment; overshoot: DeepFool's, so projected midpoints land strictly inside the class;
    margin: 0 is the paper exactly (the minimal projection); the default 0.25 is ours. Minimal projections land just past the boundary,
    and at a reflex corner of the region (e.g. around a polygonal hole) the chords between such points
    keep cutting the corner at every scale, so the recursion never ends; margin > 0 pushes each
    projected midpoint a further ``margin × segment length`` along r (when that stays in the class).
    Raises DatasetError if x1 and x2 are not classified alike.
    """
    if max_depth < 0 or samples_per_segment < 1:
        raise SplineAtlasError("max_depth must be >= 0 and samples_per_segment >= 1.")
    model = prepare_model(net, dtype, device)
    dev = next(model.parameters()).device
    a = torch.as_tensor(np.asarray(x1, dtype=np.float64).reshape(-1), dtype=dtype, device=dev)
    b = torch.as_tensor(np.asarray(x2, dtype=np.float64).reshape(-1), dtype=dtype, device=dev)
    if a.shape != b.shape or (hasattr(model, "input_dim") and a.numel() != model.input_dim):
        raise DatasetError(f"region path endpoints must both be points of R^{getattr(model, 'input_dim', a.numel())}.")
    la, lb = _predict(model, torch.stack([a, b])).tolist()
    if la != lb:
        raise DatasetError(f"region path endpoints are classified differently ({la} vs {lb}); a same-class path needs two points of one class.")
    label = la
    t = torch.linspace(0, 1, samples_per_segment + 2, dtype=dtype, device=dev)[1:-1]  # interior samples

    def valid(segs: list[tuple[torch.Tensor, torch.Tensor]]) -> list[bool]:
        if not segs:
            return []
        A = torch.stack([s[0] for s in segs])
        B = torch.stack([s[1] for s in segs])
        pts = A[:, None] + t[None, :, None] * (B - A)[:, None]
        pred = _predict(model, pts.reshape(-1, A.shape[1])).reshape(len(segs), -1)
        return (pred == label).all(1).tolist()

    # anchors as a list; segments i = (anchors[i], anchors[i+1]) with a validity flag
    anchors = [a, b]
    ok = valid([(a, b)])
    depth, projections, message = 0, 0, ""
    while not all(ok) and depth < max_depth:
        if cancel is not None and cancel():
            raise CancelledError("region path search was cancelled.")
        depth += 1
        bad = [i for i, v in enumerate(ok) if not v]
        if len(anchors) + len(bad) > max_anchors:
            message = f"stopped: more than {max_anchors} anchors would be needed"
            break
        mids = torch.stack([(anchors[i] + anchors[i + 1]) / 2 for i in bad])
        out_mask = _predict(model, mids) != label
        if bool(out_mask.any()):
            idx = out_mask.nonzero(as_tuple=True)[0]
            df = deepfool(model, mids[idx], target=label, overshoot=overshoot, max_iter=deepfool_iters, dtype=dtype, device=dev)
            projections += int(idx.numel())
            proj = torch.as_tensor(df.perturbed, dtype=dtype, device=dev)
            if margin > 0:  # push further out along r by margin × segment length (kept only if still in class)
                r = torch.as_tensor(df.perturbation, dtype=dtype, device=dev)
                seg = torch.stack([(anchors[bad[j] + 1] - anchors[bad[j]]).norm() for j in idx.tolist()])
                pushed = proj + margin * seg[:, None] * r / r.norm(dim=1, keepdim=True).clamp_min(1e-300)
                keep = _predict(model, pushed) == label
                proj = torch.where(keep[:, None], pushed, proj)
            mids[idx] = proj
        # insert the midpoints (from the back so indices stay valid) and re-check the new halves
        new_anchors, new_ok_slots = list(anchors), list(ok)
        for j, i in sorted(enumerate(bad), key=lambda p: -p[1]):
            new_anchors.insert(i + 1, mids[j])
            new_ok_slots[i : i + 1] = [None, None]
        anchors, ok = new_anchors, new_ok_slots
        todo = [i for i, v in enumerate(ok) if v is None]
        res = valid([(anchors[i], anchors[i + 1]) for i in todo])
        for i, v in zip(todo, res):
            ok[i] = v
        if progress is not None:
            progress(min(1.0, depth / max(1, max_depth)), f"region path: depth {depth}, {len(anchors)} anchors")
    A = torch.stack(anchors)
    anchors_ok = bool((_predict(model, A) == label).all())
    success = all(ok) and anchors_ok
    if not message:
        message = (
            "path found" if success else (f"depth budget {max_depth} exhausted" if anchors_ok else "a projected midpoint could not be brought into the class")
        )
    return RegionPath(
        anchors=A.detach().cpu().double().numpy(),
        label=int(label),
        success=bool(success),
        segment_valid=np.asarray(ok, dtype=bool),
        depth=int(depth),
        projections=int(projections),
        samples_per_segment=int(samples_per_segment),
        message=message,
    )


def region_path(net: nn.Module, x1, x2, **kwargs) -> RegionPath:
    """Alias of :func:`find_region_path` (the name the app looks up)."""
    return find_region_path(net, x1, x2, **kwargs)


@dataclass(frozen=True)
class ConvexCombinationResult:
    """ks: (K,) numbers of points combined; probability: (K,) fraction of combinations keeping the
    class; stderr: (K,) binomial standard errors; samples: combinations drawn per k;
    per_class: (K, C) probability per class (NaN where a class has fewer than k points)."""

    ks: np.ndarray
    probability: np.ndarray
    stderr: np.ndarray
    samples: int
    per_class: np.ndarray

    def to_json(self) -> dict:
        return {
            "ks": self.ks.tolist(),
            "probability": self.probability.tolist(),
            "stderr": self.stderr.tolist(),
            "samples": self.samples,
            "per_class": np.where(np.isnan(self.per_class), None, self.per_class).tolist(),
        }


def convex_combination_probability(
    net: nn.Module,
    X,
    ks=(2, 3, 4, 5, 7, 10),
    *,
    samples: int = 1000,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    device=None,
    progress: Callable[[float, str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> ConvexCombinationResult:
    """Their Fig. 3: for each k, draw ``samples`` combinations Σ w_j x_j of k distinct points of one
    predicted class (class uniform among those with ≥ k points, weights uniform on the simplex) and
    report how often the combination is classified as that class. X: (N, D) points."""
    model = prepare_model(net, dtype, device)
    dev = next(model.parameters()).device
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float64), dtype=dtype, device=dev)
    if Xt.ndim != 2 or Xt.shape[0] < 2:
        raise DatasetError("convex combinations need at least 2 points of shape (N, D).")
    pred = _predict(model, Xt).cpu().numpy()
    C = int(max(pred.max() + 1, getattr(model, "num_classes", 0) or 0))
    members = [np.flatnonzero(pred == c) for c in range(C)]
    rng = np.random.default_rng(seed)
    ks = np.asarray(list(ks), dtype=np.int64)
    prob = np.full(len(ks), np.nan)
    err = np.full(len(ks), np.nan)
    per_class = np.full((len(ks), C), np.nan)
    for ki, k in enumerate(ks):
        if cancel is not None and cancel():
            raise CancelledError("convex-combination experiment was cancelled.")
        eligible = [c for c in range(C) if len(members[c]) >= k]
        if not eligible or k < 1:
            continue
        cls = rng.choice(eligible, size=samples)
        idx = np.stack([rng.choice(members[c], size=k, replace=False) for c in cls])  # (S, k)
        w = rng.dirichlet(np.ones(k), size=samples)  # (S, k)
        combo = torch.einsum("sk,skd->sd", torch.as_tensor(w, dtype=dtype, device=dev), Xt[torch.as_tensor(idx, device=dev)])
        keep = _predict(model, combo).cpu().numpy() == cls
        prob[ki] = keep.mean()
        err[ki] = np.sqrt(prob[ki] * (1 - prob[ki]) / samples)
        for c in eligible:
            m = cls == c
            if m.any():
                per_class[ki, c] = keep[m].mean()
        if progress is not None:
            progress((ki + 1) / len(ks), f"convex combinations: k = {k}")
    return ConvexCombinationResult(ks, prob, err, int(samples), per_class)
