"""Datasets: ``.npz`` files and built-in sets (2D toys and scikit-learn's bundled 8x8 digits). No downloads.

A :class:`Dataset` holds a train and a test split as float32 features ``(N, D)`` and int64 labels.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DatasetError

BUILTIN = ("moons", "circles", "spirals", "star", "digits")


@dataclass(frozen=True)
class Dataset:
    """X_train: (N, D) float32; y_train: (N,) int64; same for test. image_shape e.g. (1, 8, 8) or None."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str] = field(default_factory=list)
    image_shape: tuple[int, ...] | None = None
    reference: dict = field(default_factory=dict)  # how to recreate it (goes into run.json)

    @property
    def dim(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def check_fits(self, input_dim: int, num_classes: int | None = None) -> None:
        """Raise DatasetError if the features do not fit a network with ``input_dim`` inputs."""
        if self.dim != input_dim:
            raise DatasetError(
                f"dataset {self.name!r} has {self.dim} features per sample but the network takes {input_dim}; "
                f"pick the dataset the network was trained on."
            )
        if num_classes is not None and num_classes > 1 and len(self.y_train) and self.y_train.max() >= max(num_classes, 2):
            raise DatasetError(
                f"dataset {self.name!r} has labels up to {int(self.y_train.max())} but the network has {num_classes} classes."
            )


def _split(name, X, y, test_fraction, seed, class_names, image_shape=None, reference=None) -> Dataset:
    rng = np.random.default_rng(seed + 7919)
    perm = rng.permutation(len(X))
    n_test = int(round(test_fraction * len(X)))
    te, tr = perm[:n_test], perm[n_test:]
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.int64)
    return Dataset(name, X[tr], y[tr], X[te], y[te], list(class_names), image_shape, reference or {})


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


def builtin_dataset(name: str, n: int = 1000, noise: float | None = None, seed: int = 0,
                    test_fraction: float = 0.2, **params) -> Dataset:
    """Create a built-in dataset deterministically from its parameters."""
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
    if name == "digits":
        from sklearn.datasets import load_digits  # bundled with scikit-learn, no download

        d = load_digits()
        X = d.data / 16.0
        ref = {"builtin": "digits", "seed": seed, "test_fraction": test_fraction}
        return _split(name, X, d.target, test_fraction, seed, [str(i) for i in range(10)], (1, 8, 8), ref)
    raise DatasetError(f"unknown built-in dataset {name!r}; choose one of {', '.join(BUILTIN)} or give an .npz file.")


def load_npz(path: str | Path, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Load ``X`` (N, ...) and ``y`` (N,) (optional ``X_test``, ``y_test``, ``image_shape``, ``class_names``)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"dataset file {path} does not exist.")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DatasetError(f"dataset file {path} is not a readable .npz ({type(exc).__name__}: {exc}); re-export it with numpy.savez.") from None
    if "X" not in data or "y" not in data:
        raise DatasetError(f"dataset file {path} needs arrays 'X' and 'y'; it has {sorted(data)}.")
    X, y = data["X"], data["y"]
    if len(X) != len(y) or len(X) == 0:
        raise DatasetError(f"dataset file {path}: X has {len(X)} rows but y has {len(y)}; they must match and be non-empty.")
    image_shape = tuple(int(s) for s in data["image_shape"]) if "image_shape" in data else (tuple(X.shape[1:]) if X.ndim > 2 else None)
    X = X.reshape(len(X), -1).astype(np.float32)
    if not np.isfinite(X).all():
        raise DatasetError(f"dataset file {path} has NaN/Inf features; clean them before loading.")
    y = y.astype(np.int64)
    n_cls = int(y.max()) + 1
    names = [str(s) for s in data["class_names"]] if "class_names" in data else [str(i) for i in range(n_cls)]
    ref = {"npz": str(path)}
    if "X_test" in data and "y_test" in data:
        Xt = data["X_test"].reshape(len(data["X_test"]), -1).astype(np.float32)
        return Dataset(path.stem, X, y, Xt, data["y_test"].astype(np.int64), names, image_shape, ref)
    return _split(path.stem, X, y, test_fraction, seed, names, image_shape, ref)


def dataset_from_reference(ref: dict, base_dir: Path | None = None) -> Dataset:
    """Recreate a dataset from a run manifest's ``dataset`` entry."""
    if "npz" in ref:
        p = Path(ref["npz"])
        if not p.is_absolute() and base_dir is not None:
            p = base_dir / p
        return load_npz(p, float(ref.get("test_fraction", 0.2)), int(ref.get("seed", 0)))
    if "builtin" in ref:
        params = {k: v for k, v in ref.items() if k != "builtin"}
        return builtin_dataset(ref["builtin"], **params)
    raise DatasetError(f"dataset entry {ref} needs 'builtin' (one of {', '.join(BUILTIN)}) or 'npz'.")
