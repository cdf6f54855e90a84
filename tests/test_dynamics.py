"""Training-dynamics curves: values against independent computations, disk cache, CSV, cancel, CLI."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from geometry.networks.datasets import builtin_dataset
from geometry.dynamics import DynamicsSettings, run_dynamics
from geometry.errors import CancelledError
from geometry.local_complexity import local_complexity
from geometry.networks.runs import open_run
from geometry.slices import Slice
from geometry.networks.spec import mlp_spec
from geometry.tessellation import tessellate
from geometry.networks.training import train_run

FAST = DynamicsSettings(max_points=1000, random_points=40, boundary_points=40, lc_dims=2)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("dyn")
    ds = builtin_dataset("moons", n=120, seed=1)
    train_run(ds, mlp_spec([2, 10, 10, 2]), root / "moons", epochs=8, save_epochs=[0, 3, 8], lr=2e-2, batch_size=32, seed=0)
    return open_run(root / "moons")


def test_curves_match_independent_computations(run, tmp_path):
    c = run_dynamics(run, FAST, cache_dir=None)
    assert c.epochs.tolist() == [0, 3, 8]
    # every training point is used (max_points > N): accuracy equals what training recorded
    assert np.allclose(c.column("train_accuracy"), run.metrics("train_accuracy"), atol=1e-6)
    assert np.allclose(c.column("test_accuracy"), run.metrics("test_accuracy"), atol=1e-6)
    ds = run.dataset
    X = ds.X_train.astype(np.float64)
    r = c.points[0].lc_radius
    scale = np.sqrt(((X - X.mean(0)) ** 2).sum(1).mean())
    assert np.isclose(r, 0.05 * scale)
    for i in range(len(run)):
        lc = local_complexity(run.network(i), X, radius=r, dims=2)
        assert np.allclose(c.points[i].lc_train, lc.mean_per_layer)
        p = c.points[i]
        assert p.density_data >= 1 and p.density_random >= 1
        assert p.density_boundary >= 1 or (np.isnan(p.density_boundary) and p.train_accuracy <= 0.5)  # no boundary yet
        assert all(d > 0 for d in p.boundary_distance) and p.mean_trace_g >= 0
    assert c.points[-1].density_boundary >= 1
    lo, hi = X.min(0), X.max(0)
    span = hi - lo
    box = [lo[0] - 0.05 * span[0], hi[0] + 0.05 * span[0], lo[1] - 0.05 * span[1], hi[1] + 0.05 * span[1]]
    assert c.points[-1].regions_slice == tessellate(run.network(len(run) - 1), Slice.input_plane(2), box).num_regions


def test_disk_cache_and_csv(run, tmp_path, monkeypatch):
    import geometry.dynamics as dyn

    a = run_dynamics(run, FAST, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.json"))) == 3

    def fail(*args, **kw):
        raise AssertionError("should have been read from the cache")

    monkeypatch.setattr(dyn, "checkpoint_dynamics", fail)
    seen = []
    b = run_dynamics(run, FAST, cache_dir=tmp_path / "cache", on_checkpoint=lambda i, r: seen.append(i))
    assert seen == [0, 1, 2]
    assert np.array_equal(a.table()[1], b.table()[1], equal_nan=True)  # exact round trip through JSON
    with pytest.raises(AssertionError):  # other settings are another cache entry
        run_dynamics(run, DynamicsSettings(max_points=50, lc_dims=2), cache_dir=tmp_path / "cache")
    path = a.to_csv(tmp_path / "d.csv")
    rows = list(csv.reader(path.open()))
    header, body = rows[0], rows[1:]
    assert len(body) == 3 and header[:3] == ["epoch", "train_accuracy", "test_accuracy"]
    assert {"lc_train_total", "lc_random_l2", "density_boundary", "mean_trace_g", "boundary_distance_l1"} <= set(header)
    col = header.index("lc_test_total")
    assert np.allclose([float(r[col]) for r in body], a.column("lc_test_total"), rtol=1e-5)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


def test_cancel_and_progress(run):
    seen = []
    with pytest.raises(CancelledError):
        run_dynamics(run, FAST, cache_dir=None, progress=lambda f, m: seen.append(f), cancel=lambda: len(seen) > 3)
    assert seen and all(0 <= f <= 1 for f in seen)


def test_high_dimensional_input_uses_planes_through_points(tmp_path):
    torch.manual_seed(0)
    ds = builtin_dataset("digits", seed=0)
    train_run(ds, mlp_spec([64, 8, 10]), tmp_path / "d", epochs=1, save_epochs=[1], lr=1e-2, batch_size=256, seed=0)
    r = open_run(tmp_path / "d")
    c = run_dynamics(r, DynamicsSettings(max_points=40, random_points=20, boundary_points=20, slices=1, lc_dims=3, with_trace_g=False), cache_dir=None)
    p = c.points[0]
    assert np.isfinite(p.density_data) and p.density_data >= 1 and p.regions_slice >= 1
    assert np.isnan(p.mean_trace_g) and len(p.lc_train) == 1
    # data squares: one per training point, each in its own plane through that point; the mean equals
    # counting the regions that meet each square in a 3x larger exact tessellation
    from geometry.dynamics import _points
    from geometry.local_complexity import square_region_counts
    from geometry.tessellation import tessellate

    settings = DynamicsSettings(max_points=40, random_points=20, boundary_points=20, slices=1, lc_dims=3, data_squares=6, with_trace_g=False)
    pts = _points(r.dataset, settings)
    assert len(pts.data_planes) == 6
    net, h = r.network(0), pts.half_width
    counts = []
    for k, (sl, u) in enumerate(pts.data_planes):
        assert sl.distance_to_plane(pts.X_train[k : k + 1])[0] < 1e-9
        big = tessellate(net, sl, np.array([u[0] - 3 * h, u[0] + 3 * h, u[1] - 3 * h, u[1] + 3 * h]))
        counts.append(square_region_counts(net, sl, u[None], h, tessellations=[big]).counts[-1][0])
    q = run_dynamics(r, settings, cache_dir=None).points[0]
    assert q.density_data == pytest.approx(np.mean(counts))


def test_cli_dynamics_writes_csv_and_figures(run, tmp_path, capsys):
    from app.cli.main import main

    out = tmp_path / "out"
    assert main(["dynamics", str(run.source), "--out", str(out), "--points", "30", "--frame-dims", "2", "--no-cache", "--dpi", "60"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["dynamics.csv", "dynamics.png", "dynamics.svg"]
    assert "boundary/data" in capsys.readouterr().out
