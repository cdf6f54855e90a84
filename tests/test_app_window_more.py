"""More of the real window, offscreen with pytest-qt: the Regions tab, the inspector's engine values, slice
choice in the data browser, the Training tab, cancelling, shortcuts, colour bar and power-diagram sites.

Every number the window shows is compared with an independent call of the engine (``geometry``)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt  # noqa: E402

pytestmark = pytest.mark.gui
TIMEOUT = 60_000
# the exact tiles of the digits CNN's default slice take minutes; a small region budget stops them at once
# (the window then shows the predicted classes and says why), which is all these digits tests need
DIGITS_BUDGET = 300


@pytest.fixture(scope="module")
def shared_cache():
    from geometry.cache import ResultCache

    return ResultCache(None)


def _window(qtbot, tmp_path, cache, run_path, **settings):
    from app.qt.main_window import MainWindow

    win = MainWindow(cache=cache, settings=QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(win)
    win.resize(1200, 800)
    win.show()
    if settings:
        win.state.update_settings(**settings)
    win.open_path(run_path)
    return win


@pytest.fixture
def digits_window(qtbot, tmp_path, digits_run_path, shared_cache):
    win = _window(qtbot, tmp_path, shared_cache, digits_run_path, max_regions=DIGITS_BUDGET)
    qtbot.waitUntil(lambda: win.bundle is not None and win.state.slice is not None and not win.work.busy(),
                    timeout=TIMEOUT)
    yield win
    win.work.shutdown()


@pytest.fixture
def spirals_window(qtbot, tmp_path, spirals_run_path, shared_cache):
    win = _window(qtbot, tmp_path, shared_cache, spirals_run_path)
    qtbot.waitUntil(lambda: win.tess is not None and not win.work.busy(), timeout=TIMEOUT)
    yield win
    win.work.shutdown()


def _click_view(qtbot, win, u, v):
    """A real mouse click on the 2D plot at slice coordinates (u, v)."""
    view = win.view2d
    pt = view.plot.mapFromScene(view.vb.mapViewToScene(QPointF(u, v)))
    qtbot.mouseClick(view.plot.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(pt.x(), pt.y()))


def _cli_sets(b, epoch_index, n, names, seed=0, overshoot=0.02):
    """The sampling of ``splineatlas region-stats`` (app/cli/region_cmds.py), written out again."""
    from geometry.deepfool import deepfool

    ds = b.dataset
    rng = np.random.default_rng(seed)
    pick = lambda X: np.asarray(X, np.float64)[np.sort(rng.choice(len(X), size=min(n, len(X)), replace=False))]  # noqa: E731
    Xtest = pick(ds.X_test)
    sets = {}
    for s in names:
        if s == "train":
            sets[s] = pick(ds.X_train)
        elif s == "test":
            sets[s] = Xtest
        else:
            sets[s] = deepfool(b.run.network(epoch_index), Xtest, overshoot=overshoot).perturbed
    pts = [np.asarray(ds.X_train, np.float64)] + list(sets.values())
    lo, hi = min(float(p.min()) for p in pts), max(float(p.max()) for p in pts)
    pad = 0.1 * (hi - lo)
    return sets, (lo - pad, hi + pad)


# -- 1. the Regions tab -------------------------------------------------------------------------------
def test_regions_tab_computes_the_region_statistics_of_the_current_checkpoint(qtbot, digits_window):
    from geometry.regions import region_stats

    win = digits_window
    panel, st, b = win.regions_panel, win.state, win.bundle
    assert win.tabs.tabText(win.tabs.indexOf(panel)) == "Regions"
    win.tabs.setCurrentWidget(panel)
    assert panel.compute_btn.isEnabled() and panel.result is None
    st.set_epoch_index(3)                          # the statistics are those of the checkpoint on the slider
    panel.n_spin.setValue(3)
    panel.active_check.setChecked(False)           # radii only: one LP per point
    qtbot.mouseClick(panel.compute_btn, Qt.MouseButton.LeftButton)
    assert win.work.busy("region-stats")
    qtbot.waitUntil(lambda: panel.result is not None and not win.work.busy("region-stats"), timeout=TIMEOUT)
    res = panel.result
    assert res.epoch_index == 3 and res.epoch == b.epochs[3] and res.sets == ("train", "test", "adversarial")
    sets, box = _cli_sets(b, 3, 3, res.sets)
    net = b.run.network(3)
    ref = region_stats(net, sets, box, active=False)
    np.testing.assert_allclose(res.box, box)
    np.testing.assert_array_equal(res.stats.set_names, ref.set_names)
    np.testing.assert_allclose(res.stats.radius, ref.radius, rtol=1e-7, equal_nan=True)
    np.testing.assert_allclose(res.stats.boundary, ref.boundary, rtol=1e-9)
    assert np.all(res.stats.active == -1)
    # what is drawn: one histogram per set (counts add up to the finite radii) and the summary table
    curves = panel.radius_plot.getPlotItem().listDataItems()
    assert [c.name().split(" ")[0] for c in curves] == list(res.sets)
    for c, s in zip(curves, res.sets):
        r = ref.radius[ref.set_names == s]
        assert int(np.sum(c.yData)) == int(np.isfinite(r).sum())
    for row, s in enumerate(res.sets):
        r = ref.radius[ref.set_names == s]
        r = r[np.isfinite(r)]
        assert panel.table.item(row, 0).text() == s and panel.table.item(row, 1).text() == "3"
        assert panel.table.item(row, 2).text() == f"{r.mean():.4g}"
        assert panel.table.item(row, 5).text() == "-"
    assert f"epoch {b.epochs[3]}" in panel.title.text()
    # DeepFool's points lie just past the boundary: their class differs from the test points'
    assert np.all(ref.predicted[ref.set_names == "adversarial"] != ref.predicted[ref.set_names == "test"])
    # with active bits (hundreds of LPs per point): one training point
    panel.set_checks["test"].setChecked(False)
    panel.set_checks["adversarial"].setChecked(False)
    panel.active_check.setChecked(True)
    panel.n_spin.setValue(1)
    panel.compute_btn.click()
    qtbot.waitUntil(lambda: panel.result is not res and not win.work.busy("region-stats"), timeout=TIMEOUT)
    res1 = panel.result
    sets1, box1 = _cli_sets(b, 3, 1, ("train",))
    ref1 = region_stats(net, sets1, box1, active=True)
    assert res1.sets == ("train",) and res1.stats.active.tolist() == ref1.active.tolist() and ref1.active[0] > 0
    assert panel.table.item(0, 5).text() == f"{float(ref1.active[0]):.1f}"
    assert win.last_error is None
    # a bad request is reported in the status bar (and a dialog), the window lives
    win._compute_region_stats({"n": 0, "sets": ("train",), "active": False})
    qtbot.waitUntil(lambda: win.last_error is not None, timeout=TIMEOUT)
    assert "at least one point" in win.status_label.text() and win.isVisible()


# -- 2. / 3b. the inspector against the engine ------------------------------------------------------------
def _region_box(b):
    """The box of app.jobs.region_geometry: the data's bounding box grown by half its size."""
    X, _ = b.points()
    lo, hi = X.min(0), X.max(0)
    pad = 0.5 * np.maximum(hi - lo, 1e-3)
    return lo - pad, hi + pad


def _inspect_by_click(qtbot, win, u):
    _click_view(qtbot, win, *u)
    qtbot.waitUntil(lambda: win.inspector.report is not None and not win.work.busy(), timeout=TIMEOUT)
    assert win.inspector.fields["qp"].text() != "computing…"
    return win.inspector.report


def _trace_g(net, x):
    """Tr G(x) = Σ_c p_c ||∇ₓ log p_c||² (Grementieri & Fioresi eq. 11), by plain autograd in float64."""
    net = net.to_dtype_device(torch.float64)
    xt = torch.tensor(x[None], dtype=torch.float64)
    J = torch.autograd.functional.jacobian(lambda z: torch.log_softmax(net(z[None])[0], 0), xt[0])
    p = torch.softmax(net(xt)[0], 0).detach()
    return float((p * (J ** 2).sum(1)).sum())


def test_inspector_qp_row_inside_and_outside_the_boundary(qtbot, spirals_window):
    """On the 2D spirals net a tile of the input-plane tessellation is a whole region, so the exact answer is
    known: the decision boundary crosses a tile iff its vertices disagree on the class, and then the QP distance
    is the distance from x to the boundary segments inside the tile."""
    from geometry.regions import hrep_at, min_region_perturbation

    win = spirals_window
    st, b = win.state, win.bundle
    assert win.inspector._form_rows.labelForField(win.inspector.fields["qp"]).text() == \
        "to boundary inside region (QP):"
    net = b.run.network(st.epoch_index)
    full = win.tess[-1]
    V, O = full.vertices, full.offsets
    with torch.no_grad():
        vcls = net(torch.as_tensor(V, dtype=torch.float32)).argmax(1).numpy()
    w = st.window
    best = {True: (0.0, -1), False: (0.0, -1)}
    for r in range(full.num_regions):
        v = V[O[r]:O[r + 1]]
        if (v[:, 0] <= w[0] + 1e-9).any() or (v[:, 0] >= w[1] - 1e-9).any() or \
                (v[:, 1] <= w[2] + 1e-9).any() or (v[:, 1] >= w[3] - 1e-9).any():
            continue    # clipped by the window: not the whole region
        area = 0.5 * abs(np.dot(v[:, 0], np.roll(v[:, 1], -1)) - np.dot(v[:, 1], np.roll(v[:, 0], -1)))
        mixed = len(set(vcls[O[r]:O[r + 1]].tolist())) > 1
        best[mixed] = max(best[mixed], (area, r))
    box = _region_box(b)
    seg = full.boundary_segments
    mids = seg.mean(1)
    for mixed in (True, False):
        r = best[mixed][1]
        assert r >= 0
        rep = _inspect_by_click(qtbot, win, V[O[r]:O[r + 1]].mean(0))
        x = np.asarray(rep.x)
        assert int(full.region_of(np.asarray(rep.u)[None])[0]) == r       # the click landed in that tile
        ref = min_region_perturbation(hrep_at(net, x), x, box=box)          # every row (the app uses active bits)
        text = win.inspector.fields["qp"].text()
        assert ref.exists == mixed
        if mixed:
            assert text.startswith(f"{ref.distance:.4g}") and b.class_names[ref.target] in text
            inside = seg[full.region_of(mids) == r]
            a, d = inside[:, 0], inside[:, 1] - inside[:, 0]
            t = np.clip(np.einsum("ij,ij->i", x - a, d) / np.einsum("ij,ij->i", d, d), 0, 1)
            exact = np.linalg.norm(a + t[:, None] * d - x, axis=1).min()
            np.testing.assert_allclose(ref.distance, exact, rtol=1e-5, atol=1e-7)
        else:
            assert text == "none inside region"
        # DeepFool's distance sits beside it, from the same point
        from geometry.deepfool import deepfool

        df = deepfool(net, x[None])
        np.testing.assert_allclose(rep.deepfool_distance, df.norms[0], rtol=1e-9)
        assert win.inspector.fields["deepfool"].text() == f"{df.norms[0]:.4g}"


def test_inspector_engine_values_on_the_digits_cnn(qtbot, digits_window):
    """Tr G, DeepFool and the in-region QP of a clicked point of the 64-D CNN's slice, against direct calls."""
    from geometry.deepfool import deepfool
    from geometry.local_data_matrix import local_data_matrix
    from geometry.regions import hrep_at, min_region_perturbation

    win = digits_window
    st, b = win.state, win.bundle
    w = st.window
    rep = _inspect_by_click(qtbot, win, (0.6 * w[0] + 0.4 * w[1], 0.45 * w[2] + 0.55 * w[3]))
    x = np.asarray(rep.x)
    np.testing.assert_allclose(x, st.slice.to_input(np.asarray(rep.u)[None])[0])
    assert x.shape == (64,)
    net = b.run.network(st.epoch_index)
    np.testing.assert_allclose(rep.trace_g, local_data_matrix(net, x[None]).trace[0], rtol=1e-9)
    np.testing.assert_allclose(rep.trace_g, _trace_g(net, x), rtol=1e-6)
    assert win.inspector.fields["trace"].text() == f"{rep.trace_g:.4g}"
    df = deepfool(net, x[None])
    assert bool(df.converged[0])
    np.testing.assert_allclose(rep.deepfool_distance, df.norms[0], rtol=1e-9)
    with torch.no_grad():
        c0, c1 = net.to_dtype_device(torch.float64)(torch.as_tensor(np.stack([x, df.perturbed[0]]))).argmax(1).tolist()
    assert c0 != c1 and c0 == rep.predicted       # x + r(x) is past the boundary
    ref = min_region_perturbation(hrep_at(net, x), x, box=_region_box(b))
    text = win.inspector.fields["qp"].text()
    assert text == "none inside region" if not ref.exists else text.startswith(f"{ref.distance:.4g}")
