"""Training protocols (#18): optimizer, momentum, weight decay, schedules, initialisation, validation split
and early stopping with the best epoch restored -- each checked against a straightforward computation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from geometry.networks.checkpoints import load_checkpoint
from geometry.networks.datasets import builtin_dataset
from geometry.networks.spec import mlp_spec
from geometry.networks.training import TrainingProtocol, train_run


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _weights(path):
    return {k: v.clone() for k, v in load_checkpoint(path).state_dict().items()}


def test_initialisation_schemes_give_the_documented_weights(tmp_path):
    ds = builtin_dataset("moons", n=200, seed=0)
    spec = mlp_spec([2, 400, 400, 2])
    for init, want in (("he", np.sqrt(2 / 400)), ("xavier", np.sqrt(2 / 800)), ("normal:0.3", 0.3)):
        run = train_run(ds, spec, tmp_path / init.replace(":", "_"), epochs=1, save_epochs=[0], protocol=TrainingProtocol(init=init, bias_init=0.25))
        w = _weights(run.parent / "epoch_0000.pt")
        assert abs(float(w["layers.2.weight"].std()) / want - 1) < 0.02, init  # the 400x400 layer
        assert all(torch.all(v == 0.25) for k, v in w.items() if k.endswith("bias"))


def test_one_sgd_step_with_momentum_and_weight_decay_is_the_textbook_update(tmp_path):
    """With one batch per epoch, epoch 1's weights are w0 - lr (g + wd w0) (the momentum buffer starts at
    the gradient) and epoch 2's add momentum times that buffer."""
    ds = builtin_dataset("moons", n=100, seed=0, test_fraction=0.2)
    spec = mlp_spec([2, 8, 2])
    lr, mom, wd = 0.1, 0.5, 0.01
    p = TrainingProtocol("sgd", lr=lr, momentum=mom, weight_decay=wd, batch_size=10_000)
    run = train_run(ds, spec, tmp_path / "sgd", epochs=2, save_epochs=[0, 1, 2], protocol=p)
    net = load_checkpoint(run.parent / "epoch_0000.pt")
    X = torch.as_tensor(ds.X_train, dtype=torch.float32)
    y = torch.as_tensor(ds.y_train)
    buf = {}
    for epoch in (1, 2):
        net.zero_grad()
        torch.nn.functional.cross_entropy(net(X), y).backward()
        with torch.no_grad():
            for name, w in net.named_parameters():
                g = w.grad + wd * w
                buf[name] = g.clone() if name not in buf else mom * buf[name] + g
                w -= lr * buf[name]
        got = _weights(run.parent / f"epoch_{epoch:04d}.pt")
        for name, w in net.named_parameters():
            torch.testing.assert_close(got[name], w, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize(
    ("schedule", "want"), [("cosine", lambda e: 0.05 * (1 + np.cos(np.pi * (e - 1) / 6)) / 2), ("step", lambda e: 0.05 * 0.1 ** ((e - 1) // 2))]
)
def test_learning_rate_schedules(tmp_path, schedule, want):
    ds = builtin_dataset("moons", n=100, seed=0)
    p = TrainingProtocol(lr=0.05, lr_schedule=schedule, step_size=2)
    run = train_run(ds, mlp_spec([2, 8, 2]), tmp_path / schedule, epochs=6, save_epochs=list(range(1, 7)), protocol=p)
    got = [c["lr"] for c in json.loads(run.read_text())["checkpoints"]]
    np.testing.assert_allclose(got, [want(e) for e in range(1, 7)], rtol=1e-5, atol=1e-12)


def test_early_stopping_restores_the_best_epoch(tmp_path):
    ds = builtin_dataset("moons", n=120, seed=0, noise=0.5)  # noisy and small: a wide net overfits
    p = TrainingProtocol(lr=0.02, val_fraction=0.4, early_stopping=4)
    run = train_run(ds, mlp_spec([2, 128, 128, 2]), tmp_path / "es", epochs=300, protocol=p)
    d = json.loads(run.read_text())
    t = d["training"]
    assert t["stopped_epoch"] < 300 and t["stopped_epoch"] - t["best_epoch"] == 4
    val = {c["epoch"]: c["val_loss"] for c in d["checkpoints"]}
    assert d["checkpoints"][-1]["epoch"] == t["best_epoch"] == min(val, key=val.get)
    assert all(f"epoch_{e:04d}.pt" in t["after_best"] for e in range(t["best_epoch"] + 1, t["stopped_epoch"] + 1))
    from geometry.networks.runs import open_run

    r = open_run(run)
    assert r.epochs[-1] == t["best_epoch"]


def test_bad_protocols_are_one_line_errors(tmp_path, capsys):
    from app.cli.main import main

    out = str(tmp_path / "r")
    for extra, says in (
        (["--momentum", "0.9"], "--momentum is an SGD setting"),
        (["--init", "normal:x"], "--init 'normal:x'"),
        (["--val-fraction", "1.5"], "--val-fraction"),
    ):
        assert main(["train", "--dataset", "moons", "--arch", "2-4-2", "--epochs", "1", "--out", out, *extra]) == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err
