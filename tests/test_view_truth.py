"""The picture is the network: every pixel of the 2D view that shows a class tile (away from edges, the
boundary and overlays) has the colour of the forward pass's argmax at that pixel's slice point.
Checked on screenshots with their JSON key (``splineatlas screenshot``), for each bundled run, and in
the real window after wheel zooms and pans (a render cache once left tiles of old zoom levels)."""

from __future__ import annotations

import json

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

pytest.importorskip("pytestqt")
from PySide6.QtCore import QPoint, QPointF, Qt  # noqa: E402

pytestmark = pytest.mark.gui
TIMEOUT = 120_000
TOLERANCE = 3  # per channel, for the compositor's rounding


def agreement(png, key: dict, network) -> tuple[float, int]:
    """(fraction of clean class pixels whose colour is the forward pass's class, number of such pixels)."""
    img = imageio.imread(png)[..., :3].astype(int)
    colors = np.asarray(key["class_colors"])
    x0, y0, x1, y1 = (int(v) for v in key["plot_rect"])
    sub = img[y0:y1, x0:x1]
    diff = np.abs(sub[:, :, None, :] - colors[None, None]).max(-1)  # (H, W, C)
    cls = np.where(diff.min(-1) <= TOLERANCE, diff.argmin(-1), -1)
    clean = cls >= 0
    for dy in (-1, 0, 1):  # the whole 3x3 neighbourhood shows the same class
        for dx in (-1, 0, 1):
            shifted = np.full_like(cls, -2)
            shifted[max(dy, 0) : cls.shape[0] + min(dy, 0), max(dx, 0) : cls.shape[1] + min(dx, 0)] = cls[
                max(-dy, 0) : cls.shape[0] - max(dy, 0), max(-dx, 0) : cls.shape[1] - max(dx, 0)
            ]
            clean &= shifted == cls
    py, px = np.nonzero(clean)
    (a, b, c), (d, e, f) = key["pixel_to_slice"]
    gx, gy = px + x0, py + y0
    uv = np.stack([a * gx + b * gy + c, d * gx + e * gy + f], 1)
    x = np.asarray(key["origin"])[None] + uv @ np.asarray(key["basis"]).T
    with torch.no_grad():
        logits = network(torch.as_tensor(x, dtype=torch.float32))
    truth = logits.argmax(1).numpy() if logits.shape[1] > 1 else (logits[:, 0] > 0).long().numpy()
    return float((truth == cls[py, px]).mean()), int(len(py))


@pytest.mark.slow
@pytest.mark.parametrize("run_name", ["spirals", "digits", "rings3d"])
def test_screenshot_pixels_equal_the_forward_pass(qtbot, tmp_path, run_name):
    from app.cli.main import main
    from geometry.networks.runs import open_run
    from tests.conftest import DEMO_RUNS

    path = DEMO_RUNS / run_name
    out = tmp_path / "view.png"
    assert main(["screenshot", str(path), "--no-points", "--size", "1100x760", "--out", str(out)]) == 0
    key = json.loads(out.with_suffix(".json").read_text())
    assert key["exact"] and key["mode"] == "class"
    run = open_run(path)
    frac, n = agreement(out, key, run.network(key["epoch_index"]))
    assert n > 5_000, "too few clean pixels to judge"
    print(f"{run_name}: {frac:.5f} of {n} clean pixels agree")
    assert frac >= 0.995, f"{run_name}: only {frac:.4f} of {n} pixels show the forward pass's class"


def _wheel(qtbot, view, u, v, steps):
    vp = view.plot.viewport()
    pos = view.plot.mapFromScene(view.vb.mapViewToScene(QPointF(u, v)))
    from PySide6.QtGui import QWheelEvent

    for _ in range(abs(steps)):
        ev = QWheelEvent(
            QPointF(pos),
            QPointF(vp.mapToGlobal(pos)),
            QPoint(0, 0),
            QPoint(0, 120 if steps > 0 else -120),
            Qt.MouseButton.NoButton,
            Qt.KeyboardModifier.NoModifier,
            Qt.ScrollPhase.NoScrollPhase,
            False,
        )
        from PySide6.QtWidgets import QApplication

        QApplication.sendEvent(vp, ev)
        qtbot.wait(30)


@pytest.mark.slow
def test_window_pixels_stay_exact_after_wheel_zooms_and_pans(qtbot, tmp_path, make_window, spirals_run_path):
    from app.qt.view_key import save_view

    win = make_window(spirals_run_path, size=(1100, 760))
    qtbot.waitUntil(lambda: win.tess is not None and not win.work.busy(), timeout=TIMEOUT)
    win.state.update_settings(show_points=False)
    view = win.view2d
    net = win.bundle.run.network(win.state.epoch_index)
    for step, (u, v, clicks, pan) in enumerate([(0.2, 0.1, 3, None), (0.25, 0.05, 2, (40, -25)), (0.0, 0.0, -2, (-60, 30)), (0.3, -0.2, 4, None)]):
        _wheel(qtbot, view, u, v, clicks)
        if pan is not None:
            vb = view.vb
            vb.translateBy(x=pan[0] * vb.viewPixelSize()[0], y=pan[1] * vb.viewPixelSize()[1])
        view.flush_window()
        qtbot.waitUntil(
            lambda: (
                not win.work.busy()
                and not win.controller.tess_timer.isActive()
                and win.tess is not None
                and win.results.tiles.shows(win.state.epoch_index, win.state.window)
            ),
            timeout=TIMEOUT,
        )
        qtbot.wait(100)
        key = save_view(win, tmp_path / f"zoom{step}.png")
        assert key["exact"]
        frac, n = agreement(tmp_path / f"zoom{step}.png", key, net)
        assert n > 20_000 and frac >= 0.995, f"after zoom/pan {step}: {frac:.4f} of {n} pixels agree"


def test_a_new_epoch_never_shows_the_old_tiles_and_cancel_returns_to_the_epoch_shown(qtbot, make_window, digits_run_path, monkeypatch):
    """The slider said epoch 5 while the tiles, boundary and status were still epoch 60's, during the
    computation and after Cancel."""
    import time

    from app import jobs
    from geometry.errors import CancelledError

    win = make_window(digits_run_path, size=(1100, 760))
    qtbot.waitUntil(lambda: win.tess is not None and not win.work.busy(), timeout=TIMEOUT)
    last, shown = win.state.epoch_index, win.tess_key

    def slow(bundle, epoch, *args, **kw):  # an exact tessellation that takes until it is cancelled
        cancel = args[-1] if args else kw.get("cancel")
        t0 = time.time()
        while time.time() - t0 < 60:
            if cancel is not None and cancel():
                raise CancelledError("cancelled")
            time.sleep(0.01)
        raise CancelledError("test timeout")

    monkeypatch.setattr(jobs, "tessellate_all", slow)
    win.controls.epoch.setValue(5)
    qtbot.waitUntil(lambda: win.work.busy("tessellation"), timeout=TIMEOUT)
    assert win.tess is None and win.view2d.tiles.num_tiles == 0  # the old epoch's picture is gone
    qtbot.waitUntil(lambda: win.view2d.preview.isVisible(), timeout=TIMEOUT)  # this epoch's preview instead
    assert "Tessellating epoch" in win.status_label.text()
    win.cancel_btn.click()
    qtbot.waitUntil(lambda: win.tess is not None and not win.work.busy(), timeout=TIMEOUT)
    assert win.state.epoch_index == last and win.controls.epoch.value() == last and win.tess_key == shown
    assert win.view2d.tiles.num_tiles > 0 and not win.view2d.preview.isVisible()


def test_tile_paths_built_without_qt_equal_pyqtgraphs(qapp):
    """Workers build tile paths as bytes with numpy (a QPainterPath built in a worker deadlocked the GUI
    thread under load); decoded on the GUI thread they are the paths pyqtgraph's arrayToQPath builds."""
    import numpy as np
    import pyqtgraph as pg

    from app.qt.view2d import polygons_path, segments_path

    rng = np.random.default_rng(0)
    counts = rng.integers(3, 7, 40)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    verts = rng.normal(size=(offsets[-1], 2))
    idx = np.insert(np.arange(len(verts)), offsets[1:], offsets[:-1])
    connect = np.ones(len(idx), dtype=np.int32)
    connect[offsets[1:] + np.arange(1, len(offsets)) - 1] = 0
    ref = pg.arrayToQPath(verts[idx, 0], verts[idx, 1], connect=connect, finiteCheck=False)
    got = polygons_path(verts, offsets)
    assert got.elementCount() == ref.elementCount() == len(idx)
    for k in range(got.elementCount()):
        a, b = got.elementAt(k), ref.elementAt(k)
        assert (a.type, a.x, a.y) == (b.type, b.x, b.y), k
    seg = rng.normal(size=(25, 2, 2))
    ref = pg.arrayToQPath(seg.reshape(-1, 2)[:, 0], seg.reshape(-1, 2)[:, 1], connect="pairs", finiteCheck=False)
    got = segments_path(seg)
    assert [(got.elementAt(k).type, got.elementAt(k).x) for k in range(got.elementCount())] == [
        (ref.elementAt(k).type, ref.elementAt(k).x) for k in range(ref.elementCount())
    ]


def test_the_legend_keeps_shared_entries_and_shows_exactly_the_new_list(qapp):
    import pyqtgraph as pg

    from app.qt.theme import Theme
    from app.qt.view2d import SliceView

    view = SliceView(Theme(dark=False))
    swatch = lambda i: {"brush": pg.mkBrush(i * 40, 0, 0), "symbol": "s"}  # noqa: E731
    classes = [(f"class {i}", swatch(i)) for i in range(3)]
    labels = lambda: [label.text for _, label in view.legend.items]  # noqa: E731
    view.set_legend(classes + [("boundary", {"line": pg.mkPen("k")})])
    first = list(view._legend_entries)
    view.set_legend(classes)  # the tiles taken down: the boundary entry goes
    assert labels() == ["class 0", "class 1", "class 2"] and view._legend_entries == first[:3]
    view.set_legend(classes + [("cuts of layer 2", {"line": pg.mkPen("r")}), ("boundary", {"line": pg.mkPen("k")})])
    assert labels() == ["class 0", "class 1", "class 2", "cuts of layer 2", "boundary"]
    assert view._legend_entries[:3] == first[:3], "the class swatches were not rebuilt"
    view.set_legend([(f"class {i}", swatch(i + 1)) for i in range(3)])  # other colours: rebuilt from the first
    assert labels() == ["class 0", "class 1", "class 2"] and view._legend_entries[0] is not first[0]
    assert view.legend.layout.count() == 2 * len(view.legend.items), "no removed entry left in the layout"


def test_each_edge_is_stroked_once_by_the_layer_that_made_it(qapp):
    """The 2D view strokes the shared vertex table's edges: every polygon edge of the tessellation once
    (not once per region beside it), in the pen of the layer that made it."""
    from app.qt.view2d import edge_groups, edge_pens
    from app.qt.theme import Theme
    from geometry.networks.network import Network
    from geometry.networks.spec import mlp_spec
    from geometry.slices import Slice
    from geometry.tessellation import tessellate

    torch.manual_seed(3)
    t = tessellate(Network(mlp_spec([2, 8, 8, 3])), Slice.input_plane(2), [-1.0, 1.0, -1.0, 1.0])
    pens = edge_pens(Theme())
    groups = edge_groups(pens, t.vertex_table, t.depth, show_edges=True)
    assert [pen for _, pen in groups] == [pens["old"], pens["new"], pens["domain"]]

    def unordered(seg):
        key = np.round(seg.reshape(-1, 4) * 1e9).astype(np.int64)
        flip = (key[:, 0] > key[:, 2]) | ((key[:, 0] == key[:, 2]) & (key[:, 1] > key[:, 3]))
        key[flip] = key[flip][:, [2, 3, 0, 1]]
        return [tuple(k) for k in key]

    drawn = [k for seg, _ in groups for k in unordered(seg)]
    assert len(drawn) == len(set(drawn)) == len(set(unordered(t.edges())))
    for (seg, _), layers in zip(groups, ([0] * (t.depth - 1), [t.depth - 1], [-1])):
        want = set(unordered(np.concatenate([t.edges(j) for j in set(layers)]))) if layers else set()
        assert set(unordered(seg)) == want
