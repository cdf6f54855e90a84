"""Exact 3D tessellation (convex polyhedra): volumes, patterns, 2D/3D agreement, boundary polygons."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from geometry.errors import BudgetExceededError
from geometry.networks.network import Network
from geometry.slices import Slice
from geometry.networks.spec import mlp_spec
from geometry.tessellation import Tessellation3D, region_slope_norms, tessellate, tessellate_all_depths
from geometry.tessellation.locate import cell_planes

BOX3 = [-1.0, 1.0, -1.0, 1.0, -1.0, 1.0]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _net(widths, seed=0):
    torch.manual_seed(seed)
    return Network(mlp_spec(widths))


def _check_patterns_3d(t: Tessellation3D, net: Network, n: int = 2000, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    d = np.asarray(t.domain)
    u = rng.uniform(d[0::2], d[1::2], (n, 3))
    r = t.region_of(u)
    assert np.all(r >= 0), "every point of the box lies in a cell"
    planes = cell_planes(t.vertices, t.face_indices, t.face_offsets, t.cell_face_offsets)
    val = np.einsum("nfk,nk->nf", planes[r, :, :3], u) + planes[r, :, 3]
    far = (-val).min(1) > 1e-7
    with torch.no_grad():
        tr = net.to_dtype_device(torch.float64).trace(torch.tensor(t.slice.to_input(u[far])))
    for j in range(t.depth):
        assert np.array_equal(t.pattern(j)[r[far]], tr.patterns[j].numpy()), f"layer {j}"
    return int(far.sum())


def test_volumes_patterns_and_faces():
    net = _net([3, 10, 10, 3], seed=1)
    ts = tessellate_all_depths(net, Slice.input_plane(3), BOX3)
    assert [t.depth for t in ts] == [1, 2]
    for t in ts:
        v = t.volumes()
        assert np.all(v > 0)
        assert v.sum() == pytest.approx(8.0, rel=1e-9)
    t = ts[-1]
    assert _check_patterns_3d(t, net) > 1800
    # every face made by layer j lies on a zero of some layer-j neuron; box faces lie on the box
    nf = np.diff(t.face_offsets)
    face_of = np.repeat(np.arange(nf.shape[0]), nf)
    cen = np.zeros((nf.shape[0], 3))
    np.add.at(cen, face_of, t.vertices[t.face_indices])
    cen /= nf[:, None]
    with torch.no_grad():
        tr = net.to_dtype_device(torch.float64).trace(torch.tensor(cen))
    for j in (0, 1):
        on = t.face_layer == j
        assert on.any() and np.abs(tr.preactivations[j].numpy()[on]).min(1).max() < 1e-9
    box = t.face_layer == -1
    assert np.all(np.isclose(np.abs(cen[box]).max(1), 1.0))
    # parents contain their children
    assert np.array_equal(ts[0].region_of(t.centroids()), t.parent)


def test_k_planes_in_general_position():
    K = 5
    rng = np.random.default_rng(4)
    Wt = rng.normal(size=(K, 3))
    Wt /= np.linalg.norm(Wt, axis=1, keepdims=True)
    b = rng.uniform(-0.1, 0.1, K)
    for i, j, k in itertools.combinations(range(K), 3):  # the premise: all triple points inside the box
        assert np.all(np.abs(np.linalg.solve(Wt[[i, j, k]], -b[[i, j, k]])) < 1)
    net = _net([3, K, 1])
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.tensor(Wt))
        net.layers[0].bias.copy_(torch.tensor(b))
    t = tessellate(net, Slice.input_plane(3), BOX3)
    assert t.num_regions == 1 + K + math.comb(K, 2) + math.comb(K, 3)
    assert t.volumes().sum() == pytest.approx(8.0, rel=1e-12)


def test_2d_and_3d_agree_on_a_plane():
    net = _net([3, 8, 8, 2], seed=7)
    t3 = tessellate(net, Slice.input_plane(3), BOX3)
    z0 = 0.137
    sl2 = Slice(np.array([0.0, 0.0, z0]), np.eye(3)[:, :2])
    t2 = tessellate(net, sl2, [-1, 1, -1, 1])
    lifted = np.concatenate([t2.centroids(), np.full((t2.num_regions, 1), z0)], 1)
    r3 = t3.region_of(lifted)
    for j in range(2):
        assert np.array_equal(t2.pattern(j), t3.pattern(j)[r3])
    # the plane crosses exactly as many cells as the 2D slice has regions
    zs = t3.vertices[:, 2]
    zmin = np.minimum.reduceat(zs, t3.vertex_offsets[:-1])
    zmax = np.maximum.reduceat(zs, t3.vertex_offsets[:-1])
    crossed = (zmin < z0 - 1e-9) & (zmax > z0 + 1e-9)
    assert crossed.sum() == t2.num_regions
    assert set(r3) == set(np.nonzero(crossed)[0])


def test_boundary_polygons_are_true_argmax_ties():
    net = _net([3, 12, 12, 3], seed=3)
    with torch.no_grad():  # make all three classes appear in the box
        net.layers[-1].bias.zero_()
    t = tessellate(net, Slice.input_plane(3), BOX3)
    polys = t.boundary_polygons()
    assert len(polys) > 3
    f = net.to_dtype_device(torch.float64)
    with torch.no_grad():
        for poly, (c0, c1) in zip(polys, t.boundary_classes):
            pts = np.concatenate([poly, poly.mean(0, keepdims=True)])
            lg = f(torch.tensor(pts)).numpy()
            top = lg.max(1)
            assert np.allclose(lg[:, c0], top, atol=1e-8) and np.allclose(lg[:, c1], top, atol=1e-8)
            # planar and non-degenerate
            n = np.cross(poly[1] - poly[0], poly[2] - poly[0])
            assert np.linalg.norm(n) > 0
        # either side of each polygon (off its centroid along its own normal, Newell's method): the
        # forward pass's classes differ and are exactly the polygon's two classes
        cen, nrm = [], []
        for poly in polys:
            nxt = np.roll(poly, -1, 0)
            nv = np.array(
                [
                    np.sum((poly[:, 1] - nxt[:, 1]) * (poly[:, 2] + nxt[:, 2])),
                    np.sum((poly[:, 2] - nxt[:, 2]) * (poly[:, 0] + nxt[:, 0])),
                    np.sum((poly[:, 0] - nxt[:, 0]) * (poly[:, 1] + nxt[:, 1])),
                ]
            )
            cen.append(poly.mean(0))
            nrm.append(nv / np.linalg.norm(nv))
        cen, nrm = np.array(cen), np.array(nrm)
        delta = 1e-6
        a = f(torch.tensor(cen + delta * nrm)).argmax(1).numpy()
        b = f(torch.tensor(cen - delta * nrm)).argmax(1).numpy()
        assert np.all(a != b), "the classes on either side of a boundary polygon differ"
        assert np.array_equal(np.sort(np.stack([a, b], 1), 1), np.sort(t.boundary_classes, 1))


def test_three_directions_of_a_higher_dimensional_net():
    net = _net([5, 8, 8, 3], seed=9)
    rng = np.random.default_rng(1)
    sl = Slice.from_directions(rng.normal(size=5), rng.normal(size=(3, 5)))
    t = tessellate(net, sl, [-1.5, 1.5, -1.5, 1.5, -1.5, 1.5])
    assert t.volumes().sum() == pytest.approx(27.0, rel=1e-9)
    _check_patterns_3d(t, net, n=1500)
    c = torch.tensor(sl.to_input(t.centroids()[:10]))
    f = net.to_dtype_device(torch.float64)
    J = torch.autograd.functional.jacobian(lambda x: f(x).sum(0), c).permute(1, 0, 2)
    assert np.allclose(t.slope_norm[:10], torch.linalg.matrix_norm(J, ord=2).numpy(), rtol=1e-9)
    lazy = tessellate(net, sl, [-1.5, 1.5, -1.5, 1.5, -1.5, 1.5], slope_norm=False)
    assert np.isnan(lazy.slope_norm).all()
    np.testing.assert_allclose(region_slope_norms(net, lazy), t.slope_norm, rtol=1e-12)  # the same, computed afterwards


def test_budget_3d():
    with pytest.raises(BudgetExceededError, match="layer 1 of 2"):
        tessellate(_net([3, 16, 16, 2]), Slice.input_plane(3), BOX3, max_regions=10)


def _arrangement_cells_in_box(W: np.ndarray, b: np.ndarray) -> int:
    """Independent count of the cells of the arrangement {W x + b = 0} inside [-1, 1]^3: distinct planes
    (up to scale and orientation; zero rows dropped), then one Chebyshev LP per sign vector (scipy)."""
    from scipy.optimize import linprog

    planes = []
    for w, c in zip(W, b):
        n = np.linalg.norm(w)
        if n == 0:
            continue
        p = np.r_[w, c] / n
        p = p * np.sign(p[np.flatnonzero(np.abs(p[:3]) > 1e-12)[0]])
        if not any(np.allclose(p, q) for q in planes):
            planes.append(p)
    P = np.array(planes)
    cells = 0
    for signs in itertools.product([-1.0, 1.0], repeat=len(P)):
        s = np.array(signs)[:, None]
        A = np.vstack([-s * P[:, :3], np.eye(3), -np.eye(3)])  # s (w.x + c) >= r  and the box walls
        rhs = np.r_[s[:, 0] * P[:, 3], np.ones(6)]
        A_ub = np.hstack([A, np.ones((A.shape[0], 1))])
        res = linprog(np.r_[0, 0, 0, -1.0], A_ub=A_ub, b_ub=rhs, bounds=[(None, None)] * 3 + [(None, 1)], method="highs")
        cells += int(res.status == 0 and -res.fun > 1e-7)
    return cells


def test_degenerate_3d_coincident_planes_box_corners_and_dead_neurons():
    W1 = np.array(
        [
            [1, 0, 0],
            [2, 0, 0],  # x = 0 twice (coincident, scaled)
            [0, 1, 0],  # y = 0
            [0, 0, 1],
            [0, 0, -1],  # z = 0 with both orientations
            [1, 1, -1],  # through the box corners (1,-1,-1), (-1,1,-1), (1,1,1)
            [1, 1, 1],  # touches the box only at the corner (1, 1, 1)
            [0, 0, 0],  # zero weights, negative bias: dead everywhere
            [0, 0, 1],
        ],
        dtype=np.float64,
    )  # z - 5 < 0 on the whole box: dead there
    b1 = np.array([0, 0, 0, 0, 0, -1, -3, -1, -5], dtype=np.float64)
    net = _net([3, 9, 5, 2], seed=2)
    with torch.no_grad():
        net.layers[0].weight.copy_(torch.tensor(W1))
        net.layers[0].bias.copy_(torch.tensor(b1))
        net.layers[2].weight[4] = 0.0  # a layer-2 neuron dead on the whole box
        net.layers[2].bias[4] = -1.0
    ts = tessellate_all_depths(net, Slice.input_plane(3), BOX3)
    t1 = ts[0]
    # 8 octants; the plane x + y - z = 1 cuts the 4 octants with at least two of x > 0, y > 0, z < 0
    assert t1.num_regions == 12 == _arrangement_cells_in_box(W1, b1)
    for t in ts:
        v = t.volumes()
        assert np.all(v > 0)
        assert v.sum() == pytest.approx(8.0, rel=1e-12)
        _check_patterns_3d(t, net, n=1500)
    p1 = t1.pattern(0)
    assert np.array_equal(p1[:, 0], p1[:, 1]), "coincident neurons share their pattern"
    assert np.array_equal(p1[:, 3], ~p1[:, 4]), "opposite orientations of one plane"
    assert not p1[:, 6:].any(), "the corner-touching and dead neurons are off on every cell"
    assert not ts[1].pattern(1)[:, 4].any()
    # no face lies on the planes that only touch (x + y + z = 3) or miss (z = 5) the box
    nf = np.diff(ts[1].face_offsets)
    cen = np.zeros((nf.shape[0], 3))
    np.add.at(cen, np.repeat(np.arange(nf.shape[0]), nf), ts[1].vertices[ts[1].face_indices])
    cen /= nf[:, None]
    assert np.abs(cen.sum(1) - 3).min() > 1e-3 and np.abs(cen[:, 2] - 5).min() > 1


def _keys3(t, depth):
    rows = t.codes.rows_bytes(depth)
    return [bytes(r) for r in rows]


def _assert_same_cells(direct, chunked, net):
    """The same cells at every depth (matched by activation pattern), with the same geometry, patterns,
    parents, classes, maps, slopes and boundary; each closed."""
    from geometry.tessellation import mesh3d

    for d, (a, b) in enumerate(zip(direct, chunked), start=1):
        assert a.num_regions == b.num_regions
        ka, kb = _keys3(a, d), _keys3(b, d)
        assert len(set(ka)) == a.num_regions and set(ka) == set(kb), "the same cells, by their activation patterns"
        ia = {k: i for i, k in enumerate(ka)}
        order = np.array([ia[k] for k in kb])  # chunked cell i is direct cell order[i]
        np.testing.assert_allclose(b.volumes(), a.volumes()[order], rtol=1e-9)
        np.testing.assert_allclose(b.centroids(), a.centroids()[order], atol=1e-12)
        for j in range(d):
            np.testing.assert_array_equal(b.pattern(j), a.pattern(j)[order])
        assert (mesh3d.cell_euler_characteristic(b) == 2).all() and mesh3d.cell_watertight(b).all()
        if d > 1:  # parents: the cell of the coarser depth with the same patterns of the earlier layers
            pa, pb = _keys3(direct[d - 2], d - 1), _keys3(chunked[d - 2], d - 1)
            assert [pb[p] for p in b.parent] == [pa[p] for p in a.parent[order]]
        np.testing.assert_array_equal(b.classes, a.classes[order])
    a, b = direct[-1], chunked[-1]
    np.testing.assert_allclose(b.out_linear, a.out_linear[order], atol=1e-12)
    np.testing.assert_allclose(b.slope_norm, a.slope_norm[order], rtol=1e-9)
    np.testing.assert_array_equal(b.class_mixed, a.class_mixed[order])
    assert mesh3d.boundary_mesh(b).area == pytest.approx(mesh3d.boundary_mesh(a).area, rel=1e-9)
    _check_patterns_3d(b, net, n=1500)


@pytest.mark.parametrize("nested", [False, True], ids=["chunks", "chunks-of-chunks"])
def test_3d_memory_budget_carries_the_cells_on_in_chunks_with_the_same_result(nested, monkeypatch):
    from geometry.tessellation import default_max_regions, solid

    net = _net([3, 16, 16, 3], seed=4) if not nested else _net([3, 10, 10, 10, 2], seed=10)
    with torch.no_grad():
        net.layers[-1].bias.zero_()  # a decision boundary inside the box
    direct = tessellate_all_depths(net, Slice.input_plane(3), BOX3)
    width = net.layer_infos[0].width
    row = 4 * width * 8  # a cell's affine map (k + 1 rows of float64)
    if nested:  # halve at every split, so chunks split again at later layers
        monkeypatch.setattr(solid, "chunk_count", lambda need, budget: 2)
        budget = row + 2 * direct[0].num_regions * row + 100  # layer 1 fits; every later layer splits
    else:
        budget = direct[-1].num_regions * row // 2
    seen = []
    chunked = tessellate_all_depths(net, Slice.input_plane(3), BOX3, memory_budget=budget, progress=lambda f, m: seen.append(m))
    chunk_layers = {m.split(":")[0] for m in seen if "chunk" in m and ":" in m}
    assert chunk_layers == ({"layer 2 of 3", "layer 3 of 3"} if nested else {"layer 2 of 2"})
    assert chunked[-1].chunks > (2 if nested else 1) and direct[-1].chunks == 1
    _assert_same_cells(direct, chunked, net)
    assert len(direct[-1].boundary_offsets) > 10
    with pytest.raises(BudgetExceededError, match=r"layer \d of \d: the affine maps of \d+ cells would need .*even in chunks"):
        tessellate(net, Slice.input_plane(3), BOX3, memory_budget=1000)
    wide = _net([3, 4096, 2])
    assert default_max_regions(wide, 3) == default_max_regions(net, 3) == default_max_regions(wide, 2) == 1_000_000


@pytest.mark.parametrize("widths", [[3, 24, 10, 3], [3, 40, 3]], ids=["then-more-layers", "last-layer"])
def test_3d_one_cell_with_too_many_children_carries_the_children_on_in_chunks(widths):
    """The box is one cell, so it cannot be chunked; when the children of its first cut are too many to
    carry at once, the children themselves go on in chunks (they lie inside one region of layer 1), to
    the same result. Before, this stopped with "the affine maps of 1 cells would need ..." (the digits
    CNN's 3D slice: 858k cells after its first layer)."""
    net = _net(widths, seed=5)
    with torch.no_grad():
        net.layers[-1].bias.zero_()
    direct = tessellate_all_depths(net, Slice.input_plane(3), BOX3)
    row = 4 * widths[1] * 8
    n1 = direct[0].num_regions
    assert n1 > 50
    budget = 3 * row + n1 * row  # the box's maps and planes fit; its children's maps (2·n1 rows) do not
    seen = []
    chunked = tessellate_all_depths(net, Slice.input_plane(3), BOX3, memory_budget=budget, progress=lambda f, m: seen.append(m))
    assert any("chunk" in m for m in seen), seen
    _assert_same_cells(direct, chunked, net)
