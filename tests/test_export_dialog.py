"""File > Export… dialog (pytest-qt, offscreen): the GUI export writes the same picture as the CLI,
runs in the worker pool with a progress dialog, and Cancel leaves no file."""

from __future__ import annotations

from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from geometry.cache import ResultCache
from geometry.networks.datasets import builtin_dataset
from geometry.networks.spec import mlp_spec
from geometry.networks.training import train_run

pytest.importorskip("PySide6")


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("gui-export")
    ds = builtin_dataset("spirals", n=150, seed=0, arms=3)
    train_run(ds, mlp_spec([2, 12, 12, 3]), root / "spirals", epochs=4, save_epochs=[0, 2, 4], lr=1e-2, batch_size=32, seed=0)
    return root / "spirals"


@pytest.fixture
def fake_window(qtbot, run_path):
    """What the export dialog is handed: a ViewContext (state, results, work, cache, theme) of an open run,
    with the status lines it reports collected in ``statuses``."""
    from PySide6.QtWidgets import QWidget

    from app import jobs
    from app.model.results import Results
    from app.model.state import ViewerState
    from app.qt.context import ViewContext
    from app.qt.theme import Theme
    from app.qt.workers import WorkManager

    owner = QWidget()
    qtbot.addWidget(owner)
    results = Results()
    results.set_bundle(jobs.open_run_bundle(run_path))
    b = results.bundle
    state = ViewerState()
    state.set_run(str(run_path), len(b.run), b.depth, epoch_index=1)
    choice = jobs.default_slice_choice(b)
    sl, home = jobs.make_slice(b, choice)
    state.set_slice(sl, choice, home)
    state.set_depth(2)
    state.set_color_mode("slope")
    ctx = ViewContext(state, results, WorkManager(owner), ResultCache(None), Theme(dark=False))
    ctx.statuses = []
    results.events.status.connect(lambda st: ctx.statuses.append(st[0]))
    ctx.bundle = b
    yield ctx
    ctx.work.shutdown()


def test_gui_figure_equals_cli_figure(qtbot, fake_window, run_path, tmp_path):
    from app.cli.main import main
    from app.qt.export_dialog import ExportDialog

    from app.render.style import fit_dpi

    dlg = ExportDialog(fake_window)
    qtbot.addWidget(dlg)
    assert dlg.mode.currentData() == "slope"  # defaults follow the window
    dlg.width_.setValue(800)
    dlg.height_.setValue(600)
    assert dlg.dpi.value() == fit_dpi(800, 600) == 125  # the dpi follows the size (6.4 x 4.8 in) ...
    dlg.width_.setValue(500)
    dlg.height_.setValue(400)
    assert dlg.dpi.value() == fit_dpi(500, 400) == 78
    dlg.dpi.setValue(100)
    dlg.width_.setValue(501)
    dlg.width_.setValue(500)
    assert dlg.dpi.value() == 100  # ... until the user sets one
    dlg.path.setText(str(tmp_path / "gui.png"))
    dlg.start_export()
    qtbot.waitUntil(lambda: dlg.result_path is not None or dlg.error is not None, timeout=60000)
    assert dlg.error is None and (tmp_path / "gui.png").exists()
    assert any("Exported" in s for s in fake_window.statuses)
    w = fake_window.state.window
    assert (
        main(
            [
                "export-figure",
                str(run_path),
                "--epoch",
                "2",
                "--layer",
                "2",
                "--color",
                "slope",
                "--window",
                *map(str, w),
                "--size",
                "500",
                "400",
                "--dpi",
                "100",
                "--out",
                str(tmp_path / "cli.png"),
            ]
        )
        == 0
    )
    a, b = imageio.imread(tmp_path / "gui.png"), imageio.imread(tmp_path / "cli.png")
    assert a.shape[:2] == (400, 500)
    assert np.array_equal(a, b)


def test_cancel_leaves_no_file(qtbot, fake_window, tmp_path):
    from app.qt.export_dialog import ExportDialog

    dlg = ExportDialog(fake_window)
    qtbot.addWidget(dlg)
    dlg.kind.setCurrentIndex(dlg.kind.findData("epochs"))
    assert dlg.path.text().endswith(".mp4") and dlg.fps.isEnabled()
    dlg.width_.setValue(320)
    dlg.height_.setValue(240)
    dlg.dpi.setValue(60)
    dlg.path.setText(str(tmp_path / "sweep.mp4"))
    dlg.start_export()
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QPushButton

    button = dlg.progress_dialog.findChild(QPushButton)  # the user presses Cancel
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dlg.error is not None, timeout=5000)
    fake_window.work.wait(60000)
    assert "cancelled" in dlg.note.text()
    assert list(tmp_path.iterdir()) == []


def test_epoch_video_from_dialog_and_bad_input(qtbot, fake_window, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    from app.qt.export_dialog import ExportDialog

    warnings = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: warnings.append(a[2]))
    dlg = ExportDialog(fake_window)
    qtbot.addWidget(dlg)
    dlg.kind.setCurrentIndex(dlg.kind.findData("layers"))
    dlg.width_.setValue(320)
    dlg.height_.setValue(240)
    dlg.dpi.setValue(60)
    dlg.path.setText(str(tmp_path / "layers.txt"))
    dlg.start_export()
    assert warnings and ".mp4" in warnings[0]  # wrong suffix: a message, no job
    dlg.path.setText(str(tmp_path / "layers.gif"))
    dlg.start_export()
    qtbot.waitUntil(lambda: dlg.result_path is not None or dlg.error is not None, timeout=60000)
    assert dlg.error is None
    assert len(imageio.mimread(tmp_path / "layers.gif")) == fake_window.bundle.depth
    dlg2 = ExportDialog(fake_window)
    qtbot.addWidget(dlg2)
    dlg2.kind.setCurrentIndex(dlg2.kind.findData("path"))
    dlg2.path.setText(str(tmp_path / "p.gif"))
    dlg2.start_export()
    qtbot.waitUntil(lambda: dlg2.error is not None, timeout=10000)
    assert "trace a path first" in str(dlg2.error)


def test_dynamics_plots_fill_in_and_follow_the_epoch(qtbot, fake_window, tmp_path, monkeypatch):
    from geometry import dynamics

    from app.qt.dynamics_plots import DynamicsPlots

    monkeypatch.setattr(dynamics, "default_dynamics_cache", lambda: tmp_path / "cache")
    w = DynamicsPlots(fake_window)
    qtbot.addWidget(w)
    w.reset()
    assert w.compute_btn.isEnabled()
    w.compute()
    qtbot.waitUntil(lambda: len(w.results) == 3 and not w.cancel_btn.isEnabled(), timeout=60000)
    x, y = w.curves["lc_train_total"].getData()
    assert list(x) == [0, 2, 4] and np.all(y >= 0)
    assert np.allclose(y, w.computed().column("lc_train_total"))
    assert len(w.bd_curves) == fake_window.bundle.depth
    assert len(list((tmp_path / "cache").glob("*.json"))) == 3
    fake_window.state.set_epoch_index(0)
    assert w.axis.cursors[0].value() == 0
    w.axis.cursors[1].setValue(3.9)
    w.axis.cursors[1].sigDragged.emit(w.axis.cursors[1])
    assert fake_window.state.epoch_index == 2
    # Export CSV is the table `splineatlas dynamics` writes, byte for byte
    from app.cli.main import main

    w.export_csv(tmp_path / "gui.csv")
    assert main(["dynamics", str(fake_window.bundle.path), "--out", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "gui.csv").read_bytes() == (tmp_path / "cli" / "dynamics.csv").read_bytes()


def test_3d_exports_need_the_3d_scene_and_render_it(qtbot, fake_window, tmp_path, monkeypatch):
    import os
    from types import SimpleNamespace

    from PySide6.QtWidgets import QMessageBox

    from app.qt.export_dialog import ExportDialog

    warnings = []
    monkeypatch.setattr(QMessageBox, "warning", lambda *a, **k: warnings.append(a[2]))
    dlg = ExportDialog(fake_window)
    qtbot.addWidget(dlg)
    dlg.kind.setCurrentIndex(dlg.kind.findData("view3d"))
    assert dlg.path.text().endswith(".png")
    dlg.start_export()  # no 3D tab: a message, nothing written
    assert warnings and "3D slice tab" in warnings[0]
    if not os.environ.get("DISPLAY"):
        pytest.skip("rendering the 3D scene needs OpenGL (Xvfb)")
    from PySide6.QtGui import QGuiApplication

    if QGuiApplication.platformName() in ("offscreen", "minimal"):
        pytest.skip("Qt runs offscreen here: no OpenGL")
    from app import jobs
    from app.jobs import scene3d as jobs3d
    from app.model.view3d import Slice3Choice, View3DSettings

    train_run(builtin_dataset("digits", seed=0), mlp_spec([64, 6, 6, 10]), tmp_path / "r", epochs=1, save_epochs=[1], lr=1e-2, batch_size=256, seed=0)
    b = jobs.open_run_bundle(tmp_path / "r")
    sl, box = jobs3d.make_slice3(b, Slice3Choice("pca"), 0)
    s = View3DSettings()
    scene = jobs3d.scene_arrays(jobs.tessellate_all(b, 0, sl, box, 5000), b.depth, "class", s, box)
    fake_window.results.set_bundle(b)
    drawing = jobs3d.Drawing3D(box=np.asarray(box, float), scene=scene)
    dlg.view3d = SimpleNamespace(scene=scene, canvas=None, state3d=SimpleNamespace(slice3=sl, box=box, settings=s), drawing=lambda: drawing)
    dlg.width_.setValue(320)
    dlg.height_.setValue(240)
    dlg.path.setText(str(tmp_path / "v.png"))
    dlg.start_export()
    assert dlg.result_path == str(tmp_path / "v.png")
    assert imageio.imread(tmp_path / "v.png").shape[:2] == (240, 320)


def test_dynamics_stop_stops_the_worker_and_says_so(qtbot, fake_window, tmp_path, monkeypatch):
    """Stop used to leave "computing…" on screen while the job ran on: the panel now says "stopped" at once
    and the worker is idle soon after (the engine checks for cancellation between its steps)."""
    from geometry import dynamics

    from app.qt.dynamics_plots import DynamicsPlots

    monkeypatch.setattr(dynamics, "default_dynamics_cache", lambda: tmp_path / "cache")
    real = dynamics.checkpoint_dynamics

    def slow(*a, **k):  # each checkpoint checks the cancel flag many times: make the window to hit it wide
        cancel = a[-1] if a else k.get("cancel")
        for _ in range(200):
            if cancel is not None and cancel():
                raise dynamics.CancelledError("cancelled")
            import time

            time.sleep(0.01)
        return real(*a, **k)

    monkeypatch.setattr(dynamics, "checkpoint_dynamics", slow)
    w = DynamicsPlots(fake_window)
    qtbot.addWidget(w)
    w.reset()
    w.compute()
    qtbot.waitUntil(lambda: fake_window.work.busy("dynamics"), timeout=10000)
    w.cancel_btn.click()
    assert "stopped" in w.note.text() and not w.cancel_btn.isEnabled()
    qtbot.waitUntil(lambda: not fake_window.work.busy("dynamics"), timeout=10000)
    assert len(w.results) < 3


def test_the_exported_figure_shows_the_views_paths_inspected_point_and_sites(qtbot, fake_window, tmp_path):
    """What is drawn over the tiles on screen is in the file: every visible traced path, the inspected point
    and (when shown) the power-diagram sites of the shown depth; nothing when the view shows nothing."""
    import re

    from app import jobs
    from app.model.results import Tiles
    from app.qt.export_dialog import ExportRequest, run_export

    ctx = fake_window
    st, res, b = ctx.state, ctx.results, ctx.bundle
    req = ExportRequest("figure", str(tmp_path / "plain.svg"), "class", 600, 500, 100, 4.0, 1.0, True, True, True, True)
    plain = Path(run_export(ctx, req)).read_text()
    assert 'id="path' not in plain and 'id="inspected-point' not in plain and 'id="sites' not in plain
    w = st.window
    spec = st.add_path("segment", (0.7 * w[0] + 0.3 * w[1], 0.5 * (w[2] + w[3])), (0.3 * w[0] + 0.7 * w[1], 0.4 * w[2] + 0.6 * w[3]))
    res.set_paths({spec.id: jobs.compute_path(b, st.slice, spec)})
    st.set_inspected((0.5 * (w[0] + w[1]), 0.5 * (w[2] + w[3])))
    tess = jobs.tessellate_all(b, st.epoch_index, st.slice, w, st.settings.max_regions, ctx.cache)
    key = jobs.tessellation_key(b, st.epoch_index, st.slice, w, st.settings.max_regions)
    res.set_tiles(Tiles(key, tess, st.epoch_index, tuple(w)))
    sites = np.array([[0.5 * (w[0] + w[1]), 0.5 * (w[2] + w[3])], [w[0] * 0.9 + w[1] * 0.1, w[2] * 0.9 + w[3] * 0.1]])
    res.add_sites((key, st.depth), sites)
    st.update_settings(show_sites=True)
    shown = Path(run_export(ctx, ExportRequest(*([req.kind, str(tmp_path / "shown.svg")] + list(req.__dict__.values())[2:])))).read_text()
    assert len(re.findall(r'id="path', shown)) >= 1 and 'id="inspected-point' in shown and 'id="sites' in shown
    assert f"#{spec.id} straight segment" in shown  # the legend names the path as the window


def test_an_epoch_video_can_follow_the_inspected_points_tile(qtbot, fake_window, tmp_path, monkeypatch):
    """With 'follow' an epoch video outlines the inspected point's tile in every frame (the CLI's --follow);
    without an inspected point it says what to do."""
    from app.export import sweeps
    from app.qt.export_dialog import ExportRequest, run_export
    from geometry.errors import SplineAtlasError

    ctx = fake_window
    st = ctx.state
    st.set_inspected(None)
    req = ExportRequest("epochs", str(tmp_path / "f.gif"), "class", 320, 240, 60, 4.0, 1.0, True, True, True, True, True)
    with pytest.raises(SplineAtlasError, match="inspect a point first"):
        run_export(ctx, req)
    w = st.window
    st.set_inspected((0.5 * (w[0] + w[1]), 0.5 * (w[2] + w[3])))
    seen = {}
    real = sweeps.epoch_sweep_frames
    monkeypatch.setattr(sweeps, "epoch_sweep_frames", lambda *a, **k: seen.setdefault("overlays", k["overlays"]) and real(*a, **k))
    assert Path(run_export(ctx, req)).stat().st_size > 0
    assert np.allclose(seen["overlays"]["follow"], st.inspected)
