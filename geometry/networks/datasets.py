"""Datasets: ``.npz`` files and built-in sets (2D toys and scikit-learn's bundled 8x8 digits). No downloads.

A :class:`Dataset` holds a train and a test split as float32 features ``(N, D)`` and int64 labels, or, for
a regression task (``task="regress"``), float32 targets ``(N,)`` or ``(N, K)``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geometry.errors import DatasetError
from geometry.safe_io import MAX_DATASET_BYTES, name, printable, read_npz, resolve_member

BUILTIN = ("moons", "circles", "spirals", "star", "digits", "paraboloid")
REGRESSION_BUILTIN = ("paraboloid",)


@dataclass(frozen=True)
class Dataset:
    """X_train: (N, D) float32; y_train: (N,) int64 class indices (task ``classify``) or float32 targets
    (N,) / (N, K) (task ``regress``); same for test. image_shape e.g. (1, 8, 8) or None."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str] = field(default_factory=list)
    image_shape: tuple[int, ...] | None = None
    reference: dict = field(default_factory=dict)  # how to recreate it (goes into run.json)
    task: str = "classify"
    preprocessing: object = None  # the Preprocessing that put X in the network's input space (None: raw)

    def pixels(self, X: np.ndarray) -> np.ndarray:
        """Rows of this dataset's X as raw data (pixels as read): de-normalised when preprocessed."""
        return X if self.preprocessing is None else self.preprocessing.to_pixels(X, self.image_shape)

    @property
    def target_dim(self) -> int:
        """Outputs a regression network needs (1 for (N,) targets)."""
        return 1 if self.y_train.ndim == 1 else int(self.y_train.shape[1])

    @property
    def dim(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def check_fits(self, input_dim: int, num_classes: int | None = None) -> None:
        """Raise DatasetError if the features do not fit a network with ``input_dim`` inputs (and, for a
        regression dataset, ``num_classes`` outputs: a regression spec's num_classes is its output count)."""
        if self.dim != input_dim:
            raise DatasetError(
                f"dataset {self.name!r} has {self.dim} features per sample but the network takes {input_dim}; pick the dataset the network was trained on."
            )
        if self.task == "regress":
            if num_classes is not None and num_classes != self.target_dim:
                raise DatasetError(
                    f"dataset {self.name!r} has {self.target_dim} regression target(s) per sample but the network has {num_classes} output(s); "
                    "end the architecture with that many outputs."
                )
            return
        if num_classes is not None and num_classes > 1 and len(self.y_train) and self.y_train.max() >= max(num_classes, 2):
            raise DatasetError(f"dataset {self.name!r} has labels up to {int(self.y_train.max())} but the network has {num_classes} classes.")


def _split(name, X, y, test_fraction, seed, class_names, image_shape=None, reference=None, task: str = "classify") -> Dataset:
    rng = np.random.default_rng(seed + 7919)
    perm = rng.permutation(len(X))
    n_test = int(round(test_fraction * len(X)))
    te, tr = perm[:n_test], perm[n_test:]
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.float32 if task == "regress" else np.int64)
    return Dataset(name, X[tr], y[tr], X[te], y[te], list(class_names), image_shape, reference or {}, task)


def make_paraboloid(n: int, noise: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Regression targets x1² + x2² − 0.4 on uniform points of [-1, 1]² (level set 0: a circle of radius √0.4)."""
    X = rng.uniform(-1, 1, size=(n, 2))
    return X, (X**2).sum(1) - 0.4 + noise * rng.standard_normal(n)


def make_moons(n: int, noise: float, rng) -> tuple[np.ndarray, np.ndarray]:
    n0 = n // 2
    t0 = np.pi * rng.random(n0)
    t1 = np.pi * rng.random(n - n0)
    a = np.stack([np.cos(t0), np.sin(t0)], 1)
    b = np.stack([1 - np.cos(t1), 0.5 - np.sin(t1)], 1)
    X = np.concatenate([a, b]) + noise * rng.standard_normal((n, 2))
    X = (X - [0.5, 0.25]) / 1.2
    return X, np.r_[np.zeros(n0), np.ones(n - n0)]


def make_circles(n: int, noise: float, rng, factor: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    n0 = n // 2
    t = 2 * np.pi * rng.random(n)
    r = np.r_[np.ones(n0), np.full(n - n0, factor)]
    X = np.stack([r * np.cos(t), r * np.sin(t)], 1) + noise * rng.standard_normal((n, 2))
    return X, np.r_[np.zeros(n0), np.ones(n - n0)]


def make_spirals(n: int, noise: float, rng, arms: int = 3, turns: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """``arms`` interleaved Archimedean spirals in [-1, 1]^2, one class per arm."""
    y = np.arange(n) % arms
    t = np.sqrt(rng.random(n)) * turns * 2 * np.pi
    r = t / (turns * 2 * np.pi)
    phase = 2 * np.pi * y / arms
    X = np.stack([r * np.cos(t + phase), r * np.sin(t + phase)], 1) + noise * rng.standard_normal((n, 2))
    return X, y


def make_star(n: int, noise: float, rng, points: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Star-shaped data (as in the survey's batch-norm figure): class 1 inside a ``points``-pointed star, 0 outside."""
    X = rng.uniform(-1, 1, size=(n, 2))
    ang = np.arctan2(X[:, 1], X[:, 0])
    r = np.linalg.norm(X, axis=1)
    boundary = 0.45 + 0.3 * np.cos(points * ang)
    y = (r < boundary).astype(np.int64)
    return X + noise * rng.standard_normal((n, 2)), y


def builtin_dataset(name: str, n: int = 1000, noise: float | None = None, seed: int = 0, test_fraction: float = 0.2, **params) -> Dataset:
    """Create a built-in dataset deterministically from its parameters."""
    from geometry.networks.schemas import BuiltinDataset, validate_document

    validate_document(
        BuiltinDataset,
        {"builtin": name, "n": n, "seed": seed, "test_fraction": test_fraction, **({"noise": noise} if noise is not None else {}), **params},
        f"built-in dataset {printable(name, 30)!r}",
        DatasetError,
    )
    rng = np.random.default_rng(seed)
    ref = {"builtin": name, "n": n, "seed": seed, "test_fraction": test_fraction, **params}
    if noise is not None:
        ref["noise"] = noise
    if name == "moons":
        X, y = make_moons(n, 0.1 if noise is None else noise, rng)
        return _split(name, X, y, test_fraction, seed, ["upper moon", "lower moon"], reference=ref)
    if name == "circles":
        X, y = make_circles(n, 0.05 if noise is None else noise, rng, **params)
        return _split(name, X, y, test_fraction, seed, ["outer", "inner"], reference=ref)
    if name == "spirals":
        arms = int(params.get("arms", 3))
        X, y = make_spirals(n, 0.02 if noise is None else noise, rng, arms=arms, turns=float(params.get("turns", 1.0)))
        return _split(name, X, y, test_fraction, seed, [f"arm {i}" for i in range(arms)], reference=ref)
    if name == "star":
        X, y = make_star(n, 0.0 if noise is None else noise, rng, points=int(params.get("points", 5)))
        return _split(name, X, y, test_fraction, seed, ["outside", "star"], reference=ref)
    if name == "paraboloid":
        X, y = make_paraboloid(n, 0.0 if noise is None else noise, rng)
        return _split(name, X, y, test_fraction, seed, [], reference=ref, task="regress")
    if name == "digits":
        from sklearn.datasets import load_digits  # bundled with scikit-learn, no download

        d = load_digits()
        X = d.data / 16.0
        ref = {"builtin": "digits", "seed": seed, "test_fraction": test_fraction}
        return _split(name, X, d.target, test_fraction, seed, [str(i) for i in range(10)], (1, 8, 8), ref)
    raise DatasetError(f"unknown built-in dataset {name!r}; choose one of {', '.join(BUILTIN)} or give an .npz file.")


NPZ_MEMBERS = ("X", "y", "X_test", "y_test", "image_shape", "class_names")
MAX_CLASSES = 100_000


def _features(path: Path, key: str, X: np.ndarray) -> np.ndarray:
    if X.ndim < 2 or len(X) == 0 or math.prod(X.shape[1:]) == 0:
        raise DatasetError(f"dataset file {name(path)}: {key} has shape {X.shape}; it must be (N, features) or (N, C, H, W) with N > 0.")
    X = X.reshape(len(X), -1).astype(np.float32)
    if not np.isfinite(X).all():
        raise DatasetError(f"dataset file {name(path)}: {key} has NaN/Inf features (or values beyond float32); clean them before loading.")
    return X


def _labels(path: Path, key: str, y: np.ndarray, n: int) -> np.ndarray:
    if y.ndim != 1:
        raise DatasetError(f"dataset file {name(path)}: {key} has shape {y.shape}; labels must be one class index per sample, shape (N,).")
    if len(y) != n:
        raise DatasetError(f"dataset file {name(path)}: {key} has {len(y)} labels for {n} samples; they must match.")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all() or not np.array_equal(y, np.round(y)):
            raise DatasetError(
                f"dataset file {name(path)}: {key} holds non-integer values (float targets); a "
                f"classifier needs class indices 0, 1, ...: round them, or train a regression model (--task regress)."
            )
    if len(y) and (y.min() < 0 or y.max() >= MAX_CLASSES):
        raise DatasetError(f"dataset file {name(path)}: {key} has labels from {y.min()} to {y.max()}; class indices must be in 0..{MAX_CLASSES - 1}.")
    return y.astype(np.int64)


def targets(path: Path, key: str, y: np.ndarray, n: int) -> np.ndarray:
    """Regression targets: finite numbers, one value (N,) or one row (N, K) per sample, as float32."""
    if y.ndim not in (1, 2) or len(y) != n or (y.ndim == 2 and not 1 <= y.shape[1] <= 10_000):
        raise DatasetError(f"dataset file {name(path)}: {key} has shape {y.shape}; regression targets must be (N,) or (N, K) for the {n} samples.")
    if y.dtype.kind not in "iuf" or not np.isfinite(y).all() or np.abs(y).max(initial=0) > 1e30:
        raise DatasetError(f"dataset file {name(path)}: {key} must hold finite numbers (regression targets).")
    return y.astype(np.float32)


def load_npz(path: str | Path, test_fraction: float = 0.2, seed: int = 0, root: Path | None = None, task: str = "classify") -> Dataset:
    """Load ``X`` (N, ...) and ``y`` (N,) (optional ``X_test``, ``y_test``, ``image_shape``, ``class_names``).
    ``root``: the folder the file must stay inside. ``task="regress"``: ``y`` holds float targets (N,) or
    (N, K); a classifier's float labels are refused with a hint to regress."""
    path = Path(path)
    if not os.path.lexists(path):
        raise DatasetError(f"dataset file {name(path)} does not exist.")
    data = read_npz(path, "dataset file", NPZ_MEMBERS, MAX_DATASET_BYTES, root, DatasetError, strings=("class_names",))
    if "X" not in data or "y" not in data:
        raise DatasetError(f"dataset file {name(path)} needs arrays 'X' and 'y'; it has {sorted(data) or 'none of them'}.")
    X_raw = data["X"]
    X = _features(path, "X", X_raw)
    regress = task == "regress"
    y = targets(path, "y", data["y"], len(X)) if regress else _labels(path, "y", data["y"], len(X))
    image_shape = None
    if "image_shape" in data:
        s = data["image_shape"]
        if s.ndim != 1 or not 1 <= len(s) <= 3 or s.dtype.kind not in "iu" or (s <= 0).any() or math.prod(int(v) for v in s) != X.shape[1]:
            raise DatasetError(f"dataset file {name(path)}: image_shape must list 1-3 positive ints whose product is the {X.shape[1]} features per sample.")
        image_shape = tuple(int(v) for v in s)
    elif X_raw.ndim > 2:
        image_shape = tuple(X_raw.shape[1:])
    n_cls = 0 if regress else int(y.max()) + 1
    if regress:
        names = []
    elif "class_names" in data:
        c = data["class_names"]
        if c.ndim != 1 or c.dtype.kind != "U" or len(c) > MAX_CLASSES or len(c) < n_cls:
            raise DatasetError(f"dataset file {name(path)}: class_names must be a 1-D string array with at least {n_cls} names (one per label).")
        names = [printable(str(v), 80) for v in c]
    else:
        names = [str(i) for i in range(n_cls)]
    ref = {"npz": str(path)}
    if "X_test" in data and "y_test" in data:
        Xt = _features(path, "X_test", data["X_test"])
        if Xt.shape[1] != X.shape[1]:
            raise DatasetError(f"dataset file {name(path)}: X_test has {Xt.shape[1]} features per sample but X has {X.shape[1]}.")
        yt = targets(path, "y_test", data["y_test"], len(Xt)) if regress else _labels(path, "y_test", data["y_test"], len(Xt))
        if regress and yt.shape[1:] != y.shape[1:]:
            raise DatasetError(f"dataset file {name(path)}: y_test has shape {yt.shape} but y has {y.shape}; targets must have the same width.")
        return Dataset(path.stem, X, y, Xt, yt, names, image_shape, ref, task)
    return _split(path.stem, X, y, test_fraction, seed, names, image_shape, ref, task)


def dataset_from_reference(ref: dict, base_dir: Path | None = None, task: str = "classify") -> Dataset:
    """Recreate a dataset from a run manifest's ``dataset`` entry (checked against its schema; an .npz
    must lie inside ``base_dir``); ``task``: the run's (an .npz of a regression run holds float targets)."""
    from geometry.networks.schemas import NpzDataset, validate_document

    if not isinstance(ref, dict) or ("npz" not in ref and "builtin" not in ref):
        raise DatasetError(f"dataset entry {printable(ref, 80)} needs 'builtin' (one of {', '.join(BUILTIN)}) or 'npz'.")
    if "npz" in ref:  # a built-in entry is checked by builtin_dataset itself
        checked = validate_document(NpzDataset, ref, "dataset entry", DatasetError)
        p = Path(ref["npz"])
        if base_dir is not None:
            p = resolve_member(base_dir, ref["npz"], "dataset.npz", base_dir / "run.json")
        return load_npz(p, float(checked.test_fraction), int(checked.seed), root=base_dir, task=task)
    params = {k: v for k, v in ref.items() if k != "builtin"}
    ds = builtin_dataset(ref["builtin"], **params)
    if ds.task != task:
        raise DatasetError(f"dataset entry {printable(ref['builtin'], 30)!r} is a {ds.task} dataset but the run's task is {task!r}; fix the run's 'task'.")
    return ds
