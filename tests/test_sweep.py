"""Sweeps on Dask (#18): a 2 x 4 grid on a LocalCluster of 2 worker processes; its table against each
saved run measured alone; a worker killed mid-sweep; a rerun that recomputes nothing; the summary
against numpy; results in an fsspec store; bad grids refused in one line."""

from __future__ import annotations

import csv
import os
import signal
import threading
import time

import numpy as np
import pytest

pytestmark = pytest.mark.slow

ARGS = ["--dataset", "moons", "--samples", "300", "--arch", "2-8-1,2-8-8-1", "--seeds", "0-3", "--epochs", "15", "--measures", "regions_box,regions_plane"]


@pytest.fixture(scope="module")
def cluster():
    from dask.distributed import Client, LocalCluster

    c = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(c)
    yield client
    client.close()
    c.close()


def _table(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def test_sweep_table_equals_each_saved_run_measured_alone_and_a_rerun_computes_nothing(tmp_path, capsys, cluster):
    from app.cli.main import main
    from geometry.networks.runs import open_run
    from geometry.regions.plane import count_plane_regions
    from geometry.slices import Slice
    from geometry.tessellation import tessellate

    out = tmp_path / "sweep"
    assert main(["sweep", *ARGS, "--out", str(out), "--scheduler", cluster.scheduler.address]) == 0
    first = capsys.readouterr().out
    assert "sweep: 8 runs (2 cells x 4 seeds); 0 already" in first and "computed 8 run(s)" in first
    rows = _table(out / "table.csv")
    assert [(r["arch"], int(r["seed"])) for r in rows] == [(a, s) for a in ("2-8-1", "2-8-8-1") for s in range(4)]
    for r in rows:
        net = open_run(r["run"]).network(-1)
        alone = tessellate(net, Slice.input_plane(2), [-1.0, 1.0, -1.0, 1.0]).num_regions
        assert int(r["regions_box"]) == alone
        assert int(r["regions_plane"]) == count_plane_regions(net, Slice.input_plane(2)).regions
    # one hidden layer of 8 lines in general position: 1 + 8 + 28 regions in the plane
    assert {int(r["regions_plane"]) for r in rows if r["arch"] == "2-8-1"} == {37}
    stamp = {p.name: p.stat().st_mtime_ns for p in (out / "results").iterdir()}
    assert main(["sweep", *ARGS, "--out", str(out), "--scheduler", cluster.scheduler.address]) == 0
    again = capsys.readouterr().out
    assert "8 already in" in again and "nothing to compute" in again
    assert {p.name: p.stat().st_mtime_ns for p in (out / "results").iterdir()} == stamp  # not one result rewritten
    assert _table(out / "table.csv") == rows


def test_summary_statistics_are_the_tables(tmp_path, capsys):
    from app.cli.main import main

    out = tmp_path / "s"
    assert main(["sweep", *ARGS[:-2], "--measures", "regions_box", "--seeds", "0-2", "--out", str(out), "--scheduler", "serial"]) == 0
    rows, summary = _table(out / "table.csv"), _table(out / "summary.csv")
    import pyarrow.parquet as pq

    assert pq.read_table(out / "table.parquet").num_rows == len(rows) == 6
    for cell in summary:
        v = np.array([float(r["regions_box"]) for r in rows if r["arch"] == cell["arch"]])
        got = {s: float(cell[f"regions_box_{s}"]) for s in ("mean", "sd", "median", "min", "max", "n")}
        assert got == pytest.approx({"mean": v.mean(), "sd": v.std(ddof=1), "median": np.median(v), "min": v.min(), "max": v.max(), "n": len(v)})
    assert (out / "boxplots.png").stat().st_size > 10_000 and (out / "boxplots.svg").exists()
    printed = capsys.readouterr().out
    assert "regions_box (regions)" in printed and "2-8-8-1" in printed


def test_a_worker_killed_mid_sweep_still_completes_every_row(tmp_path, cluster):
    from experiments.cluster import run_tasks
    from experiments.grid import SweepGrid
    from experiments.store import ResultStore
    from experiments.sweep import RUNS_KEY, sweep_task
    from geometry.networks.datasets import builtin_dataset

    grid = SweepGrid(builtin_dataset("moons", n=300).reference, ("2-16-16-1", "2-8-8-1"), (0, 1, 2, 3), 40, {"lr": 1e-3}, measures=("scores", "regions_box"))
    tasks = {k: {**p, RUNS_KEY: str(tmp_path / "runs")} for k, p in grid.tasks().items()}
    store = ResultStore(tmp_path / "results")
    pids = cluster.run(os.getpid)
    killed = []

    def kill_one_when_the_first_result_lands():
        deadline = time.time() + 120
        while not store.keys() and time.time() < deadline:
            time.sleep(0.05)
        victim = sorted(pids.values())[0]
        os.kill(victim, signal.SIGKILL)
        killed.append(victim)

    t = threading.Thread(target=kill_one_when_the_first_result_lands, daemon=True)
    t.start()
    outcome = run_tasks(sweep_task, tasks, store, scheduler=cluster)
    t.join(5)
    assert killed and outcome.failed == {}
    assert outcome.computed == 8 and sorted(store.keys()) == sorted(tasks)
    assert all(store.read(k)["regions_box"] > 0 for k in tasks)
    assert killed[0] not in cluster.run(os.getpid).values()  # the nanny replaced the killed worker


def test_results_go_to_any_fsspec_store_atomically():
    from experiments.store import ResultStore, task_key

    store = ResultStore("memory://splineatlas-test/results")
    key = task_key({"a": 1})
    assert not store.has(key) and store.read(key) is None
    store.write(key, {"regions_box": 12, "arch": "2-8-1"})
    assert store.has(key) and store.read(key) == {"regions_box": 12, "arch": "2-8-1"} and store.keys() == [key]
    with pytest.raises(ValueError):
        store.has("../../etc/passwd")  # keys are our hashes, never a path


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--set", "colour=1,2"], "not a training option"),
        (["--set", "lr=fast"], "lr takes a float"),
        (["--seeds", "9-2"], "--seeds"),
        (["--measures", "regions_box,wiggle"], "unknown"),
        (["--set", "optimizer=adam,rmsprop"], "--optimizer 'rmsprop'"),
        (["--scheduler", "tcp://127.0.0.1:9"], "no Dask scheduler answers"),
        (["--box", "-1"], "--box -1.0: give a half-width"),
    ],
)
def test_bad_grids_are_one_line_errors(tmp_path, capsys, extra, message):
    from app.cli.main import main

    assert main(["sweep", *ARGS, "--out", str(tmp_path / "bad"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
