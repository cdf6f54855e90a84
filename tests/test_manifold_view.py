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


# -- OpenGL --------------------------------------------------------------------------------------------------
@pytest.fixture
def gl(qapp):
    from app.qt.view3d import opengl_available

    ok, why = opengl_available()
    if not ok:
        pytest.skip(f"no OpenGL on this Qt platform: {why}")
    return qapp


@pytest.mark.gui
def test_the_window_shows_a_generators_manifold_in_the_3d_tab(gl, qtbot, make_window):
    win = make_window(str(SHEET))
    qtbot.waitUntil(lambda: win.bundle is not None and win.results.tiles is not None, timeout=TIMEOUT)
    tab = win.view3d
    win.tabs.setCurrentWidget(tab)
    qtbot.waitUntil(lambda: tab.manifold is not None, timeout=TIMEOUT)
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
    qtbot.waitUntil(lambda: tab._manifold_key != key and not win.work.busy(), timeout=TIMEOUT)
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
