"""Regression runs (#18): float targets trained with MSE, R²/MSE recorded, float labels refused for a
classifier, and a regression network's boundary traced as its level set {f = L} in every tool."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from geometry.networks.datasets import builtin_dataset, load_npz
from geometry.errors import DatasetError
from geometry.networks.runs import open_run, using_level
from geometry.networks.spec import mlp_spec
from geometry.networks.training import TrainingProtocol, regression_scores, train_run


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # training is deterministic for a thread count


@pytest.fixture(scope="module")
def paraboloid_run(tmp_path_factory):
    """A 2-5-5-1 net fitted to x1² + x2² − 0.4 (the issue's set-up)."""
    out = tmp_path_factory.mktemp("regress") / "paraboloid"
    ds = builtin_dataset("paraboloid", n=1000, seed=0)
    protocol = TrainingProtocol(lr=0.02, lr_schedule="cosine", batch_size=32)
    return train_run(ds, mlp_spec([2, 5, 5, 1]), out, epochs=300, save_epochs=[0, 150, 300], seed=0, protocol=protocol)


def test_regression_reaches_a_small_mse_and_records_mse_and_r2(paraboloid_run):
    manifest = json.loads(paraboloid_run.read_text())
    assert manifest["task"] == "regress" and "class_names" not in manifest
    last = manifest["checkpoints"][-1]
    assert last["train_mse"] < 2e-3 and last["test_mse"] < 2e-3
    run = open_run(paraboloid_run)
    ds = run.dataset
    assert ds.task == "regress" and ds.y_train.dtype == np.float32
    X = ds.X_test.astype(np.float64)
    assert np.allclose(ds.y_test, (X**2).sum(1) - 0.4, atol=1e-6)  # the targets are the function itself
    mse, r2 = regression_scores(run.network(-1), ds.X_test, ds.y_test)
    pred = run.network(-1)(torch.as_tensor(ds.X_test)).detach().numpy()[:, 0].astype(np.float64)
    assert mse == pytest.approx(np.mean((pred - ds.y_test) ** 2), rel=1e-6)  # recomputed by hand
    assert r2 == pytest.approx(1 - np.sum((pred - ds.y_test) ** 2) / np.sum((ds.y_test - ds.y_test.mean()) ** 2), rel=1e-6)
    assert last["test_mse"] == pytest.approx(mse, rel=1e-5) and r2 > 0.98


def test_float_labels_are_refused_for_a_classifier_with_a_hint(tmp_path, capsys):
    from app.cli.main import main

    X = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32)
    np.savez(tmp_path / "floats.npz", X=X, y=X[:, 0] * 0.3)
    with pytest.raises(DatasetError, match="--task regress"):
        load_npz(tmp_path / "floats.npz")
    assert main(["train", "--dataset", str(tmp_path / "floats.npz"), "--arch", "2-4-2", "--epochs", "1", "--out", str(tmp_path / "r")]) == 2
    assert "--task regress" in capsys.readouterr().err
    # with --task regress the same file trains a regression net on the float targets, nothing truncated
    assert (
        main(["train", "--dataset", str(tmp_path / "floats.npz"), "--task", "regress", "--arch", "2-4-1", "--epochs", "2", "--out", str(tmp_path / "r")]) == 0
    )
    ds = open_run(tmp_path / "r").dataset
    assert ds.task == "regress" and len(np.unique(np.r_[ds.y_train, ds.y_test])) == 50
    assert "train MSE" in capsys.readouterr().out
    # a regression dataset given to a classifier architecture with the wrong output count is one line
    assert (
        main(["train", "--dataset", str(tmp_path / "floats.npz"), "--task", "regress", "--arch", "2-4-3", "--epochs", "1", "--out", str(tmp_path / "q")]) == 2
    )
    assert "1 regression target" in capsys.readouterr().err


def test_the_boundary_of_a_regression_run_is_its_level_set(paraboloid_run, capsys):
    """Every boundary segment the engine traces at --level L lies on {f = L} (forward pass, float64), and the
    tiles are the unshifted network's: the level moves the boundary, not the regions."""
    from app.cli.main import main
    from app.jobs.bundle import bundle_from_run
    from geometry.slices import Slice
    from geometry.tessellation import tessellate

    plain = open_run(paraboloid_run)
    sl = Slice.input_plane(2)
    f = plain.network(-1, at_level=False).to_dtype_device(torch.float64)
    for level in (0.0, 0.25, -0.2):
        with using_level(level):
            run = open_run(paraboloid_run)
        assert run.level == level and run.boundary_name == f"level set f = {level:g}"
        t = tessellate(run.network(-1), sl, [-1.0, 1.0, -1.0, 1.0])
        seg = t.boundary_segments.reshape(-1, 2)
        assert len(seg) > 4
        values = f(torch.as_tensor(seg)).detach().numpy()[:, 0]
        assert np.abs(values - level).max() < 1e-9
        assert t.num_regions == tessellate(plain.network(-1), sl, [-1.0, 1.0, -1.0, 1.0]).num_regions
        b = bundle_from_run(run, paraboloid_run)
        X, side = b.points()
        assert np.array_equal(side, (run.dataset.y_train > level).astype(np.int64))  # coloured by side of the level set
        assert b.class_names == (f"f < {level:g}", f"f > {level:g}")
    assert main(["tessellate", str(paraboloid_run), "--level", "0.25"]) == 0
    assert "level set f = 0.25:" in capsys.readouterr().out
    assert main(["info", str(paraboloid_run), "--level", "0.25"]) == 0
    out = capsys.readouterr().out
    assert "regression" in out and "train MSE" in out


def test_level_is_refused_for_a_classifier(capsys):
    from app.cli.main import main

    assert main(["tessellate", "assets/runs/spirals", "--level", "0.5"]) == 2
    assert "--level is for regression runs" in capsys.readouterr().err


def test_a_regression_dataset_cannot_be_given_to_a_classifier_run_and_vice_versa(tmp_path, capsys):
    from app.cli.main import main

    assert main(["info", "assets/runs/spirals", "--dataset", "paraboloid"]) == 2
    assert "regress" in capsys.readouterr().err
    assert main(["train", "--dataset", "moons", "--task", "regress", "--arch", "2-4-1", "--epochs", "1", "--out", str(tmp_path / "m")]) == 2
    assert "classification dataset" in capsys.readouterr().err


def test_results_at_two_levels_never_share_a_cache_entry(paraboloid_run):
    """Cache keys come from the checkpoint hash; at another level the network differs, so must the key."""
    from app.jobs import tessellate_all
    from app.jobs.bundle import bundle_from_run
    from geometry.cache import ResultCache
    from geometry.slices import Slice

    cache = ResultCache(None)
    box = [-1.0, 1.0, -1.0, 1.0]
    segs = []
    for level in (0.0, 0.3):
        with using_level(level):
            b = bundle_from_run(open_run(paraboloid_run), paraboloid_run)
        segs.append(tessellate_all(b, -1, Slice.input_plane(2), box, 100_000, cache)[-1].boundary_segments)
    assert len(cache._mem) == 2 and not np.array_equal(segs[0], segs[1])


def test_dynamics_of_a_regression_run_report_no_accuracy_but_the_level_sets_density(paraboloid_run):
    from geometry.dynamics import DynamicsSettings, run_dynamics

    with using_level(0.1):
        run = open_run(paraboloid_run)
    s = DynamicsSettings(max_points=32, random_points=32, boundary_points=32, with_trace_g=False, with_boundary_distance=False)
    d = run_dynamics(run, s, indices=[-1], cache_dir=None).points[0]
    assert np.isnan(d.train_accuracy) and np.isnan(d.test_accuracy)  # float targets have no accuracy
    assert np.isfinite(d.density_boundary) and d.density_boundary >= 1  # squares on the level set f = 0.1
