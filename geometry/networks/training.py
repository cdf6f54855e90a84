"""Training small networks to make runs (the bundled demo runs are made with this).

Deterministic for a given seed on a given torch build and thread count: data order comes from a
seeded generator, initialisation from ``torch.manual_seed``. Checkpoints are written atomically and
``run.json`` is rewritten after each one, so a run can be opened while it is still training.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from geometry.networks.checkpoints import save_checkpoint
from geometry.networks.datasets import Dataset
from geometry.errors import CancelledError, NonFiniteWeightsError
from geometry.safe_io import MAX_DATASET_BYTES, read_bytes, write_bytes, write_text
from geometry.networks.network import Network, predicted_classes
from geometry.networks.runs import RUN_FORMAT


def save_schedule(epochs: int, save_every: int | None = None, log_points: int | None = None) -> list[int]:
    """Epochs at which to save (always 0 and the last): every ``save_every`` epochs, ``log_points`` log-spaced
    ones, or the union of both when both are given (neither: every epoch)."""
    at = {0, epochs}
    if log_points:
        at |= set(np.unique(np.round(np.geomspace(1, epochs, log_points - 1)).astype(int)).tolist())
    if save_every or not log_points:
        at |= set(range(0, epochs + 1, max(1, save_every or 1)))
    return sorted(at)


@torch.no_grad()
def accuracy(net: Network, X: np.ndarray, y: np.ndarray, batch: int = 4096) -> float:
    """Fraction of ``X`` classified as ``y`` (single-logit nets: logit > 0 means class 1)."""
    if len(X) == 0:
        return float("nan")
    correct = 0
    for s in range(0, len(X), batch):
        out = net(torch.as_tensor(X[s : s + batch], dtype=torch.float32))
        correct += int((predicted_classes(out).numpy() == y[s : s + batch]).sum())
    return correct / len(X)


def _dataset_inside(reference: dict, out: Path) -> dict:
    """The run's dataset reference, with an .npz from elsewhere copied into the run folder: a run's files
    stay inside its folder (paths in run.json that leave it are refused when it is opened)."""
    if "npz" not in reference:
        return reference
    src = Path(reference["npz"])
    inside = out / "dataset.npz"
    if src.resolve() != inside.resolve():
        write_bytes(inside, read_bytes(src, "dataset file", MAX_DATASET_BYTES))
    return {**reference, "npz": inside.name}


def train_run(
    dataset: Dataset,
    spec: dict,
    out_dir: str | Path,
    epochs: int = 200,
    save_epochs: list[int] | None = None,
    lr: float = 1e-3,
    batch_size: int = 64,
    weight_decay: float = 0.0,
    seed: int = 0,
    name: str | None = None,
    progress: Callable[[float, str], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Path:
    """Train ``spec`` on ``dataset`` with Adam and cross-entropy, saving a checkpoint at each of ``save_epochs``.

    Returns the path of the written ``run.json``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    net = Network(spec)
    dataset.check_fits(net.input_dim, net.num_classes)
    save_at = set(save_epochs if save_epochs is not None else save_schedule(epochs, 1))
    X = torch.as_tensor(dataset.X_train, dtype=torch.float32)
    y = torch.as_tensor(dataset.y_train, dtype=torch.int64)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    binary = net.output_dim == 1
    loss_fn = nn.BCEWithLogitsLoss() if binary else nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    entries: list[dict] = []
    manifest = {
        "format": RUN_FORMAT,
        "name": name or out.name,
        "architecture": net.spec,
        "checkpoints": entries,
        "dataset": _dataset_inside(dataset.reference, out),
        "class_names": dataset.class_names,
        "training": {"optimizer": "adam", "lr": lr, "batch_size": batch_size, "weight_decay": weight_decay, "seed": seed, "epochs": epochs},
    }

    def checkpoint(epoch: int, loss: float) -> None:
        net.eval()
        metrics = {
            "epoch": epoch,
            "loss": round(loss, 6),
            "train_accuracy": round(accuracy(net, dataset.X_train, dataset.y_train), 6),
            "test_accuracy": round(accuracy(net, dataset.X_test, dataset.y_test), 6),
        }
        fname = f"epoch_{epoch:04d}.pt"
        save_checkpoint(out / fname, net, **metrics)
        entries.append({"path": fname, **metrics})
        write_text(out / "run.json", json.dumps(manifest, indent=1))

    loss_value = float("nan")
    if 0 in save_at:
        checkpoint(0, loss_value)
    for epoch in range(1, epochs + 1):
        if cancel is not None and cancel():
            raise CancelledError(f"training cancelled at epoch {epoch}; checkpoints so far are in {out}.")
        net.train()
        perm = torch.randperm(len(X), generator=gen)
        total = 0.0
        for s in range(0, len(X), batch_size):
            idx = perm[s : s + batch_size]
            out_b = net(X[idx])
            loss = loss_fn(out_b[:, 0], y[idx].float()) if binary else loss_fn(out_b, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        loss_value = total / len(X)
        if not np.isfinite(loss_value):
            raise NonFiniteWeightsError(f"training diverged at epoch {epoch} (loss is {loss_value}); lower --lr.")
        if epoch in save_at:
            checkpoint(epoch, loss_value)
        if progress is not None:
            progress(epoch / epochs, f"epoch {epoch}/{epochs} loss {loss_value:.4f}")
    return out / "run.json"
