"""The class palette is colour-blind-safe for 10 classes, and every class has its own colour beyond 10.

Colour vision deficiency is simulated with Machado, Oliveira & Fernandes (2009) at full severity (their
published matrices, on linear RGB) and distances are CIE 1976 ΔE in CIELAB (D65), written out here
independently of the app's palette code."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from app.render import palette

MACHADO = {
    "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]],
    "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]],
    "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]],
    "normal vision": np.eye(3).tolist(),
}


def _linear(c):
    c = np.asarray(c, dtype=np.float64)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def _srgb(c):
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, 12.92 * c, 1.055 * c ** (1 / 2.4) - 0.055)


def _lab(rgb):
    xyz = _linear(rgb) @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


def _min_delta_e(rgb, vision) -> tuple[float, tuple[int, int]]:
    lab = _lab(_srgb(_linear(rgb) @ np.array(MACHADO[vision]).T))
    return min((float(np.linalg.norm(lab[i] - lab[j])), (i, j)) for i, j in itertools.combinations(range(len(rgb)), 2))


@pytest.mark.parametrize("vision", list(MACHADO))
def test_ten_class_colours_stay_apart_under_colour_blindness(vision):
    rgb = palette.class_rgba(10)[:, :3]
    full, pair = _min_delta_e(rgb, vision)
    assert full >= 15, f"classes {pair} differ by ΔE {full:.1f} under {vision}"
    drawn = palette.TILE_ALPHA * rgb + (1 - palette.TILE_ALPHA)  # tiles as drawn: translucent over white
    tiles, pair = _min_delta_e(drawn, vision)
    assert tiles >= 6, f"tiles of classes {pair} differ by ΔE {tiles:.1f} under {vision}"


def test_more_than_ten_classes_each_get_their_own_colour():
    big = palette.class_rgba(40)
    np.testing.assert_array_equal(big[:10], palette.class_rgba(10))  # the first ten do not depend on n
    d, pair = _min_delta_e(big[:, :3], "normal vision")
    assert d >= 3, f"classes {pair} look alike (ΔE {d:.1f})"
    assert np.array_equal(palette.class_rgba(40, alpha=0.3)[:, 3], np.full(40, 0.3))
    assert palette.class_hex(12) == "#%02x%02x%02x" % tuple(round(v * 255) for v in big[12, :3])


def test_the_old_grey_class_failed_deuteranopia():
    """Why class 7 is no longer grey: bluish green and grey tiles were nearly one colour to a deuteranope."""
    grey_green = np.array([palette.hex_rgba(c)[:3] for c in ("#009E73", "#7F7F7F")])
    drawn = palette.TILE_ALPHA * grey_green + (1 - palette.TILE_ALPHA)
    assert _min_delta_e(drawn, "deuteranopia")[0] < 2
