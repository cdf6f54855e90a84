"""Datasets in the forms researchers keep them, read without running code: a CSV table, an ``X.npy`` /
``y.npy`` pair, and an image folder in torchvision's ``ImageFolder`` layout (``class_name/*.png``).

Each becomes a :class:`geometry.networks.datasets.Dataset` (80/20 split with the seed, as an .npz
without a test set); a run trained on one stores it as ``dataset.npz`` inside the run folder, so the run
stays self-contained. Sizes are checked before anything large is allocated.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from geometry.errors import DatasetError
from geometry.safe_io import MAX_DATASET_BYTES, checked_file, name, read_bytes

MAX_ROWS = 10_000_000
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")
LABEL_COLUMNS = ("label", "labels", "y", "class", "target")


def _labels(values: list[str], path: Path) -> tuple[np.ndarray, list[str]]:
    """Integer class indices 0..C-1 (numbers as given, or strings in sorted order) and the class names."""
    try:
        nums = np.array([float(v) for v in values])
    except ValueError:
        names = sorted(set(values))
        index = {n: i for i, n in enumerate(names)}
        return np.array([index[v] for v in values], dtype=np.int64), names
    if not np.all(np.isfinite(nums)) or not np.array_equal(nums, np.round(nums)) or nums.min(initial=0) < 0:
        raise DatasetError(
            f"{name(path)}: the label column holds non-integer or negative values; a classifier needs class indices 0, 1, ... "
            "or class names (float targets: --task regress)."
        )
    y = nums.astype(np.int64)
    return y, [str(i) for i in range(int(y.max(initial=0)) + 1)]


def load_csv(path: str | Path, test_fraction: float = 0.2, seed: int = 0, task: str = "classify"):
    """A CSV with a header row: the label column is named label/y/class/target (else the last column),
    every other column a numeric feature. ``task="regress"``: the label column holds float targets."""
    from geometry.networks.datasets import _split

    path = Path(path)
    text = read_bytes(path, "dataset file", MAX_DATASET_BYTES, error=DatasetError).decode("utf-8", errors="strict")
    rows = list(csv.reader(io.StringIO(text)))
    if len(rows) < 2:
        raise DatasetError(f"{name(path)} needs a header row and at least one data row.")
    if len(rows) - 1 > MAX_ROWS:
        raise DatasetError(f"{name(path)} has {len(rows) - 1:,} rows (over {MAX_ROWS:,}).")
    header = [h.strip() for h in rows[0]]
    lab = next((i for i, h in enumerate(header) if h.lower() in LABEL_COLUMNS), len(header) - 1)
    body = [r for r in rows[1:] if r]
    if any(len(r) != len(header) for r in body):
        bad = next(i for i, r in enumerate(body, start=2) if len(r) != len(header))
        raise DatasetError(f"{name(path)}: row {bad} has a different number of columns than the header ({len(header)}).")
    try:
        X = np.array([[float(v) for j, v in enumerate(r) if j != lab] for r in body], dtype=np.float32)
    except ValueError as exc:
        raise DatasetError(f"{name(path)}: a feature column is not numeric ({exc}); only the label column ({header[lab]!r}) may hold names.") from None
    if X.shape[1] == 0 or not np.isfinite(X).all():
        raise DatasetError(f"{name(path)}: the features must be finite numbers in at least one column besides {header[lab]!r}.")
    if task == "regress":
        try:
            y = np.array([float(r[lab]) for r in body], dtype=np.float64)
        except ValueError:
            raise DatasetError(f"{name(path)}: the target column {header[lab]!r} must hold numbers for a regression task.") from None
        from geometry.networks.datasets import targets

        y, names = targets(path, header[lab], y, len(X)), []
    else:
        y, names = _labels([r[lab].strip() for r in body], path)
    return _split(path.stem, X, y, test_fraction, seed, names, reference={"converted_from": str(path), "seed": seed}, task=task)


def load_npy_pair(path: str | Path, test_fraction: float = 0.2, seed: int = 0, task: str = "classify"):
    """``X.npy`` (N, ...) with ``y.npy`` (N,) beside it (no pickles: ``allow_pickle=False``); ``task="regress"``:
    float targets (N,) or (N, K)."""
    from geometry.networks.datasets import _labels as int_labels
    from geometry.networks.datasets import _split, targets

    path = Path(path)
    y_path = path.with_name(path.name.replace("X", "y", 1)) if "X" in path.name else path.with_name("y.npy")
    arrays = []
    for p in (path, y_path):
        real = checked_file(p, "dataset file", MAX_DATASET_BYTES, error=DatasetError)
        try:
            arrays.append(np.load(real, allow_pickle=False))
        except (ValueError, OSError) as exc:
            raise DatasetError(f"{name(p)} is not a plain .npy array ({exc}).") from None
    X, y = arrays
    if X.ndim < 2 or not np.issubdtype(X.dtype, np.number):
        raise DatasetError(f"{name(path)} has shape {X.shape}; give (N, features) or (N, C, H, W) numbers.")
    shape = tuple(int(v) for v in X.shape[1:]) if X.ndim > 2 else None
    X = X.reshape(len(X), -1).astype(np.float32)
    if not np.isfinite(X).all():
        raise DatasetError(f"{name(path)} holds NaN or infinite values.")
    if task == "regress":
        y, names = targets(y_path, "y", y, len(X)), []
    else:
        y = int_labels(y_path, "y", y, len(X))
        names = [str(i) for i in range(int(y.max(initial=0)) + 1)]
    return _split(path.stem, X, y, test_fraction, seed, names, shape, reference={"converted_from": str(path), "seed": seed}, task=task)


def load_image_folder(folder: str | Path, test_fraction: float = 0.2, seed: int = 0, resize: tuple[int, int] | None = None):
    """``folder/class_name/*.png`` (torchvision's ImageFolder layout): classes in sorted order, pixels
    scaled to [0, 1], channel-first (grayscale: one channel). Every image the same size, or ``resize``
    (H, W): each image resized as it is read (bilinear, as torchvision's ``Resize`` on PIL images)."""
    import imageio.v3 as iio

    from geometry.networks.datasets import _split

    folder = Path(folder)
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    files = [(c, f) for c in classes for f in sorted(c.iterdir()) if f.suffix.lower() in IMAGE_SUFFIXES]
    if not classes or not files:
        raise DatasetError(f"{name(folder)} has no class folders with images (the ImageFolder layout: {name(folder)}/CLASS/*.png).")
    if len(files) > MAX_ROWS:
        raise DatasetError(f"{name(folder)} holds {len(files):,} images (over {MAX_ROWS:,}).")
    images, labels, shape = [], [], None
    index = {c: i for i, c in enumerate(classes)}
    total = 0
    for c, f in files:
        real = checked_file(f, "image", 64 * 2**20, error=DatasetError)
        try:
            img = np.asarray(iio.imread(real, plugin="pillow"))  # one decoder, not every plugin imageio has
            if resize is not None and img.ndim in (2, 3) and img.shape[:2] != tuple(resize):
                img = _resized(img, resize)
        except Exception as exc:  # a damaged image: name it
            raise DatasetError(f"{name(f)} is not a readable image ({type(exc).__name__}).") from None
        img = img[..., None] if img.ndim == 2 else img[..., :3] if img.ndim == 3 else None
        if img is None:
            raise DatasetError(f"{name(f)} is not a 2D image.")
        if shape is None:
            shape = img.shape
        if img.shape != shape:
            raise DatasetError(
                f"{name(f)} is {img.shape[1]}x{img.shape[0]} but the first image is {shape[1]}x{shape[0]}; "
                "resize them to one size (--preprocess '{\"resize\": [H, W]}')."
            )
        total += img.size * 4
        if total > MAX_DATASET_BYTES:
            raise DatasetError(f"{name(folder)}: the images need over {MAX_DATASET_BYTES // 2**30} GiB as float32.")
        images.append(np.moveaxis(img, -1, 0).astype(np.float32) / (65535.0 if img.dtype == np.uint16 else 255.0))
        labels.append(index[c])
    X = np.stack(images)
    if X.shape[1] == 3 and all(np.array_equal(x[0], x[1]) and np.array_equal(x[0], x[2]) for x in X[:64]):
        X = X[:, :1]  # grayscale stored as RGB
    image_shape = tuple(int(v) for v in X.shape[1:])
    return _split(
        folder.name,
        X.reshape(len(X), -1),
        np.array(labels),
        test_fraction,
        seed,
        [c.name for c in classes],
        image_shape,
        reference={"converted_from": str(folder), "seed": seed},
    )


def _resized(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """One H x W (x C) image resized to ``size`` (H, W) by Pillow's bilinear filter, dtype kept."""
    from PIL import Image

    h, w = int(size[0]), int(size[1])
    if img.ndim == 3 and img.shape[2] not in (3, 4):  # Pillow has no mode for these: resize channel by channel
        return np.stack([_resized(img[..., c], size) for c in range(img.shape[2])], -1)
    return np.asarray(Image.fromarray(img).resize((w, h), Image.Resampling.BILINEAR))


def load_dataset_file(path: str | Path, seed: int = 0, task: str = "classify", resize: tuple[int, int] | None = None):
    """A dataset named by a path: .npz, .csv, X.npy (+ y.npy) or an image folder (classification only);
    ``resize``: an image folder's images are resized as they are read."""
    from geometry.networks.datasets import load_npz

    p = Path(path)
    if p.is_dir():
        if task == "regress":
            raise DatasetError(f"{name(p)}: an image folder holds classes, not regression targets; give an .npz, .csv or X.npy/y.npy with --task regress.")
        return load_image_folder(p, seed=seed, resize=resize)
    suffix = p.suffix.lower()
    if suffix == ".npz":
        return load_npz(p, seed=seed, task=task)
    if suffix == ".csv":
        return load_csv(p, seed=seed, task=task)
    if suffix == ".npy":
        return load_npy_pair(p, seed=seed, task=task)
    raise DatasetError(f"{name(p)}: give a built-in dataset name, an .npz, a .csv, an X.npy (with y.npy beside it) or an image folder.")
