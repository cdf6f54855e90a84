"""Precompute (#18): every checkpoint tessellated (and its dynamics computed) as Dask tasks into the
caches the window reads -- under the window's own keys, equal to computing them in place; the window's
button runs the same code and shows the counts; dynamics on Dask equal the serial pass."""

from __future__ import annotations

import csv

import numpy as np
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    import torch

    from geometry.networks.datasets import builtin_dataset
    from geometry.networks.spec import mlp_spec
    from geometry.networks.training import train_run

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path_factory.mktemp("pre") / "moons"
        return train_run(builtin_dataset("moons", n=300), mlp_spec([2, 12, 12, 2]), out, epochs=25, save_epochs=[0, 5, 10, 15, 20, 25], seed=0)
    finally:
        torch.set_num_threads(before)


def test_precompute_fills_the_windows_cache_under_its_keys(tmp_path, capsys, small_run):
    from app.cli.main import main
    from app.jobs import tessellate_all
    from app.jobs.bundle import bundle_from_run
    from app.jobs.slicing import default_slice_choice, make_slice
    from app.jobs.tessellate import tessellation_key
    from app.model.state import Settings, home_cover
    from geometry.cache import ResultCache
    from geometry.networks.runs import open_run

    cache_dir = tmp_path / "cache"
    assert main(["precompute", str(small_run), "--cache-dir", str(cache_dir), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    assert "6 checkpoints" in out and "6 tessellation(s) to compute" in out and "done in" in out
    bundle = bundle_from_run(open_run(small_run), small_run)
    sl, home = make_slice(bundle, default_slice_choice(bundle), -1)  # what the window opens with
    home = home_cover(home, home)  # widened to 2:1: what a window of any landscape size shows of it
    disk = ResultCache(cache_dir / "results")
    for i in range(len(bundle.run)):
        assert tessellation_key(bundle, i, sl, home, Settings().max_regions) in disk
    for i in (0, 5):  # a cached entry is the computation itself
        cached = tessellate_all(bundle, i, sl, home, Settings().max_regions, disk)
        fresh = tessellate_all(bundle, i, sl, home, Settings().max_regions, None)
        assert [t.num_regions for t in cached] == [t.num_regions for t in fresh]
        assert np.array_equal(cached[-1].vertices, fresh[-1].vertices) and np.array_equal(cached[-1].boundary_segments, fresh[-1].boundary_segments)
    assert disk.misses == 0
    assert main(["precompute", str(small_run), "--cache-dir", str(cache_dir), "--workers", "2"]) == 0
    assert "nothing to compute" in capsys.readouterr().out


def test_dynamics_on_dask_equal_the_serial_pass(tmp_path, capsys, small_run):
    from app.cli.main import main

    common = ["dynamics", str(small_run), "--points", "32", "--no-trace-g", "--no-boundary-distance"]
    assert main([*common, "--out", str(tmp_path / "serial"), "--no-cache"]) == 0
    assert main([*common, "--out", str(tmp_path / "dask"), "--cache-dir", str(tmp_path / "dyn"), "--parallel", "--workers", "2"]) == 0
    assert "computed 6 checkpoint(s) on 2 Dask worker(s)" in capsys.readouterr().err
    read = lambda p: list(csv.reader(open(p)))  # noqa: E731
    assert read(tmp_path / "dask" / "dynamics.csv") == read(tmp_path / "serial" / "dynamics.csv")
    assert len(list((tmp_path / "dyn").glob("*.json"))) == 6


@pytest.mark.gui
def test_the_windows_precompute_button_runs_the_same_code(qtbot, make_window, tmp_path, small_run):
    from geometry.cache import ResultCache

    win = make_window(str(small_run), cache=ResultCache(tmp_path / "wcache"))
    qtbot.waitUntil(lambda: win.bundle is not None and win.results.tiles is not None and not win.work.busy(), timeout=60_000)
    win.training_panel.pre_btn.click()
    qtbot.waitUntil(lambda: not win.work.busy(), timeout=120_000)
    counts = win.results.region_counts
    assert counts is not None and np.isfinite(counts).all() and len(counts) == 6
    from app.jobs import tessellate_all

    st = win.state
    assert counts[2] == tessellate_all(win.bundle, 2, st.slice, st.window, st.settings.max_regions, None)[-1].num_regions


@pytest.mark.gui
def test_a_window_opened_after_the_cli_precompute_computes_nothing(qtbot, make_window, tmp_path, small_run):
    """The CLI's keys are the window's: every epoch it shows comes from the disk cache (no miss)."""
    from app.cli.main import main
    from geometry.cache import ResultCache

    assert main(["precompute", str(small_run), "--cache-dir", str(tmp_path / "c"), "--scheduler", "serial"]) == 0
    win = make_window(str(small_run), cache=ResultCache(tmp_path / "c" / "results"))
    qtbot.waitUntil(lambda: win.bundle is not None and win.results.tiles is not None and not win.work.busy(), timeout=60_000)
    for e in range(win.state.n_epochs):
        win.state.set_epoch_index(e)
        qtbot.waitUntil(lambda: win.results.tiles is not None and win.results.tiles.epoch_index == e and not win.work.busy(), timeout=60_000)
    assert win.cache.hits >= 6 and win.cache.misses == 0
    assert "precomputed home view" in win.status_label.text()
    assert win.results.tiles.shows(win.state.epoch_index, win.state.window)
