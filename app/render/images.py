"""Network inputs shown as pictures, one rule for the window, figures and videos.

With a run's preprocessing (per-channel mean/std) the inputs are de-normalised to the pixels that were
read, on a fixed [0, 1] scale, in colour when there are three channels; without one, the first channel
is shown on the range of the values given (so two images of one figure share a scale).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geometry.networks.preprocessing import display_pixels


@dataclass(frozen=True)
class ImageDisplay:
    """``images`` (N, H, W) grey or (N, H, W, 3) RGB, to be shown on the scale ``vmin``..``vmax``."""

    images: np.ndarray
    vmin: float
    vmax: float

    @property
    def rgb(self) -> bool:
        return self.images.ndim == 4

    def as_uint8(self, invert_grey: bool = True) -> np.ndarray:
        """The images as 0..255 bytes on the display scale; grey ones inverted (dark strokes on white, as
        the figures' ``gray_r``)."""
        g = np.clip((self.images - self.vmin) / max(self.vmax - self.vmin, 1e-12) * 255, 0, 255).astype(np.uint8)
        return 255 - g if invert_grey and not self.rgb else g


def display_images(X: np.ndarray, image_shape, preprocessing=None) -> ImageDisplay:
    """Rows of ``X`` (N, D) in the network's input space as an :class:`ImageDisplay`."""
    X = np.atleast_2d(np.asarray(X))
    if preprocessing is not None:
        return ImageDisplay(display_pixels(X, image_shape, preprocessing), 0.0, 1.0)
    imgs = display_pixels(X, image_shape)
    if imgs.ndim == 4:  # RGB without statistics: the values' own range
        lo, hi = float(imgs.min()), float(imgs.max())
        return ImageDisplay(np.clip((imgs - lo) / max(hi - lo, 1e-12), 0, 1), 0.0, 1.0)
    lo = min(float(imgs.min()), 0.0)
    return ImageDisplay(imgs, lo, max(float(imgs.max()), lo + 1e-9))


def image_mosaic(shown: ImageDisplay, rows: int, cols: int, gap: int = 1, gap_value: int = 170) -> np.ndarray:
    """The N = rows x cols images of ``shown`` (row-major) as one picture, uint8 (rows·(H+gap)-gap,
    cols·(W+gap)-gap[, 3]) on the display scale, the gaps grey (``gap_value``: they show on white backgrounds)."""
    imgs = shown.as_uint8()
    n, H, W = imgs.shape[:3]
    if n != rows * cols:
        raise ValueError(f"a {rows} x {cols} mosaic needs {rows * cols} images, got {n}")
    out = np.full((rows * (H + gap) - gap, cols * (W + gap) - gap) + imgs.shape[3:], gap_value, np.uint8)
    for k in range(n):
        i, j = divmod(k, cols)
        out[i * (H + gap) : i * (H + gap) + H, j * (W + gap) : j * (W + gap) + W] = imgs[k]
    return out


__all__ = ["ImageDisplay", "display_images", "image_mosaic"]
