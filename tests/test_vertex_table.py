"""The shared vertex table against independent truths: the network's forward pass on either side of every
edge and face, Euler's formula for a tiled disc and ball, and the engine's own per-region vertices."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geometry.networks.network import Network
from geometry.networks.spec import mlp_spec
from geometry.slices import Slice
from geometry.tessellation import tessellate
from geometry.tessellation.vertex_table import polygon_mesh, weld, weld_radius


def _net(widths, seed=0, zero_bias=False, integer=False):
    torch.manual_seed(seed)
    net = Network(mlp_spec(widths))
    with torch.no_grad():
        for p in net.parameters():
            if integer:
                p.copy_(torch.randint(-2, 3, p.shape).to(p.dtype))
            if zero_bias and p.ndim == 1:
                p.zero_()
    return net


def _patterns(net: Network, u: np.ndarray, sl: Slice) -> np.ndarray:
    """(n, total width) bool: the forward pass's activation pattern at slice points ``u``."""
    x = torch.tensor(sl.to_input(u), dtype=torch.float64)
    tr = net.to_dtype_device(torch.float64).trace(x)
    return torch.cat([p.reshape(len(x), -1) for p in tr.patterns], dim=1).numpy()


def _region_patterns(t) -> np.ndarray:
    return np.concatenate([t.pattern(j) for j in range(t.depth)], axis=1)


def test_weld_merges_chains_and_keeps_first_copies():
    p = np.array([[0.0, 0.0], [1.0, 0.0], [0.6e-9, 0.0], [1.2e-9, 0.0], [1.0, 1e-10], [5.0, 5.0]])
    points, index = weld(p, 1e-9)
    # 0 - 2 - 3 is a chain of steps under the radius (0 and 3 are farther apart than it): one point
    assert index.tolist() == [0, 1, 0, 0, 1, 2]
    assert np.array_equal(points, p[[0, 1, 5]])  # first copies, bit for bit, in order of appearance
    assert weld(np.zeros((0, 3)), 1.0)[0].shape == (0, 3)


@pytest.mark.parametrize("net", [_net([2, 8, 8, 3], seed=1), _net([2, 6, 6, 6, 1], seed=4, zero_bias=True), _net([2, 5, 5, 2], seed=2, integer=True)])
def test_2d_table_against_the_forward_pass(net):
    """Zero biases (every line through the origin) and integer weights (many concurrent and parallel
    lines) are the degenerate arrangements; the table must stay exact on them."""
    sl = Slice.input_plane(2)
    t = tessellate(net, sl, [-1.0, 1.0, -1.0, 1.0])
    m = t.vertex_table
    # every copy is within the weld radius of its point, and the points are distinct
    assert np.abs(t.vertices - m.points[m.loops]).max() <= weld_radius(t.tolerance)
    assert len(np.unique(m.points, axis=0)) == len(m.points) < len(t.vertices)
    # a tiled disc: V - E + F = 1, every interior edge between two regions
    assert len(m.points) - len(m.edges) + t.num_regions == 1
    assert m.open_edges == 0
    assert np.array_equal(m.edge_regions[:, 1] < 0, m.edge_layer < 0)
    # each edge's sides are the regions the network is in just left and right of its midpoint, and the
    # edge's layer is the first layer where those two patterns differ
    a, b = m.points[m.edges[:, 0]], m.points[m.edges[:, 1]]
    d = b - a
    length = np.linalg.norm(d, axis=1)
    left_normal = np.stack([-d[:, 1], d[:, 0]], axis=1) / length[:, None]
    mid = (a + b) / 2
    step = 1e-7
    inner = m.edge_layer >= 0
    left = _patterns(net, mid + step * left_normal, sl)
    right = _patterns(net, mid[inner] - step * left_normal[inner], sl)
    pats = _region_patterns(t)
    assert np.array_equal(left, pats[m.edge_regions[:, 0]])
    assert np.array_equal(right, pats[m.edge_regions[inner, 1]])
    widths = np.cumsum([li.width for li in t.layers])
    first_diff = np.argmax(left[inner] != right, axis=1)
    assert np.array_equal(np.searchsorted(widths, first_diff, side="right"), m.edge_layer[inner])
    # adjacency: each unordered pair of regions sharing an edge once
    adj = m.adjacency
    assert len(adj) == len({tuple(sorted(e)) for e in m.edge_regions[inner].tolist()}) and np.all(adj[:, 0] < adj[:, 1])


def test_a_region_smaller_than_the_tolerance_keeps_its_corners():
    """Welding at the full tolerance would merge a genuine triangle smaller than it into one point."""
    v = np.array([[0, 0], [1, 0], [0, 1], [1, 0], [1, 1], [0, 1], [0.5, 0.5], [0.5 + 3e-9, 0.5], [0.5, 0.5 + 3e-9]], dtype=np.float64)
    off = np.array([0, 3, 6, 9])
    m = polygon_mesh(v, off, np.zeros(9, np.int16), weld_radius(1e-8))
    assert len(np.unique(m.loops[6:9])) == 3
    assert len(np.unique(m.loops[:6])) == 4  # the shared diagonal's corners are one point each


def test_3d_table_against_the_forward_pass():
    net = _net([3, 6, 6, 1], seed=5)
    sl = Slice.input_plane(3)
    t = tessellate(net, sl, [-1.0, 1.0] * 3)
    m = t.vertex_table
    assert np.abs(t.vertices - m.points[m.index]).max() <= weld_radius(t.tolerance)
    assert m.open_faces == 0
    inner = m.face_neighbour >= 0
    assert np.array_equal(inner, m.face_layer >= 0)
    # paired faces are one polygon seen from both sides: the same points, the other cell's
    fo = m.face_offsets
    partner = {}
    for f in np.flatnonzero(inner):
        partner.setdefault((m.face_cell[f], m.face_neighbour[f]), []).append(frozenset(m.face_loops[fo[f] : fo[f + 1]].tolist()))
    for (c0, c1), faces in partner.items():
        assert sorted(map(sorted, faces)) == sorted(map(sorted, partner[(c1, c0)]))
    # a tiled ball: V - E + F - C = 1 (each interior face counted once)
    faces = (inner.sum() // 2) + (~inner).sum()
    assert len(m.points) - len(m.edges) + faces - t.num_regions == 1
    # the cell across each face is the one the network is in just outside it
    f = np.flatnonzero(inner)
    loops = [m.points[m.face_loops[fo[k] : fo[k + 1]]] for k in f]
    centre = np.array([p.mean(0) for p in loops])
    normal = np.array([np.cross(p[1] - p[0], p[2] - p[0]) for p in loops])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    pats = _region_patterns(t)
    assert np.array_equal(_patterns(net, centre + 1e-7 * normal, sl), pats[m.face_neighbour[f]])
    assert np.array_equal(_patterns(net, centre - 1e-7 * normal, sl), pats[m.face_cell[f]])


def test_next_in_loop_closes_every_loop_and_skips_empty_ones():
    """The successor of each loop item is the next item of its loop, the last wraps to the first; an empty
    loop (offsets repeated) must not redirect its neighbour's last item (the former inline copies did)."""
    from geometry.tessellation.loops import next_in_loop

    offsets = np.array([0, 3, 3, 5, 6, 6])
    nxt = next_in_loop(offsets)
    np.testing.assert_array_equal(nxt, [1, 2, 0, 4, 3, 5])
    for lo, hi in zip(offsets[:-1], offsets[1:]):  # a permutation of each loop, one cycle through all items
        if hi > lo:
            seen, i = [], lo
            for _ in range(hi - lo):
                seen.append(i)
                i = nxt[i]
            assert i == lo and sorted(seen) == list(range(lo, hi))
    assert next_in_loop(np.array([0])).shape == (0,)
