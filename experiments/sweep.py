"""One sweep task: train a network of the grid (or, with zero epochs, only initialise it), save it as a
run, and measure it. Runs in a Dask worker (:func:`experiments.cluster.execute`) or in this process."""

from __future__ import annotations

from pathlib import Path

from geometry.errors import DatasetError

from experiments.measures import DEFAULT_SETTINGS, measure
from experiments.store import task_key

RUNS_KEY = "runs"  # payload entry naming the folder runs are saved in (not part of the task's key)


def sweep_dataset(ref: dict):
    """The dataset a payload names: a built-in reference, or a file checked against its fingerprint."""
    from geometry.networks.datasets import builtin_dataset

    if "builtin" in ref:
        params = {k: v for k, v in ref.items() if k != "builtin"}
        return builtin_dataset(ref["builtin"], **params)
    from geometry.networks.dataset_files import load_dataset_file

    from experiments.grid import file_fingerprint

    if file_fingerprint(ref["file"]) != ref["sha256"]:
        raise DatasetError(f"dataset file {Path(ref['file']).name} changed since the sweep was planned; rerun the sweep command.")
    return load_dataset_file(ref["file"], seed=int(ref.get("seed", 0)), task=ref.get("task", "classify"))


def sweep_task(payload: dict) -> dict:
    """Train and measure one (cell, seed); returns its table row (cell columns, seed, measures)."""
    from geometry.networks.runs import open_run
    from geometry.networks.spec import parse_arch_string
    from geometry.networks.training import TrainingProtocol, train_run

    body = {k: v for k, v in payload.items() if k != RUNS_KEY}
    key = task_key(body)
    ds = sweep_dataset(payload["dataset"])
    spec = parse_arch_string(payload["arch"], payload["activation"], payload["batchnorm"])
    epochs = int(payload["epochs"])
    folder = Path(payload[RUNS_KEY]) / key[:16]
    manifest = train_run(
        ds, spec, folder, epochs=epochs, save_epochs=sorted({0, epochs}), seed=int(payload["seed"]), protocol=TrainingProtocol(**payload["protocol"])
    )
    run = open_run(manifest)
    net = run.network(-1)
    settings = {**DEFAULT_SETTINGS, **payload["settings"]}
    row = {"key": key, **payload["cell"], "seed": int(payload["seed"]), "epochs": epochs, "run": str(folder)}
    training = run_training_facts(manifest)
    row.update(training)
    notes = []
    for name in payload["measures"]:
        values, why = measure(name, run, net, run.dataset, settings)
        row.update(values)
        if why:
            notes.append(why)
    if notes:
        row["notes"] = "; ".join(notes)
    return row


def run_training_facts(manifest: Path) -> dict:
    """Early stopping's best and last epoch, when the run stopped early."""
    import json

    t = json.loads(Path(manifest).read_text()).get("training", {})
    return {k: int(t[k]) for k in ("best_epoch", "stopped_epoch") if k in t}
