"""3D turntable video: the 3D slice view (the 3D tab's :class:`app.qt.view3d.Canvas3D`, same scene
arrays as ``splineatlas render3d``) rendered offscreen while the camera turns 360° about the vertical.

Needs OpenGL (a display, or Xvfb: ``xvfb-run -a splineatlas export-video PATH --sweep turntable ...``).
Frames are rendered on the calling (GUI) thread; :func:`app.export.video.write_video` encodes them.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from app.model.view3d import View3DSettings, scale_box
from geometry.errors import SplineAtlasError


def require_opengl_display() -> None:
    """Raise a clear SplineAtlasError when no display (hence no OpenGL) is available."""
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY") and sys.platform.startswith("linux"):
        raise SplineAtlasError(
            "a 3D turntable needs OpenGL and there is no display; run it under a virtual X server: xvfb-run -a splineatlas export-video ... --sweep turntable"
        )


def turntable_frames(
    bundle,
    epoch_index: int = -1,
    depth: int | None = None,
    color: str = "class",
    size: tuple[int, int] = (960, 800),
    n_frames: int = 72,
    elevation: float = 22.0,
    azimuth0: float = -55.0,
    slice_text: str | None = None,
    max_cells: int = View3DSettings.max_cells,
    settings=None,
    cancel=None,
):
    """(n_frames, frame(i) -> (H, W, 3) uint8) of the 3D slice ``slice_text`` (the one slice vocabulary;
    None: the 3D tab's default) turning by 360° (one tessellation)."""
    from app import jobs
    from app.jobs import scene3d as jobs3d
    from app.jobs.slicing import slice_from_text

    require_opengl_display()
    if n_frames < 1:
        raise SplineAtlasError("a turntable needs at least one frame.")
    ei = epoch_index % len(bundle.run)
    s = settings or View3DSettings(max_cells=max_cells)
    sl, home, _ = slice_from_text(slice_text, bundle, ei, dim=3)
    box = scale_box(home, s.box_scale)  # the 3D tab's box
    t_by = jobs.tessellate_all(bundle, ei, sl, box, max_cells, cancel=cancel)
    depth = bundle.depth if depth is None else int(depth)
    if not 1 <= depth <= bundle.depth:
        raise SplineAtlasError(f"layer must be between 1 and {bundle.depth}; got {depth}.")
    scene = jobs3d.scene_arrays(t_by, depth, color, s, box)
    pts = jobs3d.points_in_box(bundle, sl, box) if s.show_points else None
    return scene_frames(jobs3d.Drawing3D(box=np.asarray(box, float), scene=scene, points=pts), size, n_frames, azimuth0, elevation)


def scene_frames(drawing, size: tuple[int, int], n_frames: int = 72, azimuth0: float = -55.0, elevation: float = 22.0, turn: float = 360.0, camera=None):
    """(n_frames, frame(i)) rendering a whole 3D frame (:class:`app.jobs.scene3d.Drawing3D`: faces, boundary,
    points, paths, marker, clipping plane and its cap) in an offscreen Canvas3D of ``size``, the turntable
    camera at ``azimuth0 + turn * i / n_frames`` (``turn=0``: a still).

    ``camera``: a pose from :meth:`Canvas3D.camera_pose` (the 3D tab's), so the picture is the user's view;
    only a turntable pose turns (a fly pose gives the same frame each time)."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from .view3d import Canvas3D

    require_opengl_display()
    app = QApplication.instance() or QApplication([sys.argv[0]])
    if QGuiApplication.platformName() in ("offscreen", "minimal"):
        raise SplineAtlasError(
            f"3D export needs OpenGL, which Qt's '{QGuiApplication.platformName()}' platform lacks; run it with a display or under xvfb-run -a."
        )
    if n_frames < 1:
        raise SplineAtlasError("a 3D video needs at least one frame.")
    canvas = Canvas3D()
    w, h = (int(v) for v in size)
    canvas.resize(w, h)
    canvas.setAttribute(Qt.WidgetAttribute.WA_DontShowOnScreen, True)
    canvas.show()  # the GL canvas takes its size (viewport, camera aspect) only once shown
    app.processEvents()
    canvas.set_box(drawing.box)
    if camera is not None:
        canvas.set_camera_pose(camera)
        azimuth0 = camera.get("azimuth", azimuth0)
    else:
        canvas.turntable.azimuth, canvas.turntable.elevation = azimuth0, elevation
        if turn:
            canvas.turntable.scale_factor *= 1.2  # room for the box's corners at every azimuth
    canvas.draw(drawing)
    app.processEvents()
    turning = canvas.view.camera is canvas.turntable

    def frame(i: int) -> np.ndarray:
        if turning:
            canvas.turntable.azimuth = azimuth0 + turn * i / n_frames
        rgba = np.asarray(canvas.canvas.render(alpha=True)).astype(np.float32)
        if rgba.shape[:2] != (h, w):
            raise SplineAtlasError(f"the 3D canvas rendered {rgba.shape[1]}x{rgba.shape[0]} instead of {w}x{h}.")
        a = rgba[..., 3:4] / 255.0
        rgb = rgba[..., :3] * a + 255.0 * (1.0 - a)  # composite on white
        return np.clip(np.round(rgb), 0, 255).astype(np.uint8)

    frame.canvas = canvas  # keep the canvas alive with the frame source
    return n_frames, frame
