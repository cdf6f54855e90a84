"""Render meshes from 3D tessellations (geometry/tessellation/mesh3d.py): topology, counts, filters, exploded view,
decision-boundary mesh, picking. The tessellations come from an independent reference (plain polyhedron
clipping, tests/reference_tess3d.py) and, when it is present, from the engine."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from geometry.tessellation import mesh3d
from geometry.networks.network import Network
from geometry.networks.spec import mlp_spec

from reference_tess3d import reference_tessellation

BOX = np.array([-1.0, 1.0, -1.0, 1.0, -1.0, 1.0])


def _net(widths, seed):
    torch.manual_seed(seed)
    return Network(mlp_spec(widths)).eval()


@pytest.fixture(scope="module")
def ref():
    net = _net([3, 8, 2], 0)
    return net, reference_tessellation(net, BOX)


def _face_area_sum(tess, faces=None):
    n = mesh3d.polygon_normals(tess.vertices[tess.face_indices], tess.face_offsets)
    a = 0.5 * np.linalg.norm(n, axis=1)
    return float(a.sum() if faces is None else a[faces].sum())


def test_fan_triangulation_matches_a_loop():
    rng = np.random.default_rng(0)
    sizes = rng.integers(3, 9, size=40)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    idx = rng.permutation(int(sizes.sum()))
    tris, tri_face = mesh3d.triangulate_faces(idx, offsets)
    expect, expect_face = [], []
    for f in range(len(sizes)):
        loop = idx[offsets[f] : offsets[f + 1]]
        for k in range(1, len(loop) - 1):
            expect.append([loop[0], loop[k], loop[k + 1]])
            expect_face.append(f)
    assert tris.shape == (int((sizes - 2).sum()), 3)
    np.testing.assert_array_equal(tris, np.array(expect))
    np.testing.assert_array_equal(tri_face, expect_face)


def test_reference_cells_are_watertight_convex_polyhedra(ref):
    _, t = ref
    assert t.num_regions > 20
    np.testing.assert_allclose(t.volumes().sum(), t.domain_volume(), rtol=1e-9)
    assert (t.volumes() > 0).all()  # outward loops
    assert (mesh3d.cell_euler_characteristic(t) == 2).all()
    assert (mesh3d.triangle_mesh_euler(t) == 2).all()
    assert mesh3d.cell_watertight(t).all()


def test_topology_checks_catch_a_missing_face_and_a_flipped_face(ref):
    _, t = ref
    r = 5
    f0, f1 = t.cell_face_offsets[r], t.cell_face_offsets[r + 1]
    # drop the last face of cell r
    cut0, cut1 = t.face_offsets[f1 - 1], t.face_offsets[f1]
    fi = np.delete(t.face_indices, np.arange(cut0, cut1))
    fo = np.concatenate([t.face_offsets[:f1], t.face_offsets[f1 + 1 :] - (cut1 - cut0)])
    cfo = t.cell_face_offsets.copy()
    cfo[r + 1 :] -= 1
    broken = dataclasses.replace(t, face_indices=fi, face_offsets=fo, cell_face_offsets=cfo, face_layer=np.delete(t.face_layer, f1 - 1))
    w = mesh3d.cell_watertight(broken)
    assert not w[r] and w[np.arange(t.num_regions) != r].all()
    assert mesh3d.cell_euler_characteristic(broken)[r] != 2
    # reverse one face loop of cell r: closed but not consistently oriented
    fi2 = t.face_indices.copy()
    a, b = t.face_offsets[f0], t.face_offsets[f0 + 1]
    fi2[a:b] = fi2[a:b][::-1]
    flipped = dataclasses.replace(t, face_indices=fi2)
    w2 = mesh3d.cell_watertight(flipped)
    assert not w2[r] and w2.sum() == t.num_regions - 1
    assert mesh3d.cell_euler_characteristic(flipped)[r] == 2  # Euler alone cannot see orientation


def test_face_mesh_counts_and_area_match_the_tessellation(ref):
    _, t = ref
    F = t.face_offsets.shape[0] - 1
    m = mesh3d.face_mesh(t)
    assert m.num_faces == F
    assert m.triangles.shape[0] == int((np.diff(t.face_offsets) - 2).sum())
    assert mesh3d.face_mesh(t, edge_mode="face").edges.shape[0] == t.face_indices.shape[0]
    p = m.positions.astype(np.float64)[m.triangles]
    area = 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1).sum()
    np.testing.assert_allclose(area, _face_area_sum(t), rtol=1e-5)
    # each triangle's vertices are vertices of its source face
    for k in np.random.default_rng(1).integers(0, m.triangles.shape[0], 50):
        f = m.tri_face[k]
        loop = t.vertices[t.face_indices[t.face_offsets[f] : t.face_offsets[f + 1]]]
        for v in m.positions[m.triangles[k]]:
            assert np.min(np.linalg.norm(loop - v, axis=1)) < 1e-6


def test_outline_deduplication(ref):
    _, t = ref
    per_face = mesh3d.face_mesh(t, edge_mode="face")
    per_cell = mesh3d.face_mesh(t, edge_mode="cell")
    geo = mesh3d.face_mesh(t, edge_mode="geometric")
    # once per cell: E = V + F - 2 for every convex cell
    F = np.diff(t.cell_face_offsets)
    V = np.diff(t.vertex_offsets)
    assert per_cell.edges.shape[0] == int((V + F - 2).sum()) == per_face.edges.shape[0] // 2

    def segs(m):
        p = np.round(m.positions[m.edges].astype(np.float64), 6)
        p = np.sort(p.view([("x", float), ("y", float), ("z", float)]).reshape(-1, 2), axis=1)
        return {tuple(map(tuple, q.tolist())) for q in p}

    assert segs(geo) == segs(per_cell) == segs(per_face)  # same picture
    assert geo.edges.shape[0] == len(segs(per_face)) < per_cell.edges.shape[0]
    # a segment keeps the newest layer among the faces it borders
    lay = np.asarray(t.face_layer)

    def keyed(m):
        p = np.round(m.positions[m.edges].astype(np.float64), 6)
        return [tuple(sorted(map(tuple, q.tolist()))) for q in p]

    newest: dict = {}
    for k, f in zip(keyed(per_face), per_face.edge_face):
        newest[k] = max(newest.get(k, -2), int(lay[f]))
    assert all(newest[k] == lay[f] for k, f in zip(keyed(geo), geo.edge_face))
    assert mesh3d.face_mesh(t, explode=0.3).edges.shape[0] == per_cell.edges.shape[0]  # exploded: per cell


def test_layer_filter(ref):
    _, t = ref
    only = mesh3d.layer_face_mask(t, 0)
    np.testing.assert_array_equal(only, t.face_layer == 0)
    assert mesh3d.layer_face_mask(t, None).sum() == (t.face_layer >= 0).sum()
    assert mesh3d.layer_face_mask(t, None, include_domain=True).all()
    assert mesh3d.layer_face_mask(t, 0, include_domain=True).sum() == len(t.face_layer)
    m = mesh3d.face_mesh(t, only)
    assert m.num_faces == int(only.sum()) and set(np.unique(t.face_layer[m.tri_face])) == {0}
    np.testing.assert_allclose(_face_area_sum(t, m.faces), _face_area_sum(t, np.flatnonzero(only)), rtol=1e-12)


def test_exploded_view_moves_each_cell_rigidly_away_from_the_centre(ref):
    _, t = ref
    plain, ex = mesh3d.face_mesh(t), mesh3d.face_mesh(t, explode=0.5)
    centre = BOX.reshape(3, 2).mean(1)
    shift = ex.positions.astype(np.float64) - plain.positions
    np.testing.assert_allclose(shift, 0.5 * (t.centroids() - centre)[plain.vertex_cell], atol=1e-6)
    # rigid per cell: all vertices of a cell move by the same vector, directed away from the centre
    d = np.einsum("ij,ij->i", shift, t.centroids()[plain.vertex_cell] - centre)
    assert (d >= -1e-12).all()


def test_point_triangle_distance_against_sampling():
    rng = np.random.default_rng(2)
    T = rng.normal(size=(200, 3, 3))
    P = rng.normal(size=(200, 3)) * 2
    d = mesh3d.points_to_triangles_distance(P, T)
    s = rng.dirichlet(np.ones(3), size=4000)  # barycentric samples
    samples = np.einsum("sk,tkd->tsd", s, T)
    brute = np.linalg.norm(samples - P[:, None], axis=2).min(1)
    assert (d <= brute + 1e-12).all()
    assert np.percentile(brute - d, 95) < 0.05 * np.abs(T).max()


def test_near_boundary_filter_against_brute_force(ref):
    _, t = ref
    assert t.boundary_offsets.shape[0] > 3
    T, _ = mesh3d.boundary_triangles(t)
    C = mesh3d.face_centroids(t)
    s = np.random.default_rng(3).dirichlet(np.ones(3), size=600)
    samples = np.einsum("sk,tkd->tsd", s, T).reshape(-1, 3)
    samples = np.concatenate([samples, T.reshape(-1, 3)])
    brute = np.array([np.linalg.norm(samples - c, axis=1).min() for c in C])  # >= the exact distance
    crossed = np.zeros(t.num_regions, dtype=bool)
    crossed[t.boundary_region] = True
    fc = mesh3d.face_cells(t)
    for dist in (0.0, 0.1, 0.3):
        m = mesh3d.near_boundary_face_mask(t, dist)
        assert m[crossed[fc]].all()  # every face of a crossed cell
        assert m[(brute <= dist)].all()  # everything surely within the distance
        exact_far = ~m & ~crossed[fc]
        assert (brute[exact_far] > dist - 1e-12).all()
    assert mesh3d.near_boundary_face_mask(t, 0.0).sum() < mesh3d.near_boundary_face_mask(t, 0.3).sum()


def test_boundary_mesh_is_oriented_welded_and_keeps_the_area(ref):
    net, t = ref
    bm = mesh3d.boundary_mesh(t)
    polys = t.boundary_polygons()
    area = sum(0.5 * np.linalg.norm(mesh3d.polygon_normals(p, np.array([0, len(p)]))[0]) for p in polys)
    np.testing.assert_allclose(bm.area, area, rtol=1e-9)
    assert bm.positions.shape[0] < t.boundary_vertices.shape[0]  # welded across cells
    # consistent orientation of the welded surface: no directed edge twice
    e = np.concatenate([bm.triangles[:, [0, 1]], bm.triangles[:, [1, 2]], bm.triangles[:, [2, 0]]])
    assert np.unique(e, axis=0).shape[0] == e.shape[0]
    # normals point towards class 1: stepping along the normal raises f1 - f0 (forward pass, not the tessellation)
    cent = bm.positions[bm.triangles].mean(1)
    eps = 1e-4
    with torch.no_grad():
        up = net(torch.as_tensor(cent + eps * bm.face_normals, dtype=torch.float32)).double().numpy()
        dn = net(torch.as_tensor(cent - eps * bm.face_normals, dtype=torch.float32)).double().numpy()
    assert ((up[:, 1] - up[:, 0]) > (dn[:, 1] - dn[:, 0])).mean() > 0.97
    np.testing.assert_allclose(np.linalg.norm(bm.normals, axis=1), 1.0, atol=1e-9)


def test_colours(ref):
    """3D faces are coloured from the one palette: a class, layer and pattern hash look as in the 2D view."""
    from app.render import faces, palette
    from app.render.tiles import pattern_hashes

    _, t = ref
    v = faces.face_values(t, "class")
    rgba = faces.colorize(v, "class", alpha=0.4)
    want = palette.class_rgba(int(v.max()) + 1)[v][:, :3]
    np.testing.assert_allclose(rgba[:, :3], want, atol=1e-6)
    assert np.allclose(rgba[:, 3], 0.4)
    unk = faces.colorize(np.array([-1, 0]), "class")
    assert np.allclose(unk[0], palette.UNKNOWN)
    s = faces.colorize(np.array([0.0, 1.0, np.nan]), "slope")
    np.testing.assert_allclose(s[:2], palette.colormap("viridis", [0.0, 1.0]) * [1, 1, 1, 0] + [0, 0, 0, 0.35], atol=1e-6)
    assert np.allclose(s[2], palette.UNKNOWN)
    lay = faces.colorize(faces.face_values(t, "layer"), "layer", depth=len(t.layers))
    assert np.allclose(lay[t.face_layer == -1, :3], 200 / 255)
    first = lay[t.face_layer == 0, :3]
    np.testing.assert_allclose(first, np.broadcast_to(palette.layer_rgba(len(t.layers))[1, :3], first.shape), atol=1e-6)
    h = faces.face_values(t, "hash")
    fc = mesh3d.face_cells(t)
    np.testing.assert_array_equal(h, pattern_hashes(t.codes, t.num_regions)[fc])
    assert len(np.unique(h)) == len(np.unique(h[np.unique(fc, return_index=True)[1]]))
    with pytest.raises(ValueError):
        faces.face_values(t, "nope")


def test_ray_picking_against_brute_force():
    rng = np.random.default_rng(4)
    T = rng.uniform(-1, 1, size=(300, 3, 3))
    for _ in range(20):
        o = rng.uniform(-3, 3, 3)
        d = -o + rng.normal(scale=0.3, size=3)
        i, tt = mesh3d.ray_triangles(o, d, T)
        ts = np.linspace(0, 2, 4001)[1:]
        pts = o + ts[:, None] * d
        # brute force: first sample point lying on some triangle's plane within the triangle
        best = np.inf
        for k in range(len(T)):
            n = np.cross(T[k, 1] - T[k, 0], T[k, 2] - T[k, 0])
            s = (pts - T[k, 0]) @ n
            cross = np.flatnonzero(np.sign(s[:-1]) != np.sign(s[1:]))
            for c in cross:
                p = pts[c]
                bary = np.linalg.lstsq(np.stack([T[k, 1] - T[k, 0], T[k, 2] - T[k, 0]], 1), p - T[k, 0], rcond=None)[0]
                if bary.min() > 0.01 and bary.sum() < 0.99:
                    best = min(best, ts[c])
        if np.isfinite(best):
            assert i >= 0 and tt <= best + 1e-3
    assert mesh3d.ray_triangles(np.array([10.0, 10, 10]), np.array([1.0, 0, 0]), T)[0] == -1


def _engine_3d():
    try:
        from geometry.tessellation import tessellate_all_depths
        from geometry.slices import Slice

        net = _net([3, 8, 2], 0)
        return net, tessellate_all_depths(net, Slice.input_plane(3), BOX)
    except (ImportError, ModuleNotFoundError) as exc:
        pytest.skip(f"the 3D tessellation engine is not available yet ({exc})")


def test_engine_meshes_are_watertight_and_counts_match():
    net, by_depth = _engine_3d()
    ref_t = reference_tessellation(net, BOX)
    t = by_depth[-1]
    assert t.num_regions == ref_t.num_regions
    np.testing.assert_allclose(t.volumes().sum(), t.domain_volume(), rtol=1e-9)
    assert (mesh3d.cell_euler_characteristic(t) == 2).all()
    assert mesh3d.cell_watertight(t).all()
    m = mesh3d.face_mesh(t)
    assert m.num_faces == t.face_offsets.shape[0] - 1
    assert m.triangles.shape[0] == int((np.diff(t.face_offsets) - 2).sum())
    np.testing.assert_allclose(_face_area_sum(t), _face_area_sum(ref_t), rtol=1e-6)
    bm = mesh3d.boundary_mesh(t)
    ref_bm = mesh3d.boundary_mesh(ref_t)
    np.testing.assert_allclose(bm.area, ref_bm.area, rtol=1e-6)


def test_engine_agrees_with_the_reference_on_a_two_layer_net():
    from reference_tess3d import reference_tessellations

    net = _net([3, 6, 5, 3], 1)
    try:
        from geometry.tessellation import tessellate_all_depths
        from geometry.slices import Slice

        eng = tessellate_all_depths(net, Slice.input_plane(3), BOX)
    except (ImportError, ModuleNotFoundError) as exc:
        pytest.skip(f"the 3D tessellation engine is not available yet ({exc})")
    ref_by = reference_tessellations(net, BOX)
    for e, r in zip(eng, ref_by):
        assert e.num_regions == r.num_regions
        assert (mesh3d.cell_euler_characteristic(e) == 2).all() and mesh3d.cell_watertight(e).all()
        np.testing.assert_allclose(_face_area_sum(e), _face_area_sum(r), rtol=1e-6)
        # the mesh has exactly the engine's faces, fan-triangulated
        m = mesh3d.face_mesh(e)
        assert m.num_faces == e.face_offsets.shape[0] - 1
        assert m.triangles.shape[0] == int((np.diff(e.face_offsets) - 2).sum())
    be, br = mesh3d.boundary_mesh(eng[-1]), mesh3d.boundary_mesh(ref_by[-1])
    np.testing.assert_allclose(be.area, br.area, rtol=1e-6)
    assert be.area > 0


def test_plane_section_is_the_exact_2d_tessellation_of_the_plane():
    try:
        from geometry.slices import Slice
        from geometry.tessellation import tessellate, tessellate_all_depths

        net = _net([3, 6, 5, 3], 1)
        t = tessellate_all_depths(net, Slice.input_plane(3), BOX)[-1]
    except (ImportError, ModuleNotFoundError) as exc:
        pytest.skip(f"the 3D tessellation engine is not available yet ({exc})")
    for axis, pos in [(2, 0.137), (0, -0.31), (1, 0.5)]:
        P, off, cells = mesh3d.plane_section(t, axis, pos)
        assert np.allclose(P[:, axis], pos)
        others = [k for k in range(3) if k != axis]
        area = 0.5 * np.linalg.norm(mesh3d.polygon_normals(P, off), axis=1)
        np.testing.assert_allclose(area.sum(), 4.0, rtol=1e-9)  # the box's cross-section
        u = np.zeros(3)
        u[axis] = pos
        t2 = tessellate(net, Slice(u, np.eye(3)[:, others]), BOX[[2 * others[0], 2 * others[0] + 1, 2 * others[1], 2 * others[1] + 1]])
        assert len(cells) == t2.num_regions  # one polygon per 2D region
        np.testing.assert_allclose(np.sort(area), np.sort(t2.areas()), rtol=1e-7, atol=1e-12)
