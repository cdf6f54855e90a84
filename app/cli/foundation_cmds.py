"""``splineatlas info`` and ``splineatlas train``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from geometry.networks.datasets import BUILTIN, REGRESSION_BUILTIN, builtin_dataset
from app.cli.common import add_trust_argument
from geometry.errors import ArchitectureError, DatasetError
from geometry.networks.preprocessing import parse_preprocessing
from geometry.networks.runs import open_run
from geometry.networks.spec import load_spec_file, parse_arch_string


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="print a run's or checkpoint's architecture, epochs and accuracy")
    p.add_argument("path", help="run.json, run folder, or checkpoint file")
    add_trust_argument(p)
    p.add_argument("--allow-gaps", action="store_true", help="open a run folder even if epochs are missing")
    p.add_argument("--dataset", help="built-in dataset name or .npz to measure accuracy on (default: the run's)")
    p.add_argument("--no-accuracy", action="store_true", help="skip evaluating every checkpoint")
    add_preprocess_argument(p)
    p.set_defaults(func=cmd_info)

    t = sub.add_parser("train", help="train a small network and write a run (checkpoints + run.json)")
    t.add_argument("--dataset", required=True, help=f"built-in ({', '.join(BUILTIN)}), an .npz, a .csv, X.npy (+ y.npy) or an image folder (CLASS/*.png)")
    t.add_argument("--arch", required=True, help="MLP widths like 2-64-64-3, 'digits-cnn', or an architecture .json")
    t.add_argument(
        "--task", choices=["classify", "regress"], default=None, help="classify (labels) or regress (float targets, MSE loss; default: the dataset's kind)"
    )
    t.add_argument("--epochs", "--max-epochs", dest="epochs", type=int, default=200, help="epochs (with --early-stopping: the most)")
    t.add_argument("--save-every", type=int, default=None, help="save every N epochs (default 1)")
    t.add_argument("--log-checkpoints", type=int, default=None, help="save N log-spaced checkpoints (with --save-every: both schedules)")
    t.add_argument("--out", required=True, help="output folder of the run")
    add_protocol_arguments(t)
    t.add_argument("--batchnorm", action="store_true", help="batch norm after each hidden linear layer (MLPs)")
    t.add_argument("--activation", default="relu", choices=["relu", "leaky_relu", "abs"])
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--samples", type=int, default=1000, help="size of a built-in 2D toy dataset")
    t.add_argument("--noise", type=float, default=None, help="noise of a built-in 2D toy dataset")
    t.add_argument("--arms", type=int, default=3, help="arms of the spirals dataset")
    add_preprocess_argument(t)
    t.set_defaults(func=cmd_train)


def add_preprocess_argument(p: argparse.ArgumentParser) -> None:
    """``--preprocess JSON|FILE``: resize and per-channel mean/std of the network's inputs."""
    p.add_argument(
        "--preprocess",
        metavar="JSON",
        help='input preprocessing, JSON or a .json file: \'{"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25], "resize": [32, 32]}\' '
        "(train: recorded in run.json; info: replaces the run's)",
    )


def add_protocol_arguments(t: argparse.ArgumentParser) -> None:
    """The training protocol's options (:class:`TrainingProtocol`), shared by ``train`` and ``sweep``."""
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--batch-size", type=int, default=64)
    t.add_argument("--weight-decay", type=float, default=0.0)
    t.add_argument("--optimizer", default="adam", choices=["adam", "adamw", "sgd"], help="optimizer (default adam)")
    t.add_argument("--momentum", type=float, default=0.0, help="SGD momentum (with --optimizer sgd)")
    t.add_argument("--lr-schedule", default="none", choices=["none", "cosine", "step"], help="cosine to 0 over the epochs, or step (see --step-size)")
    t.add_argument("--step-size", type=int, default=0, help="step schedule: epochs between decays (default: a third of --epochs)")
    t.add_argument("--gamma", type=float, default=0.1, help="step schedule: factor per decay (default 0.1)")
    t.add_argument("--init", default="default", help="weights: default (torch's), he, xavier or normal:STD")
    t.add_argument("--bias-init", type=float, default=None, help="every bias set to this constant")
    t.add_argument("--val-fraction", type=float, default=0.0, help="fraction of the training set held out for validation (val_loss per checkpoint)")
    t.add_argument(
        "--early-stopping", type=int, default=0, metavar="PATIENCE", help="stop after PATIENCE epochs without improvement; the run ends with the best epoch"
    )
    t.add_argument("--min-delta", type=float, default=0.0, help="early stopping: the smallest loss decrease that counts")


def protocol_from_args(args):
    """The :class:`TrainingProtocol` of the options :func:`add_protocol_arguments` added (checked)."""
    from geometry.networks.training import TrainingProtocol

    return TrainingProtocol(
        optimizer=args.optimizer,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        lr_schedule=args.lr_schedule,
        step_size=args.step_size,
        gamma=args.gamma,
        init=args.init,
        bias_init=args.bias_init,
        batch_size=args.batch_size,
        val_fraction=args.val_fraction,
        early_stopping=args.early_stopping,
        min_delta=args.min_delta,
    ).check()


def _dataset(name: str, samples: int = 1000, noise=None, seed: int = 0, arms: int = 3, task: str | None = None, resize=None):
    if name not in BUILTIN:  # a path: .npz, .csv, X.npy (+ y.npy) or an image folder
        from geometry.networks.dataset_files import load_dataset_file

        return load_dataset_file(name, seed=seed, task=task or "classify", resize=resize)
    if task is not None and (task == "regress") != (name in REGRESSION_BUILTIN):
        kind = "regression" if name in REGRESSION_BUILTIN else "classification"
        raise DatasetError(f"--dataset {name} is a {kind} dataset; drop --task {task} (built-in regression sets: {', '.join(REGRESSION_BUILTIN)}).")
    extra = {"arms": arms} if name == "spirals" else {}
    if name == "digits":
        return builtin_dataset("digits", seed=seed)
    return builtin_dataset(name, n=samples, noise=noise, seed=seed, **extra)


def _spec(arch: str, batchnorm: bool, activation: str) -> dict:
    return load_spec_file(arch) if arch.endswith(".json") else parse_arch_string(arch, activation, batchnorm)


def cmd_train(args) -> int:
    from tqdm import tqdm

    from geometry.networks.training import save_schedule, train_run

    prep = parse_preprocessing(args.preprocess)
    ds = _dataset(args.dataset, args.samples, args.noise, args.seed, args.arms, args.task, prep.resize if prep else None)
    if prep is not None:
        ds = prep.apply(ds)
    spec = _spec(args.arch, args.batchnorm, args.activation)
    if args.epochs < 1:
        raise ArchitectureError("--epochs must be at least 1.")
    schedule = save_schedule(args.epochs, args.save_every, args.log_checkpoints)
    protocol = protocol_from_args(args)
    bar = tqdm(total=args.epochs, unit="epoch", file=sys.stderr, disable=None)

    def progress(frac: float, msg: str) -> None:
        bar.n = round(frac * args.epochs)
        bar.set_postfix_str(msg.split("loss")[-1].strip() and "loss" + msg.split("loss")[-1])
        bar.refresh()

    try:
        manifest = train_run(
            ds,
            spec,
            args.out,
            epochs=args.epochs,
            save_epochs=schedule,
            seed=args.seed,
            progress=progress,
            protocol=protocol,
        )
    finally:
        bar.close()
    run = open_run(manifest)
    last = run.checkpoints[-1].metrics
    if run.task == "regress":
        final = f"final train MSE {last.get('train_mse'):.4g} (R² {last.get('train_r2'):.4f}), test MSE {last.get('test_mse'):.4g}"
    else:
        final = f"final train accuracy {last.get('train_accuracy'):.3f}, test accuracy {last.get('test_accuracy'):.3f}"
    print(f"wrote {manifest} ({len(run)} checkpoints); {final}")
    stopped = json.loads(Path(manifest).read_text()).get("training", {})
    if "best_epoch" in stopped:
        print(f"early stopping at epoch {stopped['stopped_epoch']}: the run ends with the best epoch, {stopped['best_epoch']}")
    return 0


def cmd_info(args) -> int:
    from geometry.networks.training import scores

    run = open_run(args.path, trust_code=args.trust_code, allow_gaps=args.allow_gaps)
    if args.preprocess:
        run.preprocessing = parse_preprocessing(args.preprocess)
    net = run.network(len(run) - 1)
    print(f"run:          {run.name}  ({run.source})")
    print(f"input shape:  {list(net.input_shape)}  (D = {net.input_dim})")
    if run.task == "generate":
        print(f"task:         generator, {net.input_dim} latent inputs -> R^{net.output_dim} (splineatlas generate samples its manifold)")
    elif run.task == "regress":
        print(f"task:         regression, {net.output_dim} output(s); boundary tools trace the {run.boundary_name} (--level)")
    else:
        print(f"classes:      {net.num_classes}  {run.class_names}")
    print(f"parameters:   {net.num_parameters():,}")
    bad = net.first_smooth_layer
    print("piecewise-affine: yes" if bad is None else f"piecewise-affine: no (layer {bad.path} is {bad.kind})")
    print(f"nonlinear layers: {net.depth}  widths {[li.width for li in net.layer_infos]}")
    print("architecture:")
    print("  " + net.summary().replace("\n", "\n  "))
    from app.render.report import layer_lines

    print("layers:")
    for line in layer_lines(net.layer_table()):
        print("  " + line)
    eps = run.epochs
    print(f"checkpoints:  {len(run)}  epochs {eps[0]}..{eps[-1]}")
    for w in run.warnings:
        print(f"warning: {w}")
    resize = run.preprocessing.resize if run.preprocessing is not None else None
    ds = _dataset(args.dataset, task="regress" if run.data_task == "regress" else None, resize=resize) if args.dataset else run.dataset
    if ds is not None and args.dataset:
        run.attach_dataset(ds)
        ds = run.dataset  # with the run's preprocessing applied
    if args.no_accuracy or ds is None:
        if ds is None:
            print("dataset:      none (pass --dataset to measure accuracy)")
        return 0
    print(f"dataset:      {ds.name}  train {len(ds.X_train)}  test {len(ds.X_test)}")
    if ds.preprocessing is not None:
        print(f"preprocessing: {json.dumps(ds.preprocessing.as_dict())}")
    columns = ("train_mse", "test_mse", "train_r2", "test_r2") if run.data_task == "regress" else ("train_accuracy", "test_accuracy")
    heads = {"train_mse": "train MSE", "test_mse": "test MSE", "train_r2": "train R²", "test_r2": "test R²"}
    heads |= {"train_accuracy": "train acc", "test_accuracy": "test acc"}
    style = ".4g" if run.data_task == "regress" else ".4f"
    print(f"{'epoch':>7}  " + "  ".join(f"{heads[c]:>9}" for c in columns))
    for i, ref in enumerate(run.checkpoints):
        got = scores(run.network(i, at_level=False), ds)
        print(f"{ref.epoch:>7}  " + "  ".join(f"{got[c]:>9{style}}" for c in columns))
    return 0
