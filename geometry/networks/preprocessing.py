"""The input preprocessing a network was trained with: resize, then per-channel ``(x - mean) / std``.

Researchers' CNNs see normalised images (torchvision's ``Resize`` + ``Normalize``), so the slices, paths
and boundaries of Spline Atlas must live in that normalised space, while thumbnails show the pixels a
person recognises. A :class:`Preprocessing` does both directions; dataset files always hold raw
pixels (or raw features) and a run records its preprocessing in ``run.json`` (``"preprocessing"``), so
opening the run applies it and nothing is normalised twice.

Spec (JSON, checked by :class:`geometry.networks.schemas.PreprocessingSpec`)::

    {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "resize": [32, 32]}

``mean``/``std``: one value, or one per channel (images) or per feature (tables); ``resize`` [H, W]:
bilinear with antialiasing (images only; an image folder is resized image by image as it is read).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from geometry.errors import DatasetError
from geometry.safe_io import name, read_bytes

MAX_SPEC_BYTES = 1 << 20


@dataclass(frozen=True)
class Preprocessing:
    """Resize to ``resize`` (H, W), then ``(x - mean) / std`` per channel (or per feature); empty = none."""

    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    resize: tuple[int, int] | None = None

    def as_dict(self) -> dict:
        """The run.json form (only what is set)."""
        out: dict = {}
        if self.mean:
            out["mean"] = list(self.mean)
        if self.std:
            out["std"] = list(self.std)
        if self.resize:
            out["resize"] = list(self.resize)
        return out

    def _affine(self, n_features: int, image_shape) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature mean and std (D,) for data of ``n_features`` features laid out as ``image_shape``."""
        groups = int(image_shape[0]) if image_shape else n_features
        per = n_features // groups
        what = f"{groups} channel(s)" if image_shape else f"{groups} feature(s)"
        values = []
        for key, vals, default in (("mean", self.mean, 0.0), ("std", self.std, 1.0)):
            v = np.asarray(vals or (default,), dtype=np.float64)
            if len(v) not in (1, groups):
                raise DatasetError(f"preprocessing: field {key} has {len(v)} values but the data has {what}; give one value or {groups}.")
            values.append(np.repeat(np.broadcast_to(v, (groups,)), per))
        return values[0], values[1]

    def to_network(self, X: np.ndarray, image_shape=None) -> np.ndarray:
        """Raw ``(N, D)`` data -> the network's input space, float32 (resize first: see :meth:`resized`)."""
        mean, std = self._affine(X.shape[1], image_shape)
        return ((X - mean) / std).astype(np.float32)

    def to_pixels(self, X: np.ndarray, image_shape=None) -> np.ndarray:
        """Network inputs ``(N, D)`` -> raw data (pixels as read), float32: what thumbnails show."""
        mean, std = self._affine(np.asarray(X).shape[-1], image_shape)
        return (np.asarray(X, dtype=np.float64) * std + mean).astype(np.float32)

    def resized(self, X: np.ndarray, image_shape):
        """``(X, image_shape)`` resized to :attr:`resize` (unchanged when already that size)."""
        if self.resize is None or image_shape is None or tuple(image_shape[-2:]) == tuple(self.resize):
            if self.resize is not None and image_shape is None:
                raise DatasetError("preprocessing: field resize needs image data (an image folder, or an .npz with image_shape); drop it for tables.")
            return X, image_shape
        import torch

        C, H, W = (int(v) for v in image_shape)
        x = torch.as_tensor(np.ascontiguousarray(X)).reshape(len(X), C, H, W)
        y = torch.nn.functional.interpolate(x, size=self.resize, mode="bilinear", antialias=True, align_corners=False)
        return y.reshape(len(X), -1).numpy().astype(np.float32), (C, *self.resize)

    def apply(self, dataset):
        """``dataset`` (raw) in the network's input space, remembering this preprocessing for display."""
        if getattr(dataset, "preprocessing", None) is not None:
            raise DatasetError(f"dataset {dataset.name!r} is preprocessed already; give the raw data.")
        Xtr, shape = self.resized(dataset.X_train, dataset.image_shape)
        Xte, _ = self.resized(dataset.X_test, dataset.image_shape) if len(dataset.X_test) else (dataset.X_test.reshape(0, Xtr.shape[1]), shape)
        return replace(
            dataset,
            X_train=self.to_network(Xtr, shape),
            X_test=self.to_network(Xte, shape),
            image_shape=shape,
            preprocessing=self,
        )


def parse_preprocessing(value, what: str = "--preprocess") -> Preprocessing | None:
    """A :class:`Preprocessing` from a dict (run.json), a JSON text or a path to a .json file; None for none."""
    from geometry.networks.schemas import PreprocessingSpec, validate_document

    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text.startswith("{"):
            path = Path(text)
            what = name(path)
            text = read_bytes(path, "preprocessing spec", MAX_SPEC_BYTES, error=DatasetError).decode("utf-8", errors="replace")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetError(
                f'{what}: not JSON ({exc.msg} at character {exc.pos}); give e.g. \'{{"mean": [0.5], "std": [0.25], "resize": [28, 28]}}\'.'
            ) from None
    spec = validate_document(PreprocessingSpec, value, what, DatasetError, hint="README: 'Preprocessing'")
    if spec.mean and spec.std and len(spec.mean) != len(spec.std) and 1 not in (len(spec.mean), len(spec.std)):
        raise DatasetError(f"{what}: field std has {len(spec.std)} values but mean has {len(spec.mean)}; give one per channel for both.")
    prep = Preprocessing(tuple(spec.mean or ()), tuple(spec.std or ()), tuple(spec.resize) if spec.resize else None)
    return prep if prep.as_dict() else None


def display_pixels(X: np.ndarray, image_shape, preprocessing: Preprocessing | None = None) -> np.ndarray:
    """Network inputs ``(N, D)`` as images to look at: ``(N, H, W)`` (one channel) or ``(N, H, W, 3)`` (RGB),
    de-normalised to raw pixels when the run has a preprocessing (then clipped to its [0, 1] range)."""
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    if preprocessing is not None:
        X = np.clip(preprocessing.to_pixels(X, image_shape), 0.0, 1.0)
    C, H, W = tuple(int(v) for v in image_shape) if len(image_shape) == 3 else (1, *(int(v) for v in image_shape[-2:]))
    imgs = X.reshape(len(X), C, H, W)
    return np.moveaxis(imgs, 1, -1).astype(np.float32) if C == 3 else imgs[:, 0].astype(np.float32)


__all__ = ["Preprocessing", "display_pixels", "parse_preprocessing"]
