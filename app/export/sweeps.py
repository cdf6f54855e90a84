"""Frame sources for videos: epoch sweep, layer sweep, path animation (Qt-free).

Each ``*_frames`` function returns ``(n_frames, frame)`` where ``frame(i) -> (H, W, 3) uint8`` renders
frame i with :mod:`app.render` — the very renderer of File > Export… and ``export-figure``, so a frame
of an epoch sweep equals the figure of that epoch. :func:`export_video` ties a sweep to
:func:`app.export.video.write_video`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from geometry.errors import SplineAtlasError

from app.model.state import PATH_KINDS, PATH_NAMES
from app.render.images import display_images
from app.render.slice_figure import FigureOptions, build_slice_scene, figure_to_rgb, render_slice

from .video import write_video

Progress = Callable[[float, str], None] | None
Cancel = Callable[[], bool] | None
Frames = tuple[int, Callable[[int], np.ndarray]]

SWEEPS = ("epochs", "layers", "path")


def epoch_sweep_frames(
    bundle,
    slice_,
    window,
    depth: int | None = None,
    indices: list[int] | None = None,
    options: FigureOptions | None = None,
    cache=None,
    max_regions: int = 200_000,
    cancel: Cancel = None,
    overlays: dict | None = None,
) -> Frames:
    """One frame per checkpoint index in ``indices`` (default: all): the slice figure of that epoch, with the
    view's ``overlays`` (SliceScene fields: paths, marker) drawn on every frame as the window draws them."""
    idx = list(range(len(bundle.run))) if indices is None else [int(i) for i in indices]
    if not idx:
        raise SplineAtlasError("the epoch sweep has no checkpoints.")
    opt = options or FigureOptions()

    def frame(i: int) -> np.ndarray:
        scene = build_slice_scene(bundle, idx[i], slice_, window, depth, cache=cache, max_regions=max_regions, cancel=cancel)
        return figure_to_rgb(render_slice(replace(scene, **(overlays or {})), opt))

    return len(idx), frame


def layer_sweep_frames(
    bundle,
    epoch_index: int,
    slice_,
    window,
    options: FigureOptions | None = None,
    cache=None,
    max_regions: int = 200_000,
    cancel: Cancel = None,
    overlays: dict | None = None,
) -> Frames:
    """One frame per depth 1..L at one checkpoint (the subdivision layer by layer); one tessellation pass;
    ``overlays`` as in :func:`epoch_sweep_frames`."""
    opt = options or FigureOptions()
    base = build_slice_scene(bundle, epoch_index, slice_, window, bundle.depth, cache=cache, max_regions=max_regions, cancel=cancel)
    base = replace(base, **(overlays or {}))

    def frame(i: int) -> np.ndarray:
        t = base.tessellations[i]
        title = f"{bundle.name} · epoch {bundle.epochs[epoch_index % len(bundle.run)]} · layers 1–{i + 1} of {bundle.depth} · {t.num_regions:,} regions"
        return figure_to_rgb(render_slice(replace(base, depth=i + 1, title=title), opt))

    return bundle.depth, frame


# -- paths ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PathData:
    """A traced path: points (K, D) float64 in input space, probs (K, C) p(y|x_t), its label."""

    label: str
    points: np.ndarray
    probs: np.ndarray


def trace_path(
    bundle,
    epoch_index: int,
    kind: str,
    start: np.ndarray,
    end: np.ndarray | None = None,
    steps: int | None = None,
    seed: int = 0,
    progress: Progress = None,
    cancel: Cancel = None,
) -> PathData:
    """Trace one path from ``start`` (D,) (to ``end``) with the one path tracer (:mod:`app.jobs.paths`: the
    window's kinds, step rule and defaults); ``seed`` seeds a normal path's random direction."""
    from app.jobs.paths import trace_paths

    tr = trace_paths(
        bundle,
        epoch_index,
        kind,
        np.asarray(start, np.float64)[None],
        None if end is None else np.asarray(end, np.float64)[None],
        steps,
        seeds=[seed],
        progress=progress,
        cancel=cancel,
    )[0]
    return PathData(PATH_NAMES[kind], tr.X, np.asarray(tr.probs, dtype=np.float64))


def path_animation_frames(
    bundle,
    epoch_index: int,
    slice_,
    window,
    path: PathData,
    n_frames: int | None = None,
    options: FigureOptions | None = None,
    cache=None,
    max_regions: int = 200_000,
    cancel: Cancel = None,
) -> Frames:
    """A point moving along ``path``: the slice figure with the path (projected) and the moving point,
    beside it the point's image (image data) and its class probabilities. The static picture is drawn
    once and the moving artists are blitted on it per frame."""
    from app.render import palette, style

    opt = options or FigureOptions()
    K = path.points.shape[0]
    n = min(K, 90) if n_frames is None else int(n_frames)
    if n < 1 or K < 1:
        raise SplineAtlasError("the path animation needs a path with at least one point.")
    steps = np.round(np.linspace(0, K - 1, n)).astype(int)
    scene = build_slice_scene(bundle, epoch_index, slice_, window, bundle.depth, cache=cache, max_regions=max_regions, cancel=cancel)
    u = slice_.project(path.points)
    off = slice_.distance_to_plane(path.points)
    label = path.label + (f" (leaves the plane by ≤ {off.max():.2g})" if off.max() > 1e-9 else "")
    scene = replace(scene, paths=((label, u, "#111111"),))
    img_shape = bundle.image_shape
    fig = render_slice(scene, opt, side_panels=2 if img_shape else 1)
    ax = fig.axes[0]
    C = path.probs.shape[1]
    names = list(bundle.class_names)[:C] + [str(c) for c in range(len(bundle.class_names), C)]
    bar_ax = fig.side_axes[-1]
    with style.figure_style(opt.font_scale):
        bars = bar_ax.barh(np.arange(C), np.zeros(C), color=palette.class_rgba(C, 0.9), animated=True)
        bar_ax.set_xlim(0, 1)
        bar_ax.set_yticks(np.arange(C), names)
        bar_ax.invert_yaxis()
        bar_ax.set_xlabel("p(class | x)")
        bar_ax.set_title("class probabilities")
    im = None
    if img_shape:
        img_ax = fig.side_axes[0]
        img_ax.set_xticks([])
        img_ax.set_yticks([])
        img_ax.set_title("x(t) as an image")
        shown = display_images(path.points[steps], img_shape, bundle.preprocessing)
        im = img_ax.imshow(shown.images[0], cmap=None if shown.rgb else "gray_r", vmin=shown.vmin, vmax=shown.vmax, animated=True)
    marker = ax.plot([u[0, 0]], [u[0, 1]], "o", ms=9, mfc="white", mec="k", mew=1.5, zorder=6, animated=True)[0]
    step_text = bar_ax.text(0.98, 0.02, "", transform=bar_ax.transAxes, ha="right", va="bottom", fontsize=8 * opt.font_scale, animated=True)
    canvas = fig.canvas
    canvas.draw()
    fig.set_layout_engine("none")  # freeze the layout: the background is reused for every frame
    background = canvas.copy_from_bbox(fig.bbox)

    def frame(i: int) -> np.ndarray:
        k = steps[i]
        canvas.restore_region(background)
        marker.set_data([u[k, 0]], [u[k, 1]])
        ax.draw_artist(marker)
        for b, p in zip(bars, path.probs[k]):
            b.set_width(float(p))
            bar_ax.draw_artist(b)
        if im is not None:
            im.set_data(shown.images[i])
            im.axes.draw_artist(im)
        step_text.set_text(f"step {k + 1}/{K}: class {names[int(np.argmax(path.probs[k]))]}")
        bar_ax.draw_artist(step_text)
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()

    frame.figure = fig  # the frames' figure, for callers that check its layout
    return n, frame


def export_video(path: str | Path, frames: Frames, fps: float = 4.0, progress: Progress = None, cancel: Cancel = None) -> Path:
    """Write ``frames`` (from one of the ``*_frames`` functions) to ``path`` (.mp4/.gif), atomically."""
    n, frame = frames
    return write_video(path, n, frame, fps=fps, progress=progress, cancel=cancel)


__all__ = ["PATH_KINDS", "PathData", "SWEEPS", "epoch_sweep_frames", "export_video", "layer_sweep_frames", "path_animation_frames", "trace_path"]
