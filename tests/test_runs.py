"""Runs: manifests, folders, single files, reload while training, gaps and mixed architectures."""

import json

import pytest
import torch

from geometry.networks.checkpoints import save_checkpoint
from geometry.networks.datasets import builtin_dataset
from geometry.errors import DatasetError, RunError
from geometry.networks.network import Network
from geometry.networks.runs import open_run
from geometry.networks.spec import mlp_spec
from geometry.networks.training import save_schedule, train_run


def _folder(tmp_path, epochs, widths=(2, 4, 3)):
    for e in epochs:
        torch.manual_seed(e)
        save_checkpoint(tmp_path / f"epoch_{e:04d}.pt", Network(mlp_spec(list(widths))))
    return tmp_path


def test_demo_runs_open(spirals_run_path, digits_run_path):
    sp = open_run(spirals_run_path)
    assert sp.network(0).input_dim == 2 and len(sp) > 40 and sp.dataset.name == "spirals"
    assert sp.metrics("train_accuracy")[-1] > 0.95
    dg = open_run(digits_run_path)
    assert dg.network(-1).input_shape == (1, 8, 8) and dg.class_names[3] == "3"


def test_folder_run_with_embedded_specs_and_epoch_lookup(tmp_path):
    run = open_run(_folder(tmp_path, [0, 5, 10, 15]))
    assert run.epochs == [0, 5, 10, 15] and run.index_of_epoch(12) == 2
    assert run.checkpoint_hash(0) != run.checkpoint_hash(1)


def test_folder_of_plain_state_dicts_beside_architecture_json(tmp_path):
    spec = mlp_spec([2, 4, 3])
    (tmp_path / "architecture.json").write_text(json.dumps(spec))
    nets = {}
    for e in (0, 1, 2):
        torch.manual_seed(10 + e)
        nets[e] = Network(spec)
        torch.save(nets[e].layers.state_dict(), tmp_path / f"step_{e:03d}.pth")
    run = open_run(tmp_path)
    assert run.epochs == [0, 1, 2]
    x = torch.randn(7, 2)
    with torch.no_grad():
        for i, e in enumerate(run.epochs):
            assert torch.allclose(run.network(i)(x), nets[e](x))


def test_manifest_with_an_empty_name_takes_the_folder_name(tmp_path):
    run_dir = tmp_path / "my-run"
    run_dir.mkdir()
    _folder(run_dir, [0])
    (run_dir / "run.json").write_text(
        json.dumps({"format": "splineatlas-run/1", "name": "", "architecture": mlp_spec([2, 4, 3]), "checkpoints": [{"path": "epoch_0000.pt", "epoch": 0}]})
    )
    assert open_run(run_dir).name == "my-run"


def test_folder_with_gaps_is_reported(tmp_path):
    _folder(tmp_path, [0, 5, 10, 20, 25])
    with pytest.raises(RunError, match=r"gaps: no checkpoint for epoch\(s\) 15"):
        open_run(tmp_path)
    assert open_run(tmp_path, allow_gaps=True).warnings


def test_mixed_architectures_are_refused(tmp_path):
    _folder(tmp_path, [0, 1])
    save_checkpoint(tmp_path / "epoch_0002.pt", Network(mlp_spec([2, 5, 3])))
    with pytest.raises(RunError, match="mixes architectures: epoch_0002.pt"):
        open_run(tmp_path)


def test_manifest_problems(tmp_path):
    (tmp_path / "run.json").write_text("{not json")
    with pytest.raises(RunError, match="not valid JSON"):
        open_run(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({"architecture": mlp_spec([2, 3, 2]), "checkpoints": [{"path": "x.pt", "epoch": 0}]}))
    with pytest.raises(RunError, match="does not exist"):
        open_run(tmp_path)
    with pytest.raises(RunError, match="no run.json"):
        open_run(tmp_path / ".." / tmp_path.name / "..")


def test_run_can_be_reloaded_while_training(tmp_path):
    ds = builtin_dataset("moons", n=200, seed=1)
    seen = []

    def progress(frac, msg):
        if frac >= 0.5 and not seen:
            seen.append(open_run(tmp_path / "run"))

    train_run(ds, mlp_spec([2, 8, 2]), tmp_path / "run", epochs=6, save_epochs=save_schedule(6, 1), progress=progress)
    partial = seen[0]
    n = len(partial)
    assert 1 <= n < 7
    assert partial.reload() == 7 - n and partial.epochs[-1] == 6


def test_truncated_newest_checkpoint_is_skipped_with_warning(tmp_path):
    _folder(tmp_path, [0, 1, 2])
    data = (tmp_path / "epoch_0002.pt").read_bytes()
    (tmp_path / "epoch_0002.pt").write_bytes(data[:100])
    run = open_run(tmp_path)
    assert run.epochs == [0, 1] and "still being written" in run.warnings[0]


def test_dataset_that_does_not_fit(tmp_path):
    run = open_run(_folder(tmp_path, [0, 1], widths=(3, 4, 2)))
    with pytest.raises(DatasetError, match="3"):
        run.attach_dataset(builtin_dataset("moons", n=50))


def test_training_is_deterministic(tmp_path):
    ds = builtin_dataset("circles", n=100, seed=0)
    for name in ("a", "b"):
        train_run(ds, mlp_spec([2, 6, 2]), tmp_path / name, epochs=3, save_epochs=[3], seed=4)
    assert (tmp_path / "a" / "epoch_0003.pt").read_bytes() == (tmp_path / "b" / "epoch_0003.pt").read_bytes()


def test_a_batchnorm_run_reopens_and_a_lone_mismatch_is_not_called_mixed(tmp_path):
    """The loader drops BatchNorm's num_batches_tracked; the run check used to demand it, so a BN run
    written by `splineatlas train --batchnorm` could not be reopened."""
    ds = builtin_dataset("moons", n=80, seed=0)
    train_run(ds, mlp_spec([2, 6, 2], batchnorm=True), tmp_path / "bn", epochs=2, save_epochs=[0, 2])
    run = open_run(tmp_path / "bn")
    assert len(run) == 2 and run.network(1).num_parameters() > 0
    manifest = json.loads((tmp_path / "bn" / "run.json").read_text())
    manifest["architecture"] = mlp_spec([2, 7, 2], batchnorm=True)
    (tmp_path / "bn" / "run.json").write_text(json.dumps(manifest))
    with pytest.raises(RunError) as exc:
        open_run(tmp_path / "bn")
    assert "mixes" not in str(exc.value) and "mis-shaped 0.weight (6, 2) vs (7, 2)" in str(exc.value)


@pytest.mark.parametrize(
    "names",
    [
        ["model_epoch_1.pth", "model_epoch_2.pth", "model_epoch_3.pth"],
        ["ckpt_epoch=1.pt", "ckpt_epoch=2.pt", "ckpt_epoch=3.pt"],
        ["epoch=1-step=40.ckpt", "epoch=2-step=80.ckpt", "epoch=3-step=120.ckpt"],
        ["checkpoint-1.pt", "checkpoint-2.pt", "checkpoint-3.pt"],
    ],
)
def test_run_folders_named_as_trainers_name_them(tmp_path, names):
    """Trainers' own file names (#16), with Lightning-style checkpoints: weights under state_dict with a
    "model." prefix, an EMA copy beside them, hyper-parameters and an epoch."""
    import json

    from geometry.networks.runs import open_run
    from geometry.networks.spec import build_sequential, mlp_spec

    spec = mlp_spec([2, 4, 3])
    (tmp_path / "architecture.json").write_text(json.dumps(spec))
    for e, n in enumerate(names, start=1):
        torch.manual_seed(e)
        sd = build_sequential(spec["layers"]).state_dict()
        torch.save(
            {"epoch": e, "global_step": 40 * e, "state_dict": {"model." + k: v for k, v in sd.items()}, "ema": {k: v * 0 for k, v in sd.items()}}, tmp_path / n
        )
    run = open_run(tmp_path)
    assert run.epochs == [1, 2, 3]
    torch.manual_seed(2)
    want = build_sequential(spec["layers"]).state_dict()
    got = run.network(1).layers.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want)  # the raw weights, not the EMA copy
