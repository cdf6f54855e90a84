"""The window on a laptop screen, epochs typed as epochs, paths that survive a slice change with undo, and
numbers out of the inspector (issue #15's items 3, 8, 9, the pause icon and the inspector's Copy)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import DEMO_RUNS

pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("one_torch_thread")]
TIMEOUT = 120_000


def _settled(win) -> bool:
    tiles, st = win.results.tiles, win.state
    return not win.work.busy() and not win.controller.tess_timer.isActive() and tiles is not None and tiles.shows(st.epoch_index, st.window)


@pytest.mark.parametrize("size", [(1280, 720), (1366, 768)])
def test_the_window_fits_a_laptop_screen(qtbot, make_window, spirals_run_path, size):
    """Its minimum size fits the screen (it was 916 px tall: the 3D controls set it), and at that size the
    epoch and layer controls and the status bar's Cancel lie inside the window."""
    win = make_window(spirals_run_path, size=size)
    qtbot.waitUntil(lambda: _settled(win), timeout=TIMEOUT)
    hint = win.minimumSizeHint()
    assert hint.width() <= size[0] and hint.height() <= size[1] - 40  # room for a title bar
    assert win.height() <= size[1] and win.width() <= size[0]
    inside = win.rect()
    for w in (win.controls_dock, win.controls.epoch, win.statusBar()):
        top_left = w.mapTo(win, w.rect().topLeft())
        assert inside.contains(top_left) and inside.contains(w.mapTo(win, w.rect().bottomRight())), w


def test_the_epoch_box_holds_epochs_and_jumps_to_the_nearest_checkpoint(qtbot, make_window, spirals_run_path):
    win = make_window(spirals_run_path)
    qtbot.waitUntil(lambda: _settled(win), timeout=TIMEOUT)
    epochs = np.asarray(win.bundle.epochs)
    box, st = win.controls.epoch_box, win.state
    assert box.value() == epochs[st.epoch_index]  # the box shows the epoch, not the index
    target = int((epochs[3] + epochs[4]) // 2) + 1  # between two checkpoints, nearer the later
    box.setValue(target)
    want = int(np.argmin(np.abs(epochs - target)))
    assert st.epoch_index == want and box.value() == epochs[want]
    box.setValue(int(epochs[-1]) + 10_000)  # past the last: the range clamps to it
    assert st.epoch_index == len(epochs) - 1
    assert not win.controls.play.icon().isNull()  # an icon, not a glyph the font may lack


def test_paths_survive_a_slice_change_and_ctrl_z_undoes_path_edits(qtbot, make_window, digits_run_path):
    from app.jobs.slicing import make_slice
    from app.model.state import SliceChoice

    win = make_window(digits_run_path)
    qtbot.waitUntil(lambda: _settled(win), timeout=TIMEOUT)
    st, b = win.state, win.bundle
    w = st.window
    seg = st.add_path("segment", (w[0] * 0.6 + w[1] * 0.4, w[2] * 0.5 + w[3] * 0.5), (w[0] * 0.3 + w[1] * 0.7, w[2] * 0.4 + w[3] * 0.6))
    qtbot.waitUntil(lambda: win.path_results.get(seg.id) is not None and not win.work.busy(), timeout=TIMEOUT)
    X_before = win.path_results[seg.id].X.copy()
    # another slice: the path stays, seen in the new plane (its input-space points unchanged, not traced again)
    choice = SliceChoice("points", (10, 20, 30))
    sl, home = make_slice(b, choice)
    st.set_slice(sl, choice, home)
    qtbot.waitUntil(lambda: _settled(win), timeout=TIMEOUT)
    assert [p.id for p in st.paths] == [seg.id]
    got = win.path_results[seg.id]
    np.testing.assert_array_equal(got.X, X_before)
    np.testing.assert_allclose(got.u, sl.project(X_before), atol=1e-12)
    np.testing.assert_allclose(st.paths[0].start, sl.project(np.asarray(seg.x_start)[None])[0], atol=1e-12)
    # delete it, then Ctrl+Z brings it back with its traced result
    st.remove_path(seg.id)
    assert st.paths == ()
    assert st.undo() and [p.id for p in st.paths] == [seg.id]
    qtbot.waitUntil(lambda: win.path_results.get(seg.id) is not None, timeout=TIMEOUT)
    np.testing.assert_array_equal(win.path_results[seg.id].X, X_before)
    # a pending pick is undone first
    st.set_pick_mode("segment")
    st.add_pick(0.0, 0.0)
    assert st.undo() and st.picks == () and [p.id for p in st.paths] == [seg.id]


def test_undo_is_the_edit_menus_ctrl_z(qtbot, make_window, spirals_run_path):
    from PySide6.QtGui import QKeySequence

    win = make_window(spirals_run_path)
    qtbot.waitUntil(lambda: _settled(win), timeout=TIMEOUT)
    acts = [a for m in win.menuBar().actions() for a in m.menu().actions() if a.shortcut() == QKeySequence(QKeySequence.StandardKey.Undo)]
    assert len(acts) == 1
    st = win.state
    p = st.add_path("segment", (0.1, 0.1), (0.2, 0.3))
    st.clear_paths()
    acts[0].trigger()
    assert [q.id for q in st.paths] == [p.id]
    st.set_slice(st.slice, st.slice_choice, st.home_window)  # even the same slice keeps the path
    assert [q.id for q in st.paths] == [p.id]


def test_the_inspectors_copy_is_the_cli_report(qtbot, make_window, spirals_run_path, tmp_path):
    from PySide6.QtWidgets import QApplication

    from app.cli.main import main

    win = make_window(spirals_run_path)
    qtbot.waitUntil(lambda: _settled(win), timeout=TIMEOUT)
    st = win.state
    w = st.window
    u = (0.45 * w[0] + 0.55 * w[1], 0.52 * w[2] + 0.48 * w[3])
    st.set_inspected(u)
    qtbot.waitUntil(lambda: win.results.region_info is not None and win.inspector.region_info is not None and not win.work.busy(), timeout=TIMEOUT)
    win.inspector.copy_btn.click()
    copied = json.loads(QApplication.clipboard().text())
    out = tmp_path / "i.json"
    assert main(["inspect", str(DEMO_RUNS / "spirals"), f"--point={u[0]!r},{u[1]!r}", "--window", *map(repr, w), "--json", str(out)]) == 0
    cli = json.loads(out.read_text())
    assert copied["rows"] == cli["rows"] and copied["x"] == cli["x"] and copied["region"] == cli["region"]


def test_the_legend_can_be_hidden_and_the_export_follows(qtbot, make_window, spirals_run_path):
    from app.qt.export_dialog import ExportDialog

    win = make_window(spirals_run_path)
    qtbot.waitUntil(lambda: _settled(win), timeout=TIMEOUT)
    assert win.view2d.legend.isVisible()
    win.toggle_actions["show_legend"].trigger()
    assert not win.state.settings.show_legend and not win.view2d.legend.isVisible()
    dlg = ExportDialog(win.ctx, win.view3d, win)
    qtbot.addWidget(dlg)
    assert not dlg.legend.isChecked()  # the exported figure shows what the view shows
    assert win.state.to_session()["settings"]["show_legend"] is False


def test_showing_sites_says_how_many_lie_in_the_view(qtbot, make_window, spirals_run_path):
    """Sites are centroids projected into the slice and mostly lie outside the window: the status line says
    how many are in view (counted here from the sites themselves), so one visible site is not a mystery."""
    win = make_window(spirals_run_path)
    qtbot.waitUntil(lambda: _settled(win), timeout=TIMEOUT)
    st = win.state
    win.toggle_actions["show_sites"].trigger()
    key = (win.results.tiles.key, st.depth)
    qtbot.waitUntil(lambda: key in win.results.sites and not win.work.busy(), timeout=TIMEOUT)
    s = win.results.sites[key]
    u0, u1, v0, v1 = st.window
    n = int(((s[:, 0] >= u0) & (s[:, 0] <= u1) & (s[:, 1] >= v0) & (s[:, 1] <= v1)).sum())
    assert f"{n:,} of {len(s):,} power-diagram sites of layer {st.depth} lie in the view" in win.status_label.text()


def test_a_normal_path_that_cannot_move_says_why(spirals_run_path):
    """On a 2-input, 3-class network G(x) has full rank 2 = D, so a normal path (which moves in G's kernel)
    has nowhere to go: its summary says so instead of showing empty plots (checked against G's rank)."""
    from app import jobs
    from app.jobs.paths import trace_paths
    from geometry.foliation.local_data_matrix import local_data_matrix

    b = jobs.open_run_bundle(spirals_run_path)
    x = np.array([[0.06, 0.04]])
    assert int(local_data_matrix(b.network(len(b.run) - 1), x).rank[0]) == 2
    t = trace_paths(b, -1, "normal", x, seeds=[1])[0]
    assert len(t.steps) == 1 and "no normal direction here: G(x) has full rank 2 = D" in t.summary


def test_the_slope_colour_bar_label_is_beside_the_bar_not_on_it(qtbot, make_window, spirals_run_path):
    from PySide6.QtWidgets import QGraphicsTextItem

    win = make_window(spirals_run_path, size=(1366, 768))
    qtbot.waitUntil(lambda: _settled(win), timeout=TIMEOUT)
    win.state.set_color_mode("slope")
    qtbot.waitUntil(lambda: _settled(win) and win.view2d.colorbar.isVisible(), timeout=TIMEOUT)
    qtbot.wait(50)
    bar = win.view2d.colorbar.bar.sceneBoundingRect()
    labels = [it for it in win.view2d.plot.scene().items() if isinstance(it, QGraphicsTextItem) and "A_ω" in it.toPlainText() and it.isVisible()]
    assert labels, "the colour bar has no visible ‖A_ω‖₂ label"
    for it in labels:
        assert not it.sceneBoundingRect().intersects(bar), (it.sceneBoundingRect(), bar)


def test_a_paths_diagnostics_export_as_csv(qtbot, make_window, spirals_run_path, tmp_path, monkeypatch):
    """The Paths tab's Export CSV: a row per point of the selected path, the numbers its plots show."""
    import csv

    from PySide6.QtWidgets import QFileDialog

    win = make_window(spirals_run_path)
    qtbot.waitUntil(lambda: _settled(win), timeout=TIMEOUT)
    panel = win.paths_panel
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *a, **k: (str(tmp_path / "p.csv"), ""))
    panel.csv_btn.click()  # nothing traced yet: one message, no file
    assert not (tmp_path / "p.csv").exists() and "select a traced path" in win.status_label.text()
    w = win.state.window
    seg = win.state.add_path("segment", (w[0] * 0.7 + w[1] * 0.3, w[2] * 0.5 + w[3] * 0.5), (w[0] * 0.3 + w[1] * 0.7, w[2] * 0.4 + w[3] * 0.6))
    qtbot.waitUntil(lambda: win.path_results.get(seg.id) is not None and not win.work.busy(), timeout=TIMEOUT)
    res = win.path_results[seg.id]
    panel.csv_btn.click()
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert len(rows) == len(res.steps)
    np.testing.assert_allclose([float(r["u"]) for r in rows], res.u[:, 0], rtol=1e-8, atol=1e-12)
    names = win.bundle.class_names
    np.testing.assert_allclose([[float(r[f"p_{n}"]) for n in names] for r in rows], res.probs, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose([float(r["distance_to_target"] or "nan") for r in rows], res.distance, rtol=1e-8, equal_nan=True)


def test_the_layer_list_is_the_rows_info_prints(qtbot, make_window, digits_run_path, capsys):
    """Help > Network layers shows what was imported: the rows of `splineatlas info`'s layer table, with
    output shapes, parameters and which layers are piecewise-linear."""
    from app.cli.main import main
    from app.qt.dialogs import LayerList
    from app.render.report import layer_lines

    win = make_window(digits_run_path)
    qtbot.waitUntil(lambda: win.bundle is not None, timeout=TIMEOUT)
    dlg = LayerList(win, win.bundle, win.state.epoch_index)
    qtbot.addWidget(dlg)
    shown = [[dlg.table.item(r, c).text() for c in range(dlg.table.columnCount())] for r in range(dlg.table.rowCount())]
    assert main(["info", str(digits_run_path), "--no-accuracy"]) == 0
    printed = capsys.readouterr().out.split("layers:\n", 1)[1].splitlines()
    assert [line.strip() for line in layer_lines(dlg.rows)] == [line.strip() for line in printed[: len(dlg.rows) + 1]]
    assert shown[0][1:] == ["conv2d", "8×8×8", "80", "affine"] and shown[1][4] == "piecewise-linear"
    assert sum(int(r[3].replace(",", "")) for r in shown) == win.bundle.network(0).num_parameters()
