"""Exact line walk through the regions crossed by a segment, and Liu et al.'s bisection (Algorithm 2).

Exact walk: restrict the network to x(t) = A + t (B - A), t in [0, 1]. Keep a sorted set T of
breakpoints (initially {0, 1}). Layer by layer: on every open interval between consecutive
breakpoints all earlier layers' patterns are constant (by construction), so layer l's pre-activations
are affine in t there and, by continuity, equal to the linear interpolation of their true values at
the interval's ends. A unit crosses zero inside the interval iff its end values have strictly
opposite signs, at ``t* = t_a + (t_b - t_a) h_a / (h_a - h_b)``. Adding all crossings of layer l
makes layer l constant on every new interval; after the last layer every interval is one region.
Cost: one batched forward pass per layer over the breakpoints; exact up to float64 rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from geometry.errors import CancelledError, SplineAtlasError
from geometry.regions.affine import _as_net64, check_supported, hamming, patterns_of, run_layers


@dataclass(frozen=True)
class LineWalk:
    """Regions crossed by the segment A -> B, in order.

    t: (n+1,) float64 breakpoints, t[0] = 0, t[-1] = 1; piece i is (t[i], t[i+1]).
    patterns: (n, n_bits) bool, the region of each piece. hamming: (n-1,) int64 between consecutive
    pieces (1 at a facet crossing; more where the segment passes through a lower-dimensional face).
    flipped: list of (n-1) int64 arrays, the bits that change at each crossing. points: (n+1, D)
    breakpoints in input space. labels: (n,) predicted class per piece. euclidean: ||B - A||.
    """

    t: np.ndarray
    patterns: np.ndarray
    hamming: np.ndarray
    flipped: list
    points: np.ndarray
    labels: np.ndarray
    euclidean: float

    @property
    def n_regions(self) -> int:
        return int(self.patterns.shape[0])

    @property
    def crossings(self) -> np.ndarray:
        """(n-1,) interior crossing parameters."""
        return self.t[1:-1]

    def to_json(self) -> dict:
        return {
            "t": self.t.tolist(),
            "hamming": self.hamming.tolist(),
            "flipped": [f.tolist() for f in self.flipped],
            "labels": self.labels.tolist(),
            "n_regions": self.n_regions,
            "euclidean": self.euclidean,
            "endpoint_hamming": int(hamming(self.patterns[0], self.patterns[-1])),
        }


def line_walk(net, a, b, device=None, dedup: float = 1e-13, cancel=None) -> LineWalk:
    """Every region crossed by the segment from a to b ((D,) each), with crossing parameters (exact)."""
    check_supported(net)
    net64 = _as_net64(net, device)
    dev = next(net64.parameters()).device
    a = np.asarray(a, np.float64).reshape(-1)
    b = np.asarray(b, np.float64).reshape(-1)
    if a.shape != (net.input_dim,) or b.shape != a.shape:
        raise SplineAtlasError(f"line walk endpoints must be points of dimension {net.input_dim}.")
    A = torch.as_tensor(a, device=dev)
    d = torch.as_tensor(b - a, device=dev)
    T = np.array([0.0, 1.0])
    L = net.depth
    with torch.no_grad():
        for l in range(L):
            if cancel is not None and cancel():
                raise CancelledError("line walk was cancelled.")
            tt = torch.as_tensor(T, device=dev)
            pres, _ = run_layers(net64, A[None, :] + tt[:, None] * d[None, :])
            h = pres[l].cpu().numpy()  # (|T|, w)
            ha, hb = h[:-1], h[1:]
            cross = ((ha > 0) & (hb < 0)) | ((ha < 0) & (hb > 0))
            if cross.any():
                i, _ = np.nonzero(cross)
                frac = ha[cross] / (ha[cross] - hb[cross])
                new = T[i] + (T[i + 1] - T[i]) * frac
                T = np.unique(np.concatenate([T, new]))
                T = T[np.r_[True, np.diff(T) > dedup]]  # merge coincident crossings (one face, several bits)
                T[-1] = 1.0
    mids = 0.5 * (T[:-1] + T[1:])
    pts_mid = a[None, :] + mids[:, None] * (b - a)[None, :]
    P = patterns_of(net64, pts_mid)
    with torch.no_grad():
        _, logits = run_layers(net64, torch.as_tensor(pts_mid, device=dev))
    labels = logits.argmax(1).cpu().numpy().astype(np.int64)
    ham = hamming(P[:-1], P[1:]) if len(P) > 1 else np.zeros(0, np.int64)
    flipped = [np.flatnonzero(P[i] != P[i + 1]).astype(np.int64) for i in range(len(P) - 1)]
    return LineWalk(T, P, ham, flipped, a[None, :] + T[:, None] * (b - a)[None, :], labels, float(np.linalg.norm(b - a)))


@dataclass(frozen=True)
class Bisection:
    """Liu et al. Algorithm 2 result: sample parameters delta (n,), one inside each region found, their
    patterns (n+2, n_bits) including A and B, the Hamming distance between consecutive samples, and the
    number of forward passes used. ``unresolved`` counts steps where the interval shrank below
    ``min_width`` without a Hamming-1 sample (the segment passes through a lower-dimensional face)."""

    delta: np.ndarray
    patterns: np.ndarray
    hamming: np.ndarray
    forward_passes: int
    unresolved: int


def bisection_walk(net, a, b, max_steps: int = 100_000, min_width: float = 1e-13, device=None) -> Bisection:
    """Liu et al. Algorithm 2 (bisection) along the segment a -> b, for comparison with :func:`line_walk`.

    From A_left, bisect delta in (a, b]: Hamming(A_left, C) = 1 -> accept C; > 1 -> move the upper end
    down; 0 -> move A_left and the lower end up. Stops when A_left's pattern is at Hamming distance
    <= 1 from B's (then B's region is the last). Note its blind spot: a region entered and left through
    the same neuron has Hamming distance 0 to its predecessor's predecessor and can be skipped.
    """
    check_supported(net)
    a = np.asarray(a, np.float64).reshape(-1)
    b = np.asarray(b, np.float64).reshape(-1)
    pat = lambda t: patterns_of(net, (a + t * (b - a))[None, :], device=device)[0]  # noqa: E731
    pB = pat(1.0)
    left_t, p_left = 0.0, pat(0.0)
    deltas, pats = [], [p_left]
    passes = 2
    unresolved = 0
    while hamming(p_left, pB) > 1 and len(deltas) < max_steps:
        lo, hi = left_t, 1.0
        while True:
            mid = 0.5 * (lo + hi)
            pc = pat(mid)
            passes += 1
            d1 = int(hamming(p_left, pc))
            if d1 == 1 or (hi - lo < min_width and d1 > 0):
                unresolved += int(d1 != 1)
                break
            if d1 > 1:
                hi = mid
            else:
                lo, left_t, p_left = mid, mid, pc
            if hi - lo < min_width and d1 == 0:
                mid, pc = hi, pat(hi)
                passes += 1
                unresolved += 1
                break
        deltas.append(mid)
        pats.append(pc)
        left_t, p_left = mid, pc
    pats.append(pB)
    P = np.array(pats)
    return Bisection(np.array(deltas), P, hamming(P[:-1], P[1:]), passes, unresolved)
