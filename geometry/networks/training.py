"""Training small networks to make runs (the bundled demo runs are made with this).

Deterministic for a given seed on a given torch build and thread count: data order comes from a
seeded generator, initialisation from ``torch.manual_seed``. Checkpoints are written atomically and
``run.json`` is rewritten after each one, so a run can be opened while it is still training.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from geometry.networks.checkpoints import save_checkpoint
from geometry.networks.datasets import Dataset
from geometry.errors import CancelledError, NonFiniteWeightsError, SplineAtlasError
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


@torch.no_grad()
def regression_scores(net: Network, X: np.ndarray, y: np.ndarray, batch: int = 4096) -> tuple[float, float]:
    """(MSE, R²) of the network's outputs against float targets ``y`` ((N,) or (N, K); R² = 1 − SSE/SST over
    every target, nan when the targets are constant or there are none)."""
    if len(X) == 0:
        return float("nan"), float("nan")
    out = np.concatenate([net(torch.as_tensor(X[s : s + batch], dtype=torch.float32)).numpy() for s in range(0, len(X), batch)])
    t = y.reshape(len(y), -1).astype(np.float64)
    err = ((out.astype(np.float64) - t) ** 2).sum()
    sst = ((t - t.mean(0)) ** 2).sum()
    return float(err / t.size), float(1 - err / sst) if sst > 0 else float("nan")


def scores(net: Network, dataset: Dataset) -> dict[str, float]:
    """What a checkpoint records about ``dataset``: train/test accuracy (classification) or train/test
    MSE and R² (regression)."""
    if dataset.task == "regress":
        (mse_tr, r2_tr), (mse_te, r2_te) = (regression_scores(net, dataset.X_train, dataset.y_train), regression_scores(net, dataset.X_test, dataset.y_test))
        return {"train_mse": mse_tr, "test_mse": mse_te, "train_r2": r2_tr, "test_r2": r2_te}
    return {"train_accuracy": accuracy(net, dataset.X_train, dataset.y_train), "test_accuracy": accuracy(net, dataset.X_test, dataset.y_test)}


def _recorded(metric: str, value: float):
    """A metric as run.json records it: accuracies to 6 decimals (as runs always have), MSE and R² to 7
    significant digits (small errors keep their precision), nan as null."""
    if metric.endswith("accuracy"):
        return round(value, 6)
    return float(f"{value:.7g}") if np.isfinite(value) else None


def _dataset_inside(reference: dict, out: Path, dataset: Dataset | None = None) -> dict:
    """The run's dataset reference, with an .npz from elsewhere copied into the run folder, and a CSV,
    .npy pair or image folder written there as ``dataset.npz`` (its split kept): a run's files stay
    inside its folder (paths in run.json that leave it are refused when it is opened)."""
    if "converted_from" in reference and dataset is not None:
        import io

        buf = io.BytesIO()
        extra = {"image_shape": np.array(dataset.image_shape, dtype=np.int64)} if dataset.image_shape else {}
        np.savez(
            buf,
            X=dataset.pixels(dataset.X_train),
            y=dataset.y_train,
            X_test=dataset.pixels(dataset.X_test),
            y_test=dataset.y_test,
            class_names=np.array(dataset.class_names, dtype=str),
            **extra,
        )
        write_bytes(out / "dataset.npz", buf.getvalue())
        return {"npz": "dataset.npz", "seed": reference.get("seed", 0)}
    if "npz" not in reference:
        return reference
    src = Path(reference["npz"])
    inside = out / "dataset.npz"
    if src.resolve() != inside.resolve():
        write_bytes(inside, read_bytes(src, "dataset file", MAX_DATASET_BYTES))
    return {**reference, "npz": inside.name}


OPTIMIZERS = ("adam", "adamw", "sgd")
LR_SCHEDULES = ("none", "cosine", "step")


@dataclass(frozen=True)
class TrainingProtocol:
    """How a run is trained: the optimizer (Adam, AdamW, or SGD with ``momentum``), learning rate and its
    schedule (``cosine``: lr₀(1 + cos(π(e−1)/E))/2 in epoch e of E, or ``step``: times ``gamma`` every ``step_size`` epochs,
    default a third of them), weight decay, initialisation (``default`` torch's, ``he`` Kaiming-normal,
    ``xavier`` Glorot-normal, or ``normal:STD``; ``bias_init`` a constant for every bias), a validation
    split carved from the training set (``val_fraction``), and early stopping after ``early_stopping``
    epochs without a validation-loss (else training-loss) improvement above ``min_delta``.

    Sattelberg et al.'s protocol, for instance: ``TrainingProtocol("sgd", lr=..., momentum=0.5,
    weight_decay=0.01)``."""

    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    lr_schedule: str = "none"
    step_size: int = 0
    gamma: float = 0.1
    init: str = "default"
    bias_init: float | None = None
    batch_size: int = 64
    val_fraction: float = 0.0
    early_stopping: int = 0
    min_delta: float = 0.0

    def check(self) -> "TrainingProtocol":
        """Raise a one-line SplineAtlasError naming the option that is out of range."""
        if self.optimizer not in OPTIMIZERS:
            raise SplineAtlasError(f"--optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}.")
        if self.lr_schedule not in LR_SCHEDULES:
            raise SplineAtlasError(f"--lr-schedule {self.lr_schedule!r}: choose one of {', '.join(LR_SCHEDULES)}.")
        for label, value, ok in (
            ("--lr", self.lr, self.lr > 0),
            ("--momentum", self.momentum, 0 <= self.momentum < 1),
            ("--weight-decay", self.weight_decay, self.weight_decay >= 0),
            ("--gamma", self.gamma, 0 < self.gamma <= 1),
            ("--batch-size", self.batch_size, self.batch_size >= 1),
            ("--val-fraction", self.val_fraction, 0 <= self.val_fraction < 1),
            ("--early-stopping", self.early_stopping, self.early_stopping >= 0),
            ("--min-delta", self.min_delta, self.min_delta >= 0),
            ("--step-size", self.step_size, self.step_size >= 0),
        ):
            if not (ok and np.isfinite(value)):
                raise SplineAtlasError(f"{label} {value} is out of range.")
        if self.momentum and self.optimizer != "sgd":
            raise SplineAtlasError("--momentum is an SGD setting; add --optimizer sgd.")
        init_std(self.init)
        return self

    def record(self) -> dict:
        """The protocol as run.json's ``training`` entry records it: optimizer, lr, batch size and weight
        decay always, every other setting where it is not the default (runs made before these options
        keep their exact files)."""
        default = TrainingProtocol()
        out = {"optimizer": self.optimizer, "lr": self.lr, "batch_size": self.batch_size, "weight_decay": self.weight_decay}
        out.update({k: v for k, v in asdict(self).items() if k not in out and v != getattr(default, k)})
        return out


def init_std(init: str) -> float | None:
    """The standard deviation of ``normal:STD`` (None for the named schemes); a bad spelling is refused."""
    if init in ("default", "he", "xavier"):
        return None
    if init.startswith("normal:"):
        try:
            std = float(init.split(":", 1)[1])
        except ValueError:
            std = float("nan")
        if np.isfinite(std) and std > 0:
            return std
    raise SplineAtlasError(f"--init {init!r}: give default, he, xavier or normal:STD with STD > 0 (e.g. normal:0.1).")


def initialise(net: nn.Module, init: str, bias_init: float | None = None) -> None:
    """Re-initialise every Linear/Conv2d weight by ``init`` (after torch.manual_seed: deterministic)."""
    std = init_std(init)
    for m in net.modules():
        if not isinstance(m, (nn.Linear, nn.Conv2d)):
            continue
        with torch.no_grad():
            if init == "he":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif init == "xavier":
                nn.init.xavier_normal_(m.weight)
            elif std is not None:
                nn.init.normal_(m.weight, 0.0, std)
            if bias_init is not None and m.bias is not None:
                m.bias.fill_(float(bias_init))


def _optimizer(net: nn.Module, p: TrainingProtocol):
    if p.optimizer == "sgd":
        return torch.optim.SGD(net.parameters(), lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay)
    if p.optimizer == "adamw":
        return torch.optim.AdamW(net.parameters(), lr=p.lr, weight_decay=p.weight_decay)
    return torch.optim.Adam(net.parameters(), lr=p.lr, weight_decay=p.weight_decay)


def _scheduler(opt, p: TrainingProtocol, epochs: int):
    if p.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs, 1))
    if p.lr_schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=p.step_size or max(epochs // 3, 1), gamma=p.gamma)
    return None


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
    protocol: TrainingProtocol | None = None,
) -> Path:
    """Train ``spec`` on ``dataset`` with cross-entropy (a single logit: BCE; a regression dataset, task
    ``regress``: mean squared error), saving a checkpoint at each of ``save_epochs``.

    ``protocol`` (default: Adam with ``lr``, ``batch_size`` and ``weight_decay``) chooses the optimizer,
    schedule, initialisation, validation split and early stopping. With early stopping, training ends
    after ``protocol.early_stopping`` epochs without improvement and the best weights are restored: the
    run's last checkpoint is the best epoch (saved then, whatever the schedule), run.json's ``training``
    names ``best_epoch`` and ``stopped_epoch``, and checkpoints written after the best epoch stay on disk,
    listed as ``training.after_best``. Returns the path of ``run.json``.
    """
    p = (protocol or TrainingProtocol(lr=lr, batch_size=batch_size, weight_decay=weight_decay)).check()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    net = Network(spec)
    if p.init != "default" or p.bias_init is not None:
        initialise(net, p.init, p.bias_init)
    regress = dataset.task == "regress"
    dataset.check_fits(net.input_dim, net.output_dim if regress else net.num_classes)
    save_at = set(save_epochs if save_epochs is not None else save_schedule(epochs, 1))
    X = torch.as_tensor(dataset.X_train, dtype=torch.float32)
    y = torch.as_tensor(dataset.y_train, dtype=torch.float32 if regress else torch.int64)
    if regress:
        y = y.reshape(len(y), -1)
    X_val = y_val = None
    if p.val_fraction > 0:
        order = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed + 1))
        n_val = max(1, int(round(p.val_fraction * len(X))))
        if n_val >= len(X):
            raise SplineAtlasError(f"--val-fraction {p.val_fraction} leaves no training points ({len(X)} in all).")
        X_val, y_val, X, y = X[order[:n_val]], y[order[:n_val]], X[order[n_val:]], y[order[n_val:]]
    opt = _optimizer(net, p)
    sched = _scheduler(opt, p, epochs)
    batch_size = p.batch_size
    binary = net.output_dim == 1 and not regress
    loss_fn = nn.MSELoss() if regress else nn.BCEWithLogitsLoss() if binary else nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    entries: list[dict] = []
    manifest = {
        "format": RUN_FORMAT,
        "name": name or out.name,
        "architecture": net.spec,
        "checkpoints": entries,
        "dataset": _dataset_inside(dataset.reference, out, dataset),
        "class_names": dataset.class_names,
        "training": {**p.record(), "seed": seed, "epochs": epochs},
    }
    if regress:
        manifest["task"] = "regress"
        del manifest["class_names"]
    if dataset.preprocessing is not None:  # the dataset's files hold raw data; opening the run applies this
        manifest["preprocessing"] = dataset.preprocessing.as_dict()

    def loss_on(Xs, ys) -> float:
        with torch.no_grad():
            o = net(Xs)
            return float(loss_fn(o[:, 0], ys.float()) if binary else loss_fn(o, ys))

    def checkpoint(epoch: int, loss: float, val_loss: float | None = None, lr_used: float | None = None) -> None:
        net.eval()
        metrics = {
            "epoch": epoch,
            "loss": round(loss, 6),
            **({"lr": float(f"{lr_used:.6g}")} if lr_used is not None else {}),
            **{k: _recorded(k, v) for k, v in scores(net, dataset).items()},
        }
        if val_loss is not None:
            metrics["val_loss"] = round(val_loss, 6)
        fname = f"epoch_{epoch:04d}.pt"
        save_checkpoint(out / fname, net, **metrics)
        entries[:] = [e for e in entries if e["epoch"] != epoch] + [{"path": fname, **metrics}]
        entries.sort(key=lambda e: e["epoch"])
        write_text(out / "run.json", json.dumps(manifest, indent=1))

    loss_value = float("nan")
    if 0 in save_at:
        checkpoint(0, loss_value, loss_on(X_val, y_val) if X_val is not None else None)
    best = (float("inf"), 0, None, float("nan"), None)  # (monitored loss, epoch, weights, training loss, lr)
    since_best = 0
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
        lr_used = opt.param_groups[0]["lr"]
        if sched is not None:
            sched.step()
        if not np.isfinite(loss_value):
            raise NonFiniteWeightsError(f"training diverged at epoch {epoch} (loss is {loss_value}); lower --lr.")
        net.eval()
        val_loss = loss_on(X_val, y_val) if X_val is not None else None
        if epoch in save_at:  # the epoch's learning rate is recorded when a schedule changes it
            checkpoint(epoch, loss_value, val_loss, lr_used if sched is not None else None)
        if progress is not None:
            progress(epoch / epochs, f"epoch {epoch}/{epochs} loss {loss_value:.4f}" + (f" val {val_loss:.4f}" if val_loss is not None else ""))
        if p.early_stopping:
            monitored = val_loss if val_loss is not None else loss_value
            if monitored < best[0] - p.min_delta:
                best = (monitored, epoch, {k: v.detach().clone() for k, v in net.state_dict().items()}, loss_value, lr_used if sched else None)
                since_best = 0
            else:
                since_best += 1
            if since_best >= p.early_stopping:
                net.load_state_dict(best[2])  # restore the best weights: the run ends with them
                checkpoint(best[1], best[3], best[0] if val_loss is not None else None, best[4])
                manifest["training"].update(best_epoch=best[1], stopped_epoch=epoch)
                _end_with_best(manifest, best[1])
                write_text(out / "run.json", json.dumps(manifest, indent=1))
                break
    return out / "run.json"


def _end_with_best(manifest: dict, best_epoch: int) -> None:
    """After early stopping the run's checkpoints end at the best epoch (the restored weights); those saved
    later stay on disk as files and are listed in ``training.after_best``, not as checkpoints of the run."""
    later = [e for e in manifest["checkpoints"] if e["epoch"] > best_epoch]
    manifest["checkpoints"] = [e for e in manifest["checkpoints"] if e["epoch"] <= best_epoch]
    if later:
        manifest["training"]["after_best"] = [e["path"] for e in later]
