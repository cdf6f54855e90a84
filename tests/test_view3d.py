"""The 3D slice view: Qt-free state and scene arrays, the vispy canvas (render, pick), and the real window's
3D tab linked to the 2D view. OpenGL tests skip, saying why, on Qt platforms without OpenGL (offscreen);
under Xvfb (pytest-xvfb or ``xvfb-run -a``) with Mesa's llvmpipe they run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from app.jobs import scene3d as jobs3d
from app import jobs
from app.model.view3d import ClipPlane, Slice3Choice, View3DSettings, View3DState
from geometry.tessellation import mesh3d
from geometry.networks.network import Network
from geometry.slices import Slice
from geometry.networks.spec import mlp_spec

from reference_tess3d import reference_tessellation

BOX = np.array([-1.0, 1.0, -1.0, 1.0, -1.0, 1.0])
TIMEOUT = 60_000


@pytest.fixture(scope="module")
def ref():
    torch.manual_seed(0)
    net = Network(mlp_spec([3, 8, 2])).eval()
    return net, reference_tessellation(net, BOX)


# -- Qt-free ---------------------------------------------------------------------------------------------
def test_clip_slice_is_the_plane_of_the_3d_slice():
    rng = np.random.default_rng(0)
    sl3 = Slice.from_directions(rng.normal(size=6), rng.normal(size=(3, 6)))
    box = (-1.0, 2.0, -0.5, 0.5, -3.0, 1.0)
    for axis in range(3):
        clip = ClipPlane(True, axis, 0.3)
        sl2, win = jobs3d.clip_slice(sl3, box, clip)
        ab = rng.normal(size=(5, 2))
        u = np.array([jobs3d.plane_to_3d(clip, p) for p in ab])
        np.testing.assert_allclose(sl2.to_input(ab), sl3.to_input(u), atol=1e-12)
        np.testing.assert_allclose([jobs3d.plane_from_3d(clip, x) for x in u], ab, atol=1e-12)
        others = [k for k in range(3) if k != axis]
        assert win == (box[2 * others[0]], box[2 * others[0] + 1], box[2 * others[1]], box[2 * others[1] + 1])
        assert jobs3d.is_clip_slice(sl2, sl3, clip)
        assert not jobs3d.is_clip_slice(sl2, sl3, ClipPlane(True, axis, 0.31))


def test_make_slice3_kinds(digits_run_path):
    from app.jobs import open_run_bundle

    b = open_run_bundle(digits_run_path)
    with pytest.raises(Exception, match="only for 3-input"):
        jobs3d.make_slice3(b, Slice3Choice("input"))
    sl, box = jobs3d.make_slice3(b, Slice3Choice("pca"))
    assert sl.dim == 3 and sl.ambient_dim == 64
    np.testing.assert_allclose(sl.basis.T @ sl.basis, np.eye(3), atol=1e-10)
    side = np.diff(np.asarray(box).reshape(3, 2), axis=1).ravel()
    np.testing.assert_allclose(side, side[0])  # a cube
    u = sl.project(b.points()[0])
    assert (np.abs(u - np.asarray(box).reshape(3, 2).mean(1)) <= side[0] / 2 + 1e-9).mean() > 0.99
    sl, box = jobs3d.make_slice3(b, Slice3Choice("deepfool", index=5, seed=1))
    from geometry.boundary.deepfool import deepfool

    r = deepfool(b.run.network(-1), b.points()[0][5][None]).perturbation[0]
    np.testing.assert_allclose(sl.basis[:, 0], r / np.linalg.norm(r), atol=1e-8)  # first axis: DeepFool direction
    np.testing.assert_allclose(sl.origin, b.points()[0][5])


def test_view3d_state_validates_and_emits_once():
    s = View3DState()
    seen = []
    s.events.settings.connect(lambda v: seen.append(("settings", v)))
    s.events.clip.connect(lambda v: seen.append(("clip", v)))
    s.update_settings(explode=9.0, opacity=-1)
    assert s.settings.explode == 3.0 and s.settings.opacity == 0.0
    s.update_settings(explode=9.0)
    assert len([e for e in seen if e[0] == "settings"]) == 1
    with pytest.raises(ValueError):
        s.update_settings(camera="orbit")
    with pytest.raises(ValueError):
        s.set_slice3(Slice.input_plane(2))
    s.set_slice3(Slice.input_plane(3), (0, 4, -1, 1, 10, 12))
    assert s.clip.position == 11.0  # centred on the w range of the box
    s.update_clip(position=100)
    assert s.clip.position == 12.0  # clamped
    s.update_clip(axis=0)
    assert s.clip.position == 2.0  # a new axis starts at the box centre
    with pytest.raises(ValueError):
        s.set_choice(Slice3Choice("nope"))


def test_box_size_shrinks_the_3d_box_about_its_centre_and_keeps_the_clipping_plane_inside():
    s = View3DState()
    s.set_slice3(Slice.input_plane(3), (0, 4, -1, 1, 10, 12))
    s.update_clip(position=11.9)
    s.update_settings(box_scale=0.5)
    assert s.home_box == (0, 4, -1, 1, 10, 12) and s.box == (1.0, 3.0, -0.5, 0.5, 10.5, 11.5)
    assert s.clip.position == 11.5 and s.to_dict()["box"] == list(s.box)  # clamped into the smaller box
    s.update_settings(box_scale=5)
    assert s.settings.box_scale == 1.0 and s.box == s.home_box
    s.update_settings(box_scale=0)
    assert s.settings.box_scale == 0.01
    with pytest.raises(ValueError, match="box_scale"):
        s.update_settings(box_scale=float("nan"))


def test_view3d_state_round_trips_through_a_session_dict():
    """to_dict -> apply_dict restores choice, settings and the clipping plane; the plane waits for its slice
    (a new slice otherwise re-centres it); malformed input is one InputFileError."""
    from geometry.errors import InputFileError

    a = View3DState()
    a.set_choice(Slice3Choice("deepfool", index=4, seed=2))
    a.set_slice3(Slice.input_plane(3), (0, 4, -1, 1, 10, 12))
    a.update_settings(only_layer=2, near_boundary=True, explode=0.5, camera="fly", opacity=0.3)
    a.update_clip(enabled=True, axis=1, position=0.25, keep_above=True)
    saved = a.to_dict()
    b = View3DState()
    b.apply_dict(saved)
    assert b.choice == a.choice and b.settings == a.settings
    assert b.clip != a.clip  # no slice yet: the plane is pending
    b.set_slice3(Slice.input_plane(3), (0, 4, -1, 1, 10, 12))
    assert b.clip == a.clip
    b.set_slice3(Slice.input_plane(3), (0, 4, -1, 1, 10, 12))
    assert b.clip.position == 0.0  # applied once; later slices re-centre
    b.apply_dict({"choice": saved["choice"], "clip": {**saved["clip"], "position": 0.5}})
    assert b.clip.position == 0.5  # same choice, slice present: at once
    for bad in ({"choice": {"kind": "nope"}}, {"clip": {"axis": 7}}, {"settings": {"camera": "orbit"}}, [1]):
        with pytest.raises(InputFileError, match="3D view"):
            View3DState().apply_dict(bad)


def test_scene_arrays_counts_and_filters(ref):
    _, t = ref
    tb = [t]
    F = t.face_offsets.shape[0] - 1
    n = np.diff(t.face_offsets)
    sc = jobs3d.scene_arrays(tb, 1, "class", View3DSettings(show_domain_faces=True), BOX)
    assert sc.counts["faces_shown"] == F == sc.counts["faces"]
    assert sc.triangles.shape[0] == int((n - 2).sum()) == sc.tri_colors.shape[0]
    assert sc.edge_pos.shape[0] == 2 * mesh3d.face_mesh(t).edges.shape[0] == sc.edge_colors.shape[0]
    bm = mesh3d.boundary_mesh(t)
    assert sc.boundary_tris.shape[0] == bm.triangles.shape[0] > 0
    assert sc.pick_tris.shape[0] == sc.triangles.shape[0] + bm.triangles.shape[0]
    inner = t.face_layer >= 0
    sc = jobs3d.scene_arrays(tb, 1, "layer", View3DSettings(), BOX)
    assert sc.counts["faces_shown"] == inner.sum() and sc.triangles.shape[0] == int((n[inner] - 2).sum())
    sc = jobs3d.scene_arrays(tb, 1, "slope", View3DSettings(only_layer=1, near_boundary=True, near_distance=0.0), BOX)
    near = mesh3d.near_boundary_face_mask(t, 0.0) & inner
    assert sc.counts["faces_shown"] == near.sum() < inner.sum()
    density = jobs3d.scene_arrays(tb, 1, "density", View3DSettings(), BOX)  # a 2D map: 3D shows classes and says so
    np.testing.assert_array_equal(density.tri_colors, jobs3d.scene_arrays(tb, 1, "class", View3DSettings(), BOX).tri_colors)
    assert "hyperplane density" in density.summary() and "2D tab" in density.summary()
    assert "chunks" not in density.summary()
    chunked = jobs3d.scene_arrays([dataclasses.replace(t, chunks=3)], 1, "class", View3DSettings(), BOX)
    assert "in 3 chunks (memory budget)" in chunked.summary()  # the 3D tab says how the budget was kept
    sc = jobs3d.scene_arrays(tb, 1, "hash", View3DSettings(show_faces=False, show_boundary=False), BOX)
    assert sc.triangles.shape[0] == 0 and sc.boundary_tris is None and sc.pick_tris.shape[0] == 0
    # exploded: the pickable surfaces minus their offsets are the un-exploded surfaces
    sc = jobs3d.scene_arrays(tb, 1, "class", View3DSettings(explode=0.8), BOX)
    plain = jobs3d.scene_arrays(tb, 1, "class", View3DSettings(), BOX)
    np.testing.assert_allclose(sc.pick_tris - sc.pick_offsets[:, None, :], plain.pick_tris, atol=1e-6)
    assert np.abs(sc.pick_offsets).max() > 0.1


# -- OpenGL --------------------------------------------------------------------------------------------------
def _project(canvas, p):
    q = np.asarray(canvas.view.scene.transform.map(np.r_[p, 1.0]), dtype=np.float64)
    return q[:2] / q[3]


@pytest.mark.gui
def test_canvas_renders_a_tessellation_and_picks_surfaces(gl, qtbot, ref):
    from app.qt.view3d import Canvas3D

    _, t = ref
    c = Canvas3D()
    qtbot.addWidget(c)
    c.resize(640, 480)
    c.show()
    c.set_box(t.domain)
    blank = c.render_image((640, 480))
    assert blank[..., :3].std() > 0  # the box and axis labels
    sc = jobs3d.scene_arrays([t], 1, "class", View3DSettings(), BOX)
    c.show_scene(sc)
    img = c.render_image((640, 480))
    assert img.shape == (480, 640, 4)
    rgb = img[..., :3].astype(int)
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50
    c.set_boundary(None, None)
    no_b = c.render_image((640, 480))[..., :3].astype(int)
    redder = (rgb[..., 0] - no_b[..., 0] > 30) & (no_b[..., 2] - rgb[..., 2] > 30)
    assert redder.sum() > 200  # the opaque red decision boundary is drawn
    c.set_faces(None, None, None)
    c.set_boundary(sc.boundary_pos, sc.boundary_tris)
    only_b = c.render_image((640, 480))[..., :3].astype(int)
    assert ((only_b[..., 0] > 150) & (only_b[..., 1] < 90) & (only_b[..., 2] < 110)).sum() > 200
    assert np.abs(only_b - rgb).sum() > 0  # the faces changed the picture
    c.show_scene(sc)
    # back-face culling keeps the faces seen from outside: an opaque cube shows its near face's colour
    P = np.array([[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1], [-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]], float) * 0.5
    loops = np.array([[0, 3, 2, 1], [4, 5, 6, 7], [0, 1, 5, 4], [2, 3, 7, 6], [1, 2, 6, 5], [0, 4, 7, 3]])
    tris = np.concatenate([loops[:, [0, 1, 2]], loops[:, [0, 2, 3]]])
    face_rgb = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 1, 1], [1, 0, 1]], float)
    cols = np.c_[np.concatenate([face_rgb, face_rgb]), np.ones(12)]
    c.set_boundary(None, None)
    c.set_faces(P, tris, cols, cull_back=True)
    x0, y0 = _project(c, np.zeros(3))
    o, d = c.ray_at(x0, y0)
    k, _ = mesh3d.ray_triangles(o, d, P[tris])
    img = c.render_image((640, 480))
    px = img[int(round(y0)), int(round(x0)), :3] / 255
    np.testing.assert_allclose(px, face_rgb[k % 6], atol=0.03)
    c.set_faces(P, tris[:, ::-1], cols, cull_back=True)  # inside-out loops: the far face shows
    px2 = c.render_image((640, 480))[int(round(y0)), int(round(x0)), :3] / 255
    assert np.abs(px2 - face_rgb[k % 6]).max() > 0.5
    c.show_scene(sc)
    # picking: a click on the centre of a boundary triangle hits the first surface on that ray
    bm = mesh3d.boundary_mesh(t)
    target = bm.positions[bm.triangles[0]].mean(0)
    x, y = _project(c, target)
    o, d = c.ray_at(x, y)
    assert np.linalg.norm(np.cross(target - o, d)) < 1e-6  # the ray passes through the target
    hit = c.pick(x, y)
    assert hit is not None and np.dot(hit - o, d) <= np.dot(target - o, d) + 1e-6
    assert np.linalg.norm(np.cross(hit - o, d)) < 1e-6
    k, _ = mesh3d.ray_triangles(o, d, sc.pick_tris)
    assert k >= 0 and mesh3d.points_to_triangles_distance(hit[None], sc.pick_tris[k][None])[0] < 1e-6
    # the same through real vispy mouse events (press + release without a drag)
    got = []
    c.picked.connect(lambda *p: got.append(p))
    c.canvas.events.mouse_press(pos=(x, y), button=1, modifiers=())
    c.canvas.events.mouse_release(pos=(x, y), button=1, modifiers=())
    assert len(got) == 1 and np.allclose(got[0], hit, atol=1e-6)
    # clipping: nothing is hit on the discarded side
    c.set_clip(True, 2, float(hit[2]) + 0.05)
    hit2 = c.pick(x, y)
    assert hit2 is None or hit2[2] >= hit[2] + 0.05 - 1e-9
    # Ctrl+drag moves the clipping plane (upwards drag: larger position), the camera stays put meanwhile
    from vispy.util import keys

    c.set_clip(True, 2, 0.0)
    moved = []
    c.plane_dragged.connect(moved.append)
    c.canvas.events.mouse_press(pos=(x, y), button=1, modifiers=(keys.CONTROL,))
    assert not c.view.camera.interactive
    c.canvas.events.mouse_move(pos=(x, y - 48), button=1, modifiers=(keys.CONTROL,))
    c.canvas.events.mouse_release(pos=(x, y - 48), button=1, modifiers=(keys.CONTROL,))
    assert c.view.camera.interactive and len(moved) == 1 and 0.0 < moved[0] <= 1.0
    c.set_clip(False)
    # the fly camera looks at the box's centre (it used to aim from a corner of the bounds: a blank canvas),
    # and Reset camera brings it back after the user turned away
    c.set_camera("fly")
    assert c.view.camera is c.fly
    centre = np.asarray(t.domain, float).reshape(3, 2).mean(1)
    np.testing.assert_allclose(_project(c, centre), [320, 240], atol=1.0)
    assert len(np.unique(c.render_image((640, 480))[..., :3].reshape(-1, 3), axis=0)) > 50
    from vispy.util.quaternion import Quaternion

    c.fly.rotation1 = c.fly.rotation1 * Quaternion.create_from_axis_angle(np.pi / 2, 0, 0, 1)  # a quarter turn about w
    c.fly.view_changed()
    c.render_image((640, 480))  # the camera's transform follows at the next draw
    assert np.linalg.norm(_project(c, centre) - [320, 240]) > 100
    c.reset_camera()
    c.render_image((640, 480))
    np.testing.assert_allclose(_project(c, centre), [320, 240], atol=1.0)
    c.set_camera("turntable")
    # exploded view: the pick is reported in tessellation coordinates (explosion undone)
    c.set_clip(False)
    ex = jobs3d.scene_arrays([t], 1, "class", View3DSettings(explode=0.5), BOX)
    c.show_scene(ex)
    cx, cy = _project(c, ex.pick_tris[0].mean(0))
    h3 = c.pick(cx, cy)
    assert h3 is not None
    assert mesh3d.points_to_triangles_distance(np.repeat(h3[None], len(sc.pick_tris), 0), sc.pick_tris).min() < 1e-5


def _tiny_run(tmp_path, widths=(3, 8, 2), save_epochs=(0, 2)):
    from geometry.networks.datasets import load_npz
    from geometry.networks.training import train_run

    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, size=(300, 3)).astype(np.float32)
    y = (X @ np.array([1.0, 0.6, -0.4]) + 0.5 * X[:, 0] ** 2 > 0.1).astype(np.int64)
    np.savez(tmp_path / "d.npz", X=X, y=y)
    ds = load_npz(tmp_path / "d.npz")
    return train_run(ds, mlp_spec(list(widths)), tmp_path / "run", epochs=max(save_epochs), save_epochs=list(save_epochs), lr=3e-2, seed=0)


@pytest.mark.gui
def _window_on(qtbot, make_window, run, cache_dir=None):
    """The real main window (1300x850) with ``run`` opened and its slice made."""
    from geometry.cache import ResultCache

    win = make_window(run, cache=ResultCache(cache_dir))
    qtbot.waitUntil(lambda: win.bundle is not None and win.state.slice is not None, timeout=TIMEOUT)
    return win


def _two_layer_3d_tab(qtbot, make_window, tmp_path, save_epochs=(1,)):
    """The window on a trained 3-6-5-2 run with its 3D tab shown and tessellated: (win, tab, state, idle)."""
    run = _tiny_run(tmp_path, widths=(3, 6, 5, 2), save_epochs=save_epochs)
    win = _window_on(qtbot, make_window, run)
    tab, st = win.view3d, win.state
    win.tabs.setCurrentWidget(tab)
    idle = lambda: tab.scene is not None and not win.work.busy()  # noqa: E731
    qtbot.waitUntil(lambda: tab.tess3 is not None and idle(), timeout=TIMEOUT)
    return win, tab, st, idle


def test_window_3d_tab_linked_to_the_2d_view_and_the_inspector(gl, qtbot, tmp_path, make_window):
    from app.jobs import open_run_bundle

    run = _tiny_run(tmp_path)
    win = _window_on(qtbot, make_window, run, cache_dir=tmp_path / "cache")
    tab = win.view3d
    # the exact 3D cells of this network, from the independent reference, put where the tab looks first;
    # with the engine present the tab would compute the same thing in a worker
    b = open_run_bundle(run)
    sl, box = jobs3d.make_slice3(b, jobs3d.default_choice(b), len(b.run) - 1)
    t = reference_tessellation(b.run.network(len(b.run) - 1), box)
    win.cache.put(jobs.tessellation_key(win.bundle, len(b.run) - 1, sl, box, tab.state3d.settings.max_cells), [t], persist=False)
    win.tabs.setCurrentWidget(tab)
    qtbot.waitUntil(lambda: tab.tess3 is not None and tab.scene is not None, timeout=TIMEOUT)
    assert tab.state3d.slice3.description == sl.description and np.allclose(tab.state3d.box, box)
    assert tab.scene.counts["cells"] == t.num_regions
    img = tab.canvas.render_image((700, 500))
    assert len(np.unique(img[..., :3].reshape(-1, 3), axis=0)) > 50
    # colour mode and depth come from the window's state
    before = tab.scene
    win.state.set_color_mode("slope")
    qtbot.waitUntil(lambda: tab.scene is not before, timeout=TIMEOUT)
    assert tab.scene.tri_colors.shape[0] == tab.scene.triangles.shape[0]
    assert not np.allclose(tab.scene.tri_colors, before.tri_colors)
    # clipping plane -> the 2D tab shows that plane's exact 2D tessellation
    pos = float(np.mean(box[4:6]) + 0.137 * (box[5] - box[4]))
    tab.state3d.update_clip(enabled=True, axis=2, position=pos)
    qtbot.waitUntil(lambda: jobs3d.is_clip_slice(win.state.slice, tab.state3d.slice3, tab.state3d.clip), timeout=TIMEOUT)
    qtbot.waitUntil(lambda: win.tess is not None and not win.work.busy("tessellation"), timeout=TIMEOUT)
    w = t.vertices[:, 2]
    lo = np.minimum.reduceat(w, t.vertex_offsets[:-1])
    hi = np.maximum.reduceat(w, t.vertex_offsets[:-1])
    # the plane's exact 2D tessellation over the box has one polygon per 3D cell the plane cuts
    from geometry.tessellation import tessellate

    _, window2 = jobs3d.clip_slice(sl, box, tab.state3d.clip)
    t2 = tessellate(b.run.network(len(b.run) - 1), win.state.slice, np.array(window2))
    assert t2.num_regions == int(((lo < pos) & (hi > pos)).sum())
    # and the 3D view draws that same cross-section on the plane (one polygon per cut cell)
    qtbot.waitUntil(lambda: tab.canvas.cap.visible, timeout=TIMEOUT)
    _, _, cut_cells = mesh3d.plane_section(t, 2, pos)
    assert len(cut_cells) == t2.num_regions
    assert win.tess[-1].slice is win.state.slice and win.tess[-1].num_regions >= t2.num_regions
    # picking a surface point: the plane moves through it, the 2D slice follows, and the inspector shows it
    bm = mesh3d.boundary_mesh(t)
    p = bm.positions[bm.triangles[0]].mean(0)
    tab._on_picked(*p)
    assert abs(tab.state3d.clip.position - p[2]) < 1e-12
    assert jobs3d.is_clip_slice(win.state.slice, tab.state3d.slice3, tab.state3d.clip)
    qtbot.waitUntil(lambda: win.inspector.report is not None and not win.work.busy("inspect"), timeout=TIMEOUT)
    np.testing.assert_allclose(win.inspector.report.x, sl.to_input(p[None])[0], atol=1e-9)
    assert tab.canvas.marker.visible
    # a traced path shows in 3D as a polyline (projected into the 3D slice)
    win.state.add_path("segment", (box[0] * 0.5, box[2] * 0.5), (box[1] * 0.5, box[3] * 0.5))
    qtbot.waitUntil(lambda: tab.canvas.paths.visible, timeout=TIMEOUT)
    # the epoch slider drives the 3D view: another checkpoint, another exact tessellation (engine, worker)
    key = tab.tess3_key
    win.state.set_epoch_index(0)
    qtbot.waitUntil(lambda: tab.tess3_key != key and tab.scene is not None and not win.work.busy("scene3d"), timeout=TIMEOUT)
    from geometry.tessellation import tessellate

    t0 = tessellate(b.run.network(0), sl, np.asarray(box))
    assert tab.tess3[-1].num_regions == t0.num_regions == tab.scene.counts["cells"]
    win.work.shutdown()


@pytest.mark.gui
def test_window_3d_tab_follows_the_layer_slider_and_its_controls(gl, qtbot, tmp_path, make_window):
    """Two hidden layers: the layer slider shows the cells after layer 1 or 2 (independent reference), and the
    face filters / exploded view of the 3D controls reach the view's settings and its scene."""
    from reference_tess3d import reference_tessellations

    win, tab, st, idle = _two_layer_3d_tab(qtbot, make_window, tmp_path)
    assert st.depth == 2 and len(tab.tess3) == 2
    ref = reference_tessellations(win.bundle.run.network(0), np.asarray(tab.state3d.box))
    assert [t.num_regions for t in tab.tess3] == [t.num_regions for t in ref]
    inner = [int((np.asarray(t.face_layer) >= 0).sum()) for t in tab.tess3]  # faces made by the neurons
    assert tab.scene.counts["cells"] == ref[1].num_regions and tab.scene.counts["faces_shown"] == inner[1]
    # the layer slider: the scene of depth 1 (fewer cells, fewer faces), then back
    before = tab.scene
    win.controls.layer.setValue(1)
    qtbot.waitUntil(lambda: tab.scene is not before and idle(), timeout=TIMEOUT)
    assert st.depth == 1 and tab.scene.counts["cells"] == ref[0].num_regions < ref[1].num_regions
    assert tab.scene.counts["faces_shown"] == inner[0] < inner[1]
    assert tab.scene.triangles.shape[0] < before.triangles.shape[0]
    before = tab.scene
    win.controls.layer.setValue(2)
    qtbot.waitUntil(lambda: tab.scene is not before and idle(), timeout=TIMEOUT)
    assert tab.scene.counts["faces_shown"] == inner[1]
    # "faces of": layer 1 only
    c, s3 = tab.controls, tab.state3d
    before = tab.scene
    c.layer.setCurrentIndex(c.layer.findData(1))
    assert s3.settings.only_layer == 1
    qtbot.waitUntil(lambda: tab.scene is not before and idle(), timeout=TIMEOUT)
    own = int((np.asarray(tab.tess3[1].face_layer) == 0).sum())
    assert 0 < tab.scene.counts["faces_shown"] == own < inner[1]
    c.layer.setCurrentIndex(c.layer.findData(0))
    assert s3.settings.only_layer == 0
    # only near the boundary: a subset of the faces
    before = tab.scene
    c.near.setChecked(True)
    assert s3.settings.near_boundary
    qtbot.waitUntil(lambda: tab.scene is not before and idle(), timeout=TIMEOUT)
    from geometry.tessellation import mesh3d

    d = s3.settings.near_distance * float(np.linalg.norm(np.diff(np.asarray(s3.box).reshape(3, 2), axis=1)))
    near = mesh3d.near_boundary_face_mask(tab.tess3[1], d) & (np.asarray(tab.tess3[1].face_layer) >= 0)
    assert tab.scene.counts["faces_shown"] == int(near.sum()) < inner[1]
    c.near.setChecked(False)
    assert not s3.settings.near_boundary
    # exploded view: slider 0..100 -> explode 0..1.5; every cell is pushed out
    before = tab.scene
    c.explode.setValue(50)
    assert s3.settings.explode == pytest.approx(0.75)
    qtbot.waitUntil(lambda: tab.scene is not before and idle() and tab.scene.counts["faces_shown"] == inner[1], timeout=TIMEOUT)
    assert np.abs(tab.scene.pick_offsets).max() > 0.1
    c.explode.setValue(0)
    assert s3.settings.explode == 0.0
    qtbot.waitUntil(lambda: idle() and np.abs(tab.scene.pick_offsets).max() == 0, timeout=TIMEOUT)
    # box size: the tab tessellates the slice's box shrunk about its centre (the independent reference
    # on that box agrees), and a cell budget it exceeds says what to change in this tab
    home = np.asarray(s3.home_box)
    before = tab.tess3
    c.box_scale.setValue(0.5)
    c.box_scale.editingFinished.emit()
    assert s3.settings.box_scale == 0.5
    qtbot.waitUntil(lambda: tab.tess3 is not before and idle(), timeout=TIMEOUT)
    half = np.asarray(s3.box)
    np.testing.assert_allclose(half[1::2] - half[0::2], (home[1::2] - home[0::2]) / 2)
    np.testing.assert_allclose(half.reshape(3, 2).mean(1), home.reshape(3, 2).mean(1))
    np.testing.assert_allclose(np.asarray(tab.tess3[-1].domain).reshape(-1), half)
    small = reference_tessellations(win.bundle.run.network(0), half)
    assert [t.num_regions for t in tab.tess3] == [t.num_regions for t in small] and small[-1].num_regions < ref[-1].num_regions
    s3.update_settings(max_cells=small[0].num_regions - 1)
    qtbot.waitUntil(lambda: idle() and tab.message.isVisible() and "box size" in tab.message.text(), timeout=TIMEOUT)
    s3.update_settings(max_cells=View3DSettings().max_cells, box_scale=1.0)
    qtbot.waitUntil(lambda: idle() and tab.tess3 is not None and tab.tess3[-1].num_regions == ref[-1].num_regions, timeout=TIMEOUT)
    # sessions keep the 3D tab: settings, slice choice and the clipping plane come back
    s3.update_settings(only_layer=1, opacity=0.4)
    s3.update_clip(enabled=True, axis=0, position=0.2)
    want = (s3.choice, s3.settings, s3.clip)
    f = tmp_path / "s.json"
    win.save_session(f)
    s3.update_settings(only_layer=0, opacity=0.12)
    s3.update_clip(enabled=False, axis=2)
    win.open_path(f)
    qtbot.waitUntil(lambda: (s3.choice, s3.settings, s3.clip) == want and idle(), timeout=TIMEOUT)
    assert c.layer.currentData() == 1 and c.opacity.value() == 40 and c.clip_on.isChecked()
    win.work.shutdown()


@pytest.mark.gui
def test_window_3d_tab_computes_slope_norms_only_for_the_slope_colouring(gl, qtbot, tmp_path, make_window):
    """Class colouring: the tab's cells carry no ||A_w||_2 (NaN, as in the 2D tab); switching to the slope
    colouring fills them in without re-tessellating, equal to autograd's Jacobian norm in each cell."""
    from geometry.tessellation import has_slope_norms

    win, tab, st, idle = _two_layer_3d_tab(qtbot, make_window, tmp_path, save_epochs=(0, 1))
    assert st.color_mode == "class" and not has_slope_norms(tab.tess3[-1])
    last, last_key = st.epoch_index, tab.tess3_key
    st.set_epoch_index(0)  # another checkpoint's cells, cached without their slopes
    qtbot.waitUntil(lambda: tab.tess3_key not in (None, last_key) and idle(), timeout=TIMEOUT)
    first_key = tab.tess3_key
    assert not has_slope_norms(tab.tess3[-1])
    st.set_epoch_index(last)
    qtbot.waitUntil(lambda: tab.tess3_key == last_key and idle(), timeout=TIMEOUT)
    before = tab.tess3[-1]
    st.set_color_mode("slope")
    qtbot.waitUntil(lambda: has_slope_norms(tab.tess3[-1]) and idle(), timeout=TIMEOUT)
    t = tab.tess3[-1]
    assert t.num_regions == before.num_regions and np.array_equal(t.vertices, before.vertices)
    net = win.bundle.run.network(st.epoch_index).double()
    x = torch.as_tensor(tab.state3d.slice3.to_input(t.centroids()))
    J = torch.autograd.functional.jacobian(lambda z: net(z).sum(0), x).permute(1, 0, 2)  # (R, C, D)
    np.testing.assert_allclose(t.slope_norm, torch.linalg.matrix_norm(J, ord=2).numpy(), rtol=1e-9)
    # in the slope colouring, a checkpoint whose cells are cached without slopes gets them too
    st.set_epoch_index(0)
    qtbot.waitUntil(lambda: tab.tess3_key == first_key and has_slope_norms(tab.tess3[-1]) and idle(), timeout=TIMEOUT)
    win.work.shutdown()


def test_render3d_cli(gl, tmp_path, capsys, monkeypatch):
    from app.cli.main import main

    run = _tiny_run(tmp_path)
    out = tmp_path / "v.png"
    assert main(["render3d", str(run), "--out", str(out), "--size", "320", "240", "--clip", "w", "0.1", "--color", "slope"]) == 0
    import imageio.v3 as iio

    img = iio.imread(out)
    assert img.shape[:2] == (240, 320) and len(np.unique(img[..., :3].reshape(-1, 3), axis=0)) > 30
    full = capsys.readouterr().out
    assert "cells at depth 1" in full
    assert main(["render3d", str(run), "--out", str(out), "--size", "320", "240", "--box-scale", "0.3"]) == 0
    cells = [int(o.split(" cells at depth")[0].split()[-1].replace(",", "")) for o in (full, capsys.readouterr().out)]
    assert 0 < cells[1] < cells[0]  # the 3D tab's 'box size': a smaller box, fewer cells
    assert main(["render3d", str(run), "--out", str(out), "--box-scale", "2"]) == 2
    assert "--box-scale must be between 0.01 and 1.0" in capsys.readouterr().err
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["render3d", str(run), "--out", str(out)]) == 2
    assert "xvfb-run" in capsys.readouterr().err


def _on_white(rgba: np.ndarray) -> np.ndarray:
    a = rgba[..., 3:4].astype(np.float64) / 255.0
    return np.round(rgba[..., :3] * a + 255.0 * (1.0 - a)).astype(int)


@pytest.mark.gui
def test_3d_png_export_is_the_screen_with_clipping_plane_path_and_marker(gl, qtbot, tmp_path, make_window):
    """The 3D PNG export draws the tab's whole frame -- clipping plane and its cap, traced path, inspected
    point, camera -- so it equals the screen's own render pixel for pixel (it used to leave out the plane)."""
    import imageio.v2 as imageio

    from app.qt.export_dialog import ExportDialog

    run = _tiny_run(tmp_path)
    win = _window_on(qtbot, make_window, run)
    tab, st, s3 = win.view3d, win.state, win.view3d.state3d
    win.tabs.setCurrentWidget(tab)
    idle = lambda: tab.scene is not None and not win.work.busy()  # noqa: E731
    qtbot.waitUntil(idle, timeout=TIMEOUT)
    w = st.window
    seg = st.add_path("segment", (w[0] * 0.8 + w[1] * 0.2, w[2] * 0.5 + w[3] * 0.5), (w[0] * 0.2 + w[1] * 0.8, w[2] * 0.3 + w[3] * 0.7))
    qtbot.waitUntil(lambda: win.path_results.get(seg.id) is not None and idle(), timeout=TIMEOUT)
    s3.update_clip(enabled=True, axis=2, position=0.1)
    qtbot.waitUntil(lambda: st.slice_choice.kind == "clip3d" and idle(), timeout=TIMEOUT)
    st.set_inspected((0.1, -0.2))
    qtbot.waitUntil(idle, timeout=TIMEOUT)
    d = tab.drawing()
    assert d.clip.enabled and d.cap is not None and len(d.paths) == 1 and d.marker is not None
    size = tuple(int(v) for v in tab.canvas.canvas.size)
    screen = _on_white(tab.canvas.render_image(size))
    dlg = ExportDialog(win.ctx, tab)
    qtbot.addWidget(dlg)
    dlg.kind.setCurrentIndex(dlg.kind.findData("view3d"))
    dlg.width_.setValue(size[0])
    dlg.height_.setValue(size[1])
    dlg.path.setText(str(tmp_path / "v3.png"))
    dlg.start_export()
    png = imageio.imread(tmp_path / "v3.png")[..., :3].astype(int)
    assert png.shape == screen.shape
    same = np.abs(png - screen).max(axis=2) <= 3
    assert same.mean() >= 0.995, f"only {same.mean():.2%} of the exported pixels are the screen's"
    # the marker and the clipping plane are in it: without each, the screen no longer matches the file
    tab.canvas.set_marker(None)
    assert (np.abs(png - _on_white(tab.canvas.render_image(size))).max(axis=2) > 30).sum() > 20
    tab.canvas.set_clip(False)
    assert (np.abs(png - _on_white(tab.canvas.render_image(size))).max(axis=2) > 30).mean() > 0.02
    win.work.shutdown()


@pytest.mark.gui
def test_the_3d_slice_combo_names_the_slice_shown(gl, qtbot, make_window, digits_run_path):
    """On a 64-input run the 3D tab's slice is PCA from the start (no change event): its combo showed its
    first entry, "Input space (3 inputs)", which that run cannot even have."""
    win = _window_on(qtbot, make_window, digits_run_path)
    c, s3 = win.view3d.controls, win.view3d.state3d
    assert s3.choice.kind == "pca" and c.kind.currentData() == "pca"
    s3.set_choice(Slice3Choice("random", seed=3))
    assert c.kind.currentData() == "random" and c.seed.value() == 3
    win.work.shutdown()
