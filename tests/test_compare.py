"""Compare mode (#15): two networks on one slice, the regions whose activation pattern differs highlighted.

The changed flags are checked against an independent truth: the other network's own exact tessellation
(its tile containing the centroid, found by point-in-polygon, and that tile's stored codes), not the
forward passes the comparison uses."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from matplotlib.path import Path as MplPath

from geometry.networks.datasets import builtin_dataset
from geometry.networks.spec import mlp_spec
from geometry.networks.training import train_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("compare")
    ds = builtin_dataset("spirals", n=150, seed=0, arms=3)
    train_run(ds, mlp_spec([2, 10, 10, 3]), root / "a", epochs=8, save_epochs=[0, 4, 8], lr=2e-2, batch_size=32, seed=0)
    train_run(ds, mlp_spec([2, 10, 10, 3]), root / "b", epochs=2, save_epochs=[2], lr=2e-2, batch_size=32, seed=1)
    train_run(ds, mlp_spec([2, 12, 3]), root / "c", epochs=1, save_epochs=[1], lr=2e-2, batch_size=32, seed=0)
    return root


def _codes(t, r):
    return tuple(bytes(np.ascontiguousarray(c).tobytes()) for c in t.codes.chunk(r, r + 1))


def _containing(t, p):
    for r, poly in enumerate(t.polygons()):
        if MplPath(poly).contains_point(p, radius=-1e-12) or MplPath(poly[::-1]).contains_point(p, radius=-1e-12):
            return r
    return -1


def test_changed_regions_match_the_other_networks_own_tessellation(runs):
    from app import jobs
    from app.jobs.compare import compare_epochs

    a = jobs.open_run_bundle(runs / "a")
    sl, win = jobs.make_slice(a, jobs.default_slice_choice(a))
    cmp = compare_epochs(a, 2, a, 1, sl, win, 200_000)
    rng = np.random.default_rng(0)
    for side, other in ((cmp.a, cmp.b), (cmp.b, cmp.a)):
        t, o = side.by_depth[-1], other.by_depth[-1]
        assert side.changed.shape == (t.num_regions,) and np.array_equal(side.changed, side.hamming > 0)
        cent = t.centroids()
        for r in rng.choice(t.num_regions, size=min(80, t.num_regions), replace=False):
            k = _containing(o, cent[r])
            if k < 0:  # on an edge of the other tessellation: no single tile to compare with
                continue
            assert side.changed[r] == (_codes(t, r) != _codes(o, k)), r
    assert 0 < cmp.a.changed.sum() < len(cmp.a.changed)  # epochs 8 and 4 differ somewhere, not everywhere
    same = compare_epochs(a, 2, a, 2, sl, win, 200_000)
    assert not same.a.changed.any() and not same.b.changed.any()


def test_two_runs_of_one_architecture_and_a_refused_other(runs):
    from app import jobs
    from app.jobs.compare import compare_epochs
    from geometry.errors import SplineAtlasError

    a, b, c = (jobs.open_run_bundle(runs / n) for n in "abc")
    sl, win = jobs.make_slice(a, jobs.default_slice_choice(a))
    cmp = compare_epochs(a, -1, b, 0, sl, win, 200_000)
    assert cmp.a.label.startswith(a.run.name) and cmp.b.changed.any()
    with pytest.raises(SplineAtlasError, match="architecture"):
        compare_epochs(a, -1, c, 0, sl, win, 200_000)


def test_splineatlas_compare_writes_the_figure_and_counts(runs, tmp_path, capsys):
    from app import jobs
    from app.cli.main import main
    from app.jobs.compare import compare_epochs

    assert (
        main(["compare", str(runs / "a"), "--with-epoch", "4", "--size", "800", "400", "--out", str(tmp_path / "c.svg"), "--json", str(tmp_path / "c.json")])
        == 0
    )
    got = json.loads((tmp_path / "c.json").read_text())
    a = jobs.open_run_bundle(runs / "a")
    sl, win = jobs.make_slice(a, jobs.default_slice_choice(a))
    ref = compare_epochs(a, 2, a, 1, sl, win, 200_000)
    assert got["a"]["changed_regions"] == int(ref.a.changed.sum()) and got["b"]["regions"] == ref.b.by_depth[-1].num_regions
    svg = (tmp_path / "c.svg").read_text()
    assert svg.count('id="changed-regions"') == 2
    assert "regions change pattern" in capsys.readouterr().out
    assert main(["compare", str(runs / "a"), "--with-run", str(runs / "c"), "--out", str(tmp_path / "x.png")]) == 2
    assert "architecture" in capsys.readouterr().err
    assert main(["compare", str(runs / "a"), "--with-epoch", "8", "--out", str(tmp_path / "y.png")]) == 2


@pytest.mark.gui
def test_compare_tab_shows_both_networks_linked_and_exports_the_cli_figure(qtbot, make_window, runs, tmp_path):
    from app.jobs.compare import compare_epochs

    win = make_window(runs / "a")
    qtbot.waitUntil(lambda: win.results.tiles is not None and not win.work.busy(), timeout=120_000)
    tab = win.compare_tab
    win.tabs.setCurrentWidget(tab)
    qtbot.waitUntil(lambda: win.results.comparison is not None and not win.work.busy(), timeout=120_000)
    cmp = win.results.comparison
    st = win.state
    assert (cmp.a.epoch_index, cmp.b.epoch_index) == (st.epoch_index, 0)
    ref = compare_epochs(win.bundle, st.epoch_index, win.bundle, 0, st.slice, cmp.window, st.settings.max_regions)
    assert np.array_equal(cmp.a.changed, ref.a.changed) and np.array_equal(cmp.b.changed, ref.b.changed)
    for view, side in zip(tab.views, cmp.sides()):
        assert view.tiles.num_tiles >= side.by_depth[-1].num_regions
        assert view.highlight.num_tiles == int(side.changed.sum())
    assert "regions change pattern at epoch 0" in tab.titles[0].text()
    # linked views and cursor
    a, b = tab.views
    before = tuple(st.window)
    a.vb.scaleBy((0.5, 0.5))  # a wheel zoom: a range change by the user
    a.vb.sigRangeChangedManually.emit(a.vb.state["mouseEnabled"])
    qtbot.wait(20)
    wa, wb = np.asarray(a.visible_window()), np.asarray(b.visible_window())  # linked: one centre, the same scale
    np.testing.assert_allclose([wb[:2].mean(), wb[2:].mean()], [wa[:2].mean(), wa[2:].mean()], atol=1e-9)
    assert abs((wb[1] - wb[0]) / (wa[1] - wa[0]) - 1) < 0.02
    tab.flush_window()  # the zoom reaches the window's state: the 2D tab and the comparison follow it
    assert tuple(st.window) != before and st.window[1] - st.window[0] < before[1] - before[0]
    assert win.results.comparison is None  # the comparison of the old window is gone at once
    qtbot.waitUntil(lambda: win.results.comparison is not None and not win.work.busy(), timeout=120_000)
    cw, sw = np.asarray(win.results.comparison.window), np.asarray(st.window)  # the view's window, grown to fill the panels
    np.testing.assert_allclose([cw[:2].mean(), cw[2:].mean()], [sw[:2].mean(), sw[2:].mean()], atol=1e-9)
    assert cw[0] <= sw[0] + 1e-9 and cw[1] >= sw[1] - 1e-9 and cw[2] <= sw[2] + 1e-9 and cw[3] >= sw[3] - 1e-9
    a.hovered.emit(0.1, 0.2)
    assert all(np.allclose(v.inspected.getData(), ([0.1], [0.2])) for v in tab.views)
    # another right-hand epoch: the stale picture goes at once, then the new comparison arrives
    tab.epoch_box.setCurrentIndex(1)
    qtbot.waitUntil(lambda: win.results.comparison is None, timeout=5_000)
    qtbot.waitUntil(lambda: win.results.comparison is not None and not win.work.busy(), timeout=120_000)
    assert win.results.comparison.b.epoch_index == 1
    # the same checkpoint on both sides: said, not computed
    st.set_epoch_index(1)
    qtbot.waitUntil(lambda: "Both sides would be epoch" in tab.summary.text(), timeout=5_000)
    assert win.results.comparison is None
    st.set_epoch_index(2)
    qtbot.waitUntil(lambda: win.results.comparison is not None and not win.work.busy(), timeout=120_000)
    out = tab.export_figure(tmp_path / "gui.svg")
    assert open(out).read().count('id="changed-regions"') == 2
    win.work.shutdown()
