"""A generator's manifold in the 3D tab and ``splineatlas render3d`` (#19 part 1): the drawn surface, samples,
marker and picks checked against the generator's own forward pass, the density each sampler draws from,
the inspector's output row, and the window's manifold mode. OpenGL tests skip without OpenGL."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from app.jobs import manifold3d
from app.model.view3d import View3DSettings, View3DState
from geometry.slices import Slice
from geometry.tessellation import tessellate

SHEET = Path(__file__).resolve().parents[1] / "assets" / "runs" / "sheet"
BLOBS = SHEET.parent / "blobs"
TIMEOUT = 60_000


@pytest.fixture(scope="module")
def sheet():
    """The bundled generator's last checkpoint and the exact tessellation of a latent window."""
    from geometry.networks.runs import open_run

    run = open_run(SHEET)
    net = run.network(len(run) - 1, at_level=False)
    return run, net, tessellate(net, Slice.input_plane(2), np.array([-1.0, 1.0, -0.8, 1.1]))


def _forward(net, Z) -> np.ndarray:
    with torch.no_grad():
        return net(torch.as_tensor(np.asarray(Z), dtype=torch.float64).reshape(-1, 2)).numpy()


def test_the_drawn_surface_and_samples_are_the_generator(sheet):
    run, net, t = sheet
    net = net.double()
    d = manifold3d.manifold_drawing(t, None, View3DSettings(sampler="polarity", rho=-2.0, samples=400))
    sc = d.scene
    # every drawn triangle is a tile's image: its centroid is the generator at the latent centroid
    owner = np.repeat(np.arange(t.num_regions), np.diff(t.offsets))
    tris = sc.triangles.astype(np.int64)
    latent_centroid = t.vertices[tris].mean(axis=1)
    np.testing.assert_allclose(sc.positions[tris].mean(axis=1), _forward(net, latent_centroid), atol=2e-5)
    assert (owner[tris] == owner[tris[:, :1]]).all()  # no triangle spans two tiles
    assert len(np.unique(owner[tris[:, 0]])) == t.num_regions  # and every tile is drawn
    # the samples are the generator at their latent points, inside the latent window
    np.testing.assert_allclose(sc.samples, _forward(net, sc.latent), atol=1e-9)
    assert sc.latent[:, 0].min() >= -1 and sc.latent[:, 1].max() <= 1.1
    # polarity ρ = -2 favours the dense parts: its density on the manifold is far from uniform; MaGNET's is
    assert sc.density.max() / sc.density.min() > 3
    mag = manifold3d.manifold_drawing(t, None, View3DSettings(sampler="magnet", samples=400)).scene
    np.testing.assert_allclose(mag.density, 1.0 / mag.counts["area"], rtol=1e-9)
    assert "max/min = 1 " in mag.summary()
    # the box holds the surface and the points; no samples when asked for none
    b = d.box.reshape(3, 2)
    assert (sc.positions >= b[:, 0] - 1e-6).all() and (sc.positions <= b[:, 1] + 1e-6).all()
    none = manifold3d.manifold_drawing(t, run.dataset.y_train, View3DSettings(sampler="none"))
    assert none.scene.samples is None and len(none.points[0]) == len(run.dataset.y_train)
    assert none.axis_labels == manifold3d.MANIFOLD_AXES and none.points_over_faces


def test_a_manifold_point_maps_back_to_its_latent_point(sheet):
    _, net, t = sheet
    sc = manifold3d.manifold_drawing(t, None, View3DSettings(sampler="prior", samples=50)).scene
    for z in sc.latent[:20]:
        x = manifold3d.manifold_point(sc, z)
        np.testing.assert_allclose(x, _forward(net.double(), z)[0], atol=1e-9)
        back = manifold3d.latent_at(sc, x)
        assert back is not None
        np.testing.assert_allclose(_forward(net.double(), back)[0], x, atol=1e-6)  # a preimage of the clicked point
    assert manifold3d.manifold_point(sc, (5.0, 5.0)) is None  # outside the tessellated window
    assert manifold3d.latent_at(sc, np.array([50.0, 50.0, 50.0])) is None  # off the manifold


def test_the_3d_settings_validate_the_sampler_and_travel_in_sessions():
    s = View3DState()
    with pytest.raises(ValueError, match="sampler"):
        s.update_settings(sampler="gan")
    with pytest.raises(ValueError, match="rho"):
        s.update_settings(rho=float("nan"))
    s.update_settings(sampler="polarity", rho=-0.5, samples=10**9)
    assert s.settings.samples == 200_000
    t = View3DState()
    t.apply_dict(s.to_dict())
    assert (t.settings.sampler, t.settings.rho) == ("polarity", -0.5)


def test_the_inspector_reports_a_generators_output_not_a_class(sheet):
    from app.jobs import open_run_bundle
    from app.jobs.inspect import inspect_point
    from app.render.report import report_document, report_text
    from geometry.tessellation import tessellate_all_depths

    _, net, _ = sheet
    b = open_run_bundle(SHEET)
    sl = Slice.input_plane(2)
    by_depth = list(tessellate_all_depths(b.network(len(b.run) - 1), sl, np.array([-1.0, 1.0, -1.0, 1.0])))
    r = inspect_point(b, len(b.run) - 1, sl, (0.3, -0.2), b.depth, by_depth)
    np.testing.assert_allclose(r.output, _forward(net.double(), [0.3, -0.2])[0], atol=1e-6)
    rf = int(by_depth[-1].region_of(np.array([[0.3, -0.2]]))[0])
    A = by_depth[-1].out_linear[rf]
    assert r.volume == pytest.approx(np.sqrt(np.linalg.det(A.T @ A)), rel=1e-9)
    assert report_text(r, b.class_names)["class"].startswith("G(z) = (")
    doc = report_document(r, b.class_names)
    assert doc["volume_change"] == pytest.approx(r.volume) and len(doc["output"]) == 3


# -- a generator of images -------------------------------------------------------------------------------
def test_an_image_grid_is_the_generators_pictures_at_the_grid_points():
    from app.render.images import display_images
    from geometry.generative import latent_grid
    from geometry.networks.runs import open_run

    run = open_run(BLOBS)
    assert run.output_shape == (1, 8, 8)
    net = run.network(len(run) - 1, at_level=False).double()
    Z = latent_grid((-1.0, 1.0, -0.5, 0.5), 3, 4)
    assert Z.shape == (3, 4, 2) and Z[0, 0, 1] > Z[-1, 0, 1] and Z[0, 0, 0] < Z[0, -1, 0]  # row 0 at the top, z1 to the right
    grid = manifold3d.image_grid(net, (-1.0, 1.0, -0.5, 0.5), run.output_shape, 3)
    X = _forward(net, grid.latent.reshape(-1, 2))
    np.testing.assert_allclose(grid.outputs.reshape(9, -1), X, atol=1e-9)
    pictures = display_images(X, run.output_shape).as_uint8()
    for k in range(9):
        i, j = divmod(k, 3)
        np.testing.assert_array_equal(grid.mosaic[i * 9 : i * 9 + 8, j * 9 : j * 9 + 8], pictures[k])
    # the decoder learned the data: each picture's brightest pixel is where its latent point says
    for z, img in zip(grid.latent.reshape(-1, 2), X.reshape(-1, 8, 8)):
        r, c = np.unravel_index(img.argmax(), img.shape)
        assert abs(c - (z[0] + 1) / 2 * 7) <= 1.5 and abs(r - (1 - z[1]) / 2 * 7) <= 1.5
    assert "z1 from -1 to 1 left to right" in grid.caption()


@pytest.mark.parametrize(
    "shape, task, message",
    [([1, 8, 7], "generate", "56 values, but the network has 64 outputs"), ([2, 4, 8], "generate", "2 channels"), ([1, 8, 8], "regress", "only a generator")],
)
def test_a_wrong_output_shape_is_refused_naming_the_field(tmp_path, shape, task, message):
    import json
    import shutil

    from geometry.errors import SplineAtlasError
    from geometry.networks.runs import open_run

    run = tmp_path / "r"
    shutil.copytree(BLOBS, run)
    manifest = json.loads((run / "run.json").read_text())
    manifest.update(output_shape=shape, task=task)
    (run / "run.json").write_text(json.dumps(manifest))
    with pytest.raises(SplineAtlasError, match=message) as err:
        open_run(run)
    assert "output_shape" in str(err.value)


def test_the_generate_figure_of_an_image_generator_shows_its_pictures(tmp_path, capsys):
    from app.cli.main import main

    out = tmp_path / "fig.png"
    assert main(["generate", str(BLOBS), "--n", "200", "--grid", "5", "--out", str(tmp_path / "s.npz"), "--figure", str(out)]) == 0
    import imageio.v3 as iio

    assert iio.imread(out).shape[1] > 1000
    assert np.load(tmp_path / "s.npz")["X"].shape == (200, 64)


@pytest.mark.gui
def test_the_window_shows_an_image_generators_pictures_in_the_3d_tab(qtbot, make_window):
    win = make_window(str(BLOBS))
    qtbot.waitUntil(lambda: win.bundle is not None and win.results.tiles is not None, timeout=TIMEOUT)
    tab = win.view3d
    win.tabs.setCurrentWidget(tab)
    qtbot.waitUntil(lambda: tab.image_grid is not None, timeout=TIMEOUT)
    assert tab.grid_view.isVisible() and not tab.grid_view.pixmap().isNull()
    assert tab.image_grid.window == tuple(win.results.tiles.window)  # the 2D view's latent window
    assert not tab.controls.show_group.isVisible() and "8x8 pictures" in tab.controls.summary.text()
    tab.state3d.update_settings(image_grid=4)
    qtbot.waitUntil(lambda: tab.image_grid.latent.shape[:2] == (4, 4), timeout=TIMEOUT)
    # the inspector shows the generated picture of the inspected latent point, not class bars
    win.state.set_inspected((0.5, 0.5))
    qtbot.waitUntil(lambda: win.inspector.report is not None, timeout=TIMEOUT)
    assert win.inspector.images.isVisible() and not win.inspector.bars.isVisible()
    assert win.inspector.img_x.image.shape == (8, 8)


# -- OpenGL --------------------------------------------------------------------------------------------------
@pytest.mark.gui
def test_the_window_shows_a_generators_manifold_in_the_3d_tab(gl, qtbot, make_window):
    win = make_window(str(SHEET))
    qtbot.waitUntil(lambda: win.bundle is not None and win.results.tiles is not None, timeout=TIMEOUT)
    tab = win.view3d
    win.tabs.setCurrentWidget(tab)
    # the view may tessellate again once the 3D tab is up (a new 2D view size): wait for the manifold of the tiles it shows now
    drawn_for_tiles = lambda: tab.manifold is not None and tab._manifold_key[0] == win.results.tiles.key and not win.work.busy()  # noqa: E731
    qtbot.waitUntil(drawn_for_tiles, timeout=TIMEOUT)
    assert tab.manifold_mode and not tab.controls.slice_group.isVisible() and tab.controls.generator_group.isVisible()
    tiles = win.results.tiles.by_depth[-1]
    assert tab.manifold.scene.counts["cells"] == tiles.num_regions  # the 2D view's own tiles, mapped
    assert tab.canvas.surface_points.visible and not tab.canvas.points.visible
    assert "magnet samples" in tab.controls.summary.text()
    # another sampler re-samples: the summary and histogram follow
    tab.state3d.update_settings(sampler="polarity", rho=-1.0, samples=300)
    qtbot.waitUntil(lambda: tab.manifold.scene.sampler == "polarity" and len(tab.manifold.scene.samples) == 300, timeout=TIMEOUT)
    assert "polarity (ρ = -1)" in tab.controls.summary.text()
    # a click on the manifold inspects its latent point in the 2D view; the marker sits on the manifold
    z = tab.manifold.scene.latent[7]
    x = manifold3d.manifold_point(tab.manifold.scene, z)
    tab._on_picked(*x)
    assert np.allclose(win.state.inspected, z, atol=1e-6)
    np.testing.assert_allclose(tab.drawing().marker, x, atol=1e-9)
    # a new epoch: the manifold follows the 2D view's new tiles
    key = tab._manifold_key
    win.state.set_epoch_index(0)

    def follows_the_new_tiles():
        tiles = win.results.tiles
        shown = tab._manifold_key
        return tiles is not None and shown is not None and shown != key and shown[0] == tiles.key and not win.work.busy()

    qtbot.waitUntil(follows_the_new_tiles, timeout=TIMEOUT)
    assert win.results.tiles.epoch_index == 0 and win.results.tiles_error is None
    assert tab.manifold.scene.counts["cells"] == win.results.tiles.by_depth[-1].num_regions


def test_render3d_draws_a_generators_manifold(gl, tmp_path, capsys):
    from app.cli.main import main

    out = tmp_path / "m.png"
    assert main(["render3d", str(SHEET), "--out", str(out), "--size", "320", "240", "--sampler", "prior", "--n", "200", "--window", "-1", "1", "-1", "1"]) == 0
    import imageio.v3 as iio

    img = iio.imread(out)
    assert img.shape[:2] == (240, 320) and len(np.unique(img[..., :3].reshape(-1, 3), axis=0)) > 30
    text = capsys.readouterr().out
    assert "latent tiles (full depth) mapped exactly" in text and "200 prior samples" in text
    assert main(["render3d", str(SHEET), "--out", str(out), "--window", "1", "0", "0", "1"]) == 2
    assert "--window" in capsys.readouterr().err


@pytest.mark.gui
def test_the_bundled_generator_session_restores_its_sampler(gl, qtbot, make_window):
    win = make_window(str(SHEET.parents[1] / "sessions" / "sheet-polarity.json"))
    qtbot.waitUntil(lambda: win.bundle is not None and win.results.tiles is not None, timeout=TIMEOUT)
    assert win.state.color_mode == "volume"
    tab = win.view3d
    win.tabs.setCurrentWidget(tab)
    qtbot.waitUntil(lambda: tab.manifold is not None, timeout=TIMEOUT)
    s = tab.manifold.scene
    assert (s.sampler, s.rho, len(s.samples)) == ("polarity", -1.0, 1500)
    assert tab.controls.sampler.currentData() == "polarity"


def test_a_3_latent_generators_cells_are_coloured_by_their_volume_change():
    """The 3D tab's 'volume' face colours: each cell's log sqrt(det(JᵀJ)), J the generator's Jacobian at
    the cell's centroid (autograd), at full depth and as the volume-weighted mean at partial depth."""
    from app.jobs import scene3d as jobs3d
    from app.render import palette
    from app.render.faces import log_volume_change
    from geometry.networks.network import Network
    from geometry.networks.spec import mlp_spec
    from geometry.tessellation import mesh3d, tessellate_all_depths

    torch.manual_seed(3)
    net = Network(mlp_spec([3, 6, 6, 4])).double().eval()
    box = np.array([-1.0, 1.0, -1.0, 1.0, -1.0, 1.0])
    t_by = list(tessellate_all_depths(net, Slice.input_plane(3), box))
    full = t_by[-1]
    J = torch.func.vmap(torch.func.jacrev(lambda x: net(x[None])[0]))(torch.as_tensor(full.centroids())).detach()
    sv = np.linalg.svd(J.numpy(), compute_uv=False)
    ok = sv.min(axis=1) > 1e-9  # cells whose map keeps all 3 dimensions (dead units flatten the others)
    assert ok.mean() > 0.5
    expected = np.where(ok, np.log(np.prod(np.where(ok[:, None], sv, 1.0), axis=1)), np.nan)
    got = log_volume_change(full)
    np.testing.assert_allclose(got[ok], expected[ok], rtol=1e-8)
    assert (got[~ok] < np.log(1e-9) + 1).all()  # flat maps: (nearly) zero volume
    expected = np.where(ok, expected, got)
    sc = jobs3d.scene_arrays(t_by, 2, "volume", View3DSettings(opacity=0.5), box)
    tri_cell = mesh3d.face_mesh(full, mesh3d.layer_face_mask(full, None), explode=0.0)
    fin = np.isfinite(expected)
    lo, hi = expected[fin].min(), expected[fin].max()
    face_cell = tri_cell.face_cell[np.searchsorted(tri_cell.faces, tri_cell.tri_face)]
    want = palette.colormap(palette.SLOPE_CMAP, (expected[face_cell] - lo) / (hi - lo))
    shown = fin[face_cell]
    np.testing.assert_allclose(sc.tri_colors[shown, :3], want[shown, :3], atol=1e-6)
    # at depth 1 a cell's colour is the volume-weighted mean over the full-depth cells inside it
    mean = mesh3d.descendant_mean(t_by, 1, expected)
    anc = mesh3d.ancestors(t_by, 1)
    r = int(np.bincount(anc[fin]).argmax())
    inside = (anc == r) & fin
    assert mean[r] == pytest.approx(np.average(expected[inside], weights=np.abs(full.volumes())[inside]))
