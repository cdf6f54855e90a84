"""Cross-check of two independent methods: traversal enumeration (geometry.regions, LPs in input space)
vs the exact slice tessellation (geometry.tessellation, polygon clipping) on 2D/3D-input nets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geometry.networks.network import Network
from geometry.regions import enumerate_regions, line_walk, patterns_of
from geometry.slices import Slice
from geometry.networks.spec import mlp_spec

tess = pytest.importorskip("geometry.tessellation")


def _net(widths, seed, activation="relu"):
    torch.manual_seed(seed)
    return Network(mlp_spec(widths, activation=activation))


def _tess_patterns(t) -> set[bytes]:
    full = np.concatenate([t.pattern(j) for j in range(t.depth)], axis=1).astype(bool)
    return {p.tobytes() for p in full}


@pytest.mark.parametrize("widths,seed,activation", [([2, 8, 8, 3], 0, "relu"), ([2, 6, 6, 6, 2], 3, "relu"), ([2, 8, 8, 3], 1, "leaky_relu")])
def test_enumeration_equals_tessellation_2d(widths, seed, activation):
    net = _net(widths, seed, activation)
    t = tess.tessellate(net, Slice.input_plane(2), [-1.0, 1.0, -1.0, 1.0])
    e = enumerate_regions(net, (-1.0, 1.0))
    mine = {p.tobytes() for p in e.patterns}
    assert e.n_regions == t.num_regions
    assert mine == _tess_patterns(t)
    # each tessellation polygon's area centroid lies in the enumerated region with that pattern
    np.testing.assert_array_equal(np.sort([p.tobytes() for p in patterns_of(net, t.centroids())]), np.sort(list(mine)))


def test_enumeration_equals_tessellation_3d():
    pytest.importorskip("geometry.tessellation.solid")  # the 3D tessellation lands separately
    net = _net([3, 5, 5, 2], 2)
    t = tess.tessellate(net, Slice.input_plane(3), [-1.0, 1.0] * 3)
    e = enumerate_regions(net, (-1.0, 1.0))
    assert e.n_regions == t.num_regions
    assert {p.tobytes() for p in e.patterns} == _tess_patterns(t)


def test_line_walk_regions_are_tessellation_regions():
    net = _net([2, 8, 8, 3], 4)
    t = tess.tessellate(net, Slice.input_plane(2), [-1.0, 1.0, -1.0, 1.0])
    w = line_walk(net, np.array([-0.9, -0.8]), np.array([0.85, 0.9]))
    assert {p.tobytes() for p in w.patterns} <= _tess_patterns(t)
