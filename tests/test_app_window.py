"""The real window, driven offscreen with pytest-qt: open the demo run, scrub, inspect, trace, sessions, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")
from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402

pytestmark = pytest.mark.gui
TIMEOUT = 60_000


@pytest.fixture(scope="module")
def shared_cache():
    """One in-memory result cache for the module: later windows reuse the demo's first tessellation."""
    from geometry.cache import ResultCache

    return ResultCache(None)


@pytest.fixture
def window(qtbot, make_window, spirals_run_path, shared_cache):
    win = make_window(spirals_run_path, cache=shared_cache, size=(1200, 800))
    qtbot.waitUntil(lambda: win.tess is not None and not win.work.busy(), timeout=TIMEOUT)
    return win


def _click_view(qtbot, win, u, v):
    """A real mouse click on the 2D plot at slice coordinates (u, v)."""
    view = win.view2d
    scene_pt = view.vb.mapViewToScene(QPointF(u, v))
    pt = view.plot.mapFromScene(scene_pt)
    qtbot.mouseClick(view.plot.viewport(), Qt.MouseButton.LeftButton, pos=QPoint(pt.x(), pt.y()))


def test_open_scrub_inspect_and_trace(qtbot, window):
    win = window
    st, b = win.state, win.bundle
    assert b.input_dim == 2 and st.n_epochs == len(b.run) and st.depth == b.depth
    assert win.recent.paths()[0] == str(b.run.source.resolve()) or win.recent.paths()[0].endswith("spirals")
    full = win.tess[-1]
    assert win.view2d.tiles.num_tiles == len(full.class_cell_class)  # class mode fills the exact argmax cells
    # layer slider: the edges shown are those of the chosen depth; no recomputation
    key = win.tess_key
    win.controls.layer.setValue(1)
    assert st.depth == 1 and win.tess_key == key
    qtbot.keyClick(win, Qt.Key.Key_Up)
    assert st.depth == 2
    # epoch slider: a new exact tessellation for that checkpoint, then back (instant, from the cache)
    win.controls.epoch.setValue(3)
    assert st.epoch_index == 3
    qtbot.waitUntil(lambda: win.tess_key is not None and win.tess_key != key, timeout=TIMEOUT)
    assert win.tess[-1].num_regions != full.num_regions
    win.controls.epoch.setValue(st.n_epochs - 1)
    assert win.tess_key == key and not win.work.busy("tessellation")  # cache hit, drawn synchronously
    qtbot.keyClick(win, Qt.Key.Key_Left)
    assert st.epoch_index == st.n_epochs - 2
    qtbot.keyClick(win, Qt.Key.Key_Right)
    qtbot.waitUntil(lambda: win.tess_key == key, timeout=TIMEOUT)
    # space plays from the first epoch (each step waits for its tiles), space again pauses
    win.controls.speed.setValue(30)
    qtbot.keyClick(win, Qt.Key.Key_Space)
    assert st.playing and st.epoch_index == 0
    qtbot.waitUntil(lambda: st.epoch_index >= 2, timeout=TIMEOUT)
    qtbot.keyClick(win, Qt.Key.Key_Space)
    assert not st.playing
    stopped = st.epoch_index
    qtbot.wait(200)
    assert st.epoch_index == stopped
    win.controls.epoch.setValue(st.n_epochs - 1)
    qtbot.waitUntil(lambda: win.tess_key == key, timeout=TIMEOUT)
    # zooming in re-tessellates exactly the visible window (debounced)
    win.view2d.vb.scaleBy((0.25, 0.25))
    qtbot.waitUntil(lambda: win.tess_key != key and not win.work.busy("tessellation"), timeout=TIMEOUT)
    dom = win.tess[-1].domain
    np.testing.assert_allclose([dom[:, 0].min(), dom[:, 0].max(), dom[:, 1].min(), dom[:, 1].max()], win.view2d.visible_window(), rtol=1e-9, atol=1e-9)
    assert st.window == pytest.approx(win.view2d.visible_window())
    st.reset_window()
    qtbot.waitUntil(lambda: win.tess_key == key, timeout=TIMEOUT)

    # click a point: the inspector's values agree with independent engine calls
    u = np.array([0.31, -0.23])
    _click_view(qtbot, win, *u)
    qtbot.waitUntil(lambda: win.inspector.report is not None and not win.work.busy("inspect"), timeout=TIMEOUT)
    r = win.inspector.report
    np.testing.assert_allclose(r.u, u, atol=0.02)  # the click landed where we aimed (pixel rounding)
    x = torch.tensor(np.asarray(r.u)[None], dtype=torch.float64)
    net = b.run.network(st.epoch_index).to_dtype_device(torch.float64)
    p = torch.softmax(net(x), 1)[0].detach().numpy()
    np.testing.assert_allclose(r.probs, p, atol=1e-5)
    assert r.predicted == int(p.argmax())
    J = torch.autograd.functional.jacobian(lambda z: net(z[None])[0], x[0])
    np.testing.assert_allclose(r.slope_norm, torch.linalg.matrix_norm(J, 2).item(), rtol=1e-6)
    t = win.tess[st.depth - 1]
    assert r.region == int(t.region_of(np.asarray(r.u)[None])[0]) and r.region_count == t.num_regions
    pats = net.trace(x).patterns
    assert r.active == tuple((int(q.sum()), q.shape[1]) for q in pats)
    assert win.inspector.fields["region"].text() == f"#{r.region} of {t.num_regions}"
    from geometry.power_diagram import centroids

    mu = centroids(net, np.asarray(r.u)[None], [st.depth - 1]).centroids[0, 0]
    np.testing.assert_allclose(r.centroid, mu, rtol=1e-6, atol=1e-9)

    # trace a straight segment by two clicks; it is drawn and listed with probabilities along it
    win.pick_actions["segment"].trigger()
    assert st.pick_mode == "segment"
    _click_view(qtbot, win, -0.5, -0.5)
    qtbot.keyClick(win, Qt.Key.Key_Escape)  # Esc drops the half-made pick
    assert st.picks == () and st.paths == ()
    _click_view(qtbot, win, -0.5, -0.5)
    _click_view(qtbot, win, 0.5, 0.4)
    assert len(st.paths) == 1
    pid = st.paths[0].id
    qtbot.waitUntil(lambda: win.path_results.get(pid) is not None, timeout=TIMEOUT)
    res = win.path_results[pid]
    with torch.no_grad():
        p_path = torch.softmax(net(torch.as_tensor(res.X)), 1).numpy()
    np.testing.assert_allclose(res.probs, p_path, atol=1e-6)
    np.testing.assert_allclose(res.u[[0, -1]], [[-0.5, -0.5], [0.5, 0.4]], atol=0.02)
    assert win.paths_panel.list.count() == 1 and len(win.view2d._path_items) >= 3
    if res.marks is not None:  # exact crossings of the segment: the tile changes across every one of them
        u0, u1 = res.u[0], res.u[-1]
        tc = np.sort(np.linalg.norm(res.marks - u0, axis=1) / np.linalg.norm(u1 - u0))
        edges = np.concatenate([[0.0], tc, [1.0]])
        mids = u0 + ((edges[:-1] + edges[1:]) / 2)[:, None] * (u1 - u0)
        reg = win.tess[-1].region_of(mids)
        assert len(tc) > 10 and np.all(reg[1:] != reg[:-1])
    win.paths_panel.list.item(0).setCheckState(Qt.CheckState.Unchecked)  # hide it
    assert st.paths[0].visible is False and win.view2d._path_items == []
    win.paths_panel.list.setCurrentRow(0)
    win.paths_panel.delete_btn.click()
    assert st.paths == () and win.paths_panel.list.count() == 0


def test_session_save_and_reload(qtbot, window, tmp_path):
    win = window
    st = win.state
    st.set_depth(2)
    st.set_color_mode("hash")
    st.set_window((-0.6, 0.4, -0.5, 0.5))
    qtbot.waitUntil(lambda: win.tess is not None and not win.work.busy("tessellation"), timeout=TIMEOUT)
    st.add_path("segment", (-0.4, -0.4), (0.3, 0.3))
    saved = st.to_session()
    f = tmp_path / "session.json"
    win.save_session(f)
    st.set_depth(3)
    st.set_color_mode("class")
    st.clear_paths()
    win.open_path(f)  # sessions are recognised by content
    qtbot.waitUntil(lambda: len(st.paths) == 1 and st.depth == 2, timeout=TIMEOUT)
    assert st.to_session()["window"] == pytest.approx(saved["window"], abs=1e-9)
    assert st.color_mode == "hash" and win.color_combo.currentData() == "hash"
    assert [(p.kind, p.start, p.end) for p in st.paths] == [("segment", (-0.4, -0.4), (0.3, 0.3))]
    qtbot.waitUntil(lambda: win.tess is not None and not win.work.busy(), timeout=TIMEOUT)


def test_a_corrupt_file_shows_an_error_and_the_window_lives(qtbot, window, tmp_path):
    win = window
    bad = tmp_path / "broken.pt"
    bad.write_bytes(b"\x00this is not a checkpoint" * 10)
    from PySide6.QtCore import QMimeData, QUrl
    from PySide6.QtGui import QDropEvent

    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(bad))])
    win.dropEvent(QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier))  # dropped on the window
    qtbot.waitUntil(lambda: win.last_error is not None, timeout=TIMEOUT)
    assert "broken.pt" in win.last_error and win.isVisible()
    assert win.error_box.isVisible() and "broken.pt" in win.status_label.text()
    assert win.bundle is not None and win.tess is not None  # the open run is untouched
    # File > Export is created with the first registered exporter (only it gets Ctrl+E); entries add to it
    first = not win._exporters
    seen = []
    act = win.register_exporter("Test figure…", lambda w: seen.append(w))
    assert [a.text() for a in win.file_menu.actions()].count("&Export") == 1
    assert act in win.export_menu.actions()
    assert (act.shortcut().toString() == "Ctrl+E") == first
    act.trigger()
    assert seen == [win]
    win.register_exporter("Broken…", lambda w: 1 / 0).trigger()  # an exporter's bug becomes a message
    assert "division by zero" in win.last_error and win.isVisible()
    # a tessellation over budget is explained in the status bar; the prediction preview stays
    win.state.update_settings(max_regions=1000)
    qtbot.waitUntil(lambda: win.tess is None and not win.work.busy(), timeout=TIMEOUT)
    assert "1000" in win.status_label.text() or "budget" in win.status_label.text().lower()
    assert win.view2d.preview.isVisible() and win.isVisible()
    bad_session = tmp_path / "s.json"
    bad_session.write_text('{"format": "splineatlas-session", "color_mode": "rainbow"}')
    win.open_path(bad_session)
    assert "rainbow" in win.last_error and win.isVisible()
