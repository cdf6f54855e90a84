"""CLI twins: splineatlas region | walk | enumerate | region-stats on a tiny trained run."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from app.cli.main import main
from geometry.networks.datasets import builtin_dataset
from geometry.regions import enumerate_regions, line_walk, patterns_of
from geometry.networks.runs import open_run
from geometry.networks.spec import mlp_spec
from geometry.networks.training import train_run


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("moons_run")
    ds = builtin_dataset("moons", n=200, seed=0)
    return train_run(ds, mlp_spec([2, 8, 8, 2]), out, epochs=3, save_epochs=[1, 3], seed=0)


def test_region_command(run_path, tmp_path):
    out = tmp_path / "r.json"
    assert main(["region", str(run_path), "--point", "3", "--json", str(out), "--check-neighbours"]) == 0
    js = json.loads(out.read_text())
    run = open_run(run_path)
    x = run.dataset.X_train[3].astype(np.float64)
    assert js["pattern"] == "".join("1" if v else "0" for v in patterns_of(run.network(len(run) - 1), x[None])[0])
    assert js["active_count"] == len(js["active_bits"]) == len(js["neighbours"]) > 0
    assert all(n["verified"] and n["chebyshev_radius"] > 0 for n in js["neighbours"])
    assert js["chebyshev"]["radius"] > 0 and js["boundary_distance"] >= 0
    assert js["qp_solver"].startswith("CLARABEL")


def test_walk_command(run_path, tmp_path):
    out = tmp_path / "w.json"
    assert main(["walk", str(run_path), "--from", "0", "--to", "5", "--bisection", "--json", str(out)]) == 0
    js = json.loads(out.read_text())
    run = open_run(run_path)
    X = run.dataset.X_train.astype(np.float64)
    w = line_walk(run.network(len(run) - 1), X[0], X[5])
    assert js["n_regions"] == w.n_regions and np.allclose(js["t"], w.t)
    assert js["bisection"]["regions"] <= w.n_regions


def test_enumerate_command(run_path, tmp_path):
    out = tmp_path / "e.json"
    assert main(["enumerate", str(run_path), "--box", "-1", "1", "--json", str(out)]) == 0
    js = json.loads(out.read_text())
    run = open_run(run_path)
    assert js["n_regions"] == enumerate_regions(run.network(len(run) - 1), (-1.0, 1.0)).n_regions
    lp = tmp_path / "lp.json"
    assert main(["enumerate", str(run_path), "--box", "-1", "1", "--method", "lp", "--json", str(lp)]) == 0
    assert sorted(json.loads(lp.read_text())["patterns"]) == sorted(js["patterns"])


def test_region_stats_command(run_path, tmp_path):
    d = tmp_path / "stats"
    assert main(["region-stats", str(run_path), "--sets", "train,test,adversarial", "--n", "4", "--out", str(d)]) == 0
    rows = list(csv.DictReader(open(d / "points.csv")))
    assert [r["set"] for r in rows] == ["train"] * 4 + ["test"] * 4 + ["adversarial"] * 4
    assert all(float(r["chebyshev_radius"]) > 0 for r in rows)
    for f in ("summary.csv", "radii.png", "active_bits.png", "hamming_at_distance.csv", "hamming_at_distance.png", "pairs.csv", "nearest_neighbour.json"):
        assert (d / f).stat().st_size > 0


def test_bad_point_index_is_a_one_line_error(run_path, capsys):
    assert main(["region", str(run_path), "--point", "100000"]) == 2
    err = capsys.readouterr().err
    assert "out of range" in err and "Traceback" not in err


def test_region_stats_pairs_match_line_walks(run_path, tmp_path):
    d = tmp_path / "stats2"
    assert main(["region-stats", str(run_path), "--sets", "test,adversarial", "--n", "3", "--out", str(d)]) == 0
    rows = list(csv.DictReader(open(d / "pairs.csv")))
    assert [r["set"] for r in rows] == ["test"] * 3 + ["adversarial"] * 3
    for r in rows:
        assert int(r["regions_crossed"]) >= 1 and int(r["hamming"]) >= 0 and float(r["euclidean"]) > 0
        # crossing k facets changes at most k bits... and Hamming > 0 needs at least one crossing
        assert int(r["hamming"]) <= (int(r["regions_crossed"]) - 1) * max(1, int(r["max_hamming_step"]))


def test_region_stats_radius_only(run_path, tmp_path):
    d = tmp_path / "stats3"
    assert main(["region-stats", str(run_path), "--sets", "train", "--n", "3", "--radius-only", "--out", str(d)]) == 0
    rows = list(csv.DictReader(open(d / "points.csv")))
    assert len(rows) == 3 and all(r["active_bits"] == "-1" and float(r["chebyshev_radius"]) > 0 for r in rows)
