"""Shared look of exported figures: publication defaults (fonts, line widths, edge greys); the colours are
the one palette's (:mod:`app.render.palette`)."""

from __future__ import annotations

from contextlib import contextmanager

EDGE_NEW = (0.08, 0.08, 0.08, 0.75)
EDGE_OLD = (0.35, 0.35, 0.35, 0.35)

RC = {
    "font.size": 10,
    "axes.titlesize": 11,
    "axes.labelsize": 10,
    "legend.fontsize": 8.5,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.linewidth": 0.8,
    "font.family": "DejaVu Sans",
    "svg.fonttype": "none",
    "pdf.fonttype": 42,
    "figure.facecolor": "white",
    "savefig.facecolor": "white",
}


def fit_dpi(width: int, height: int) -> int:
    """The dpi at which a ``width`` x ``height`` px figure is at least 6.4 x 4.8 inches (matplotlib's own
    default page): fonts, legend and title then keep their proportions at any pixel size (a small video
    frame at a fixed 200 dpi crowds its title and legend)."""
    return int(min(max(round(min(width / 6.4, height / 4.8)), 50), 1200))


@contextmanager
def figure_style(font_scale: float = 1.0):
    """matplotlib rc context with the export defaults (fonts scaled by ``font_scale``)."""
    import matplotlib as mpl

    rc = dict(RC)
    for k in ("font.size", "axes.titlesize", "axes.labelsize", "legend.fontsize", "xtick.labelsize", "ytick.labelsize"):
        rc[k] = rc[k] * font_scale
    with mpl.rc_context(rc):
        yield


def fit_text(text, width_px: float) -> None:
    """Wrap a matplotlib Text (a title) at spaces into the longest lines whose measured width fits
    ``width_px``: a long title on a small video frame would otherwise run off the figure's edge."""
    import textwrap

    full = text.get_text()
    renderer = text.figure.canvas.get_renderer()
    if text.get_window_extent(renderer).width <= width_px:
        return
    for chars in range(len(full) - 1, 7, -1):
        text.set_text(textwrap.fill(full, chars, break_long_words=False))
        if text.get_window_extent(renderer).width <= width_px:
            return
