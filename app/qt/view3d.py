"""The 3D slice view: a vispy SceneCanvas embedded in Qt (turntable and fly cameras).

Two layers, napari-style:

* :class:`Canvas3D` draws and computes nothing of its own: ``set_*`` methods push arrays (built by
  :mod:`geometry.tessellation.mesh3d`) into vispy visuals — translucent region faces with their outlines, the opaque
  decision-boundary surface, dataset points, paths as 3D polylines, the box, the clipping plane and the
  picked point. It reports clicks on a surface (``picked``) and Ctrl+drags of the clipping plane
  (``plane_dragged``).
* :class:`View3DTab` is the 3D tab of the main window: it observes the window's
  :class:`app.model.state.ViewerState` (run, epoch, depth, colour mode, paths) and the Qt-free
  :class:`app.model.view3d.View3DState` (3D slice, filters, camera, clipping plane), runs the 3D
  tessellation in the window's worker pool (progress, cancel, cache) and links the clipping plane to the
  2D view: when the plane moves (or a surface point is picked) the window's 2D slice becomes that plane,
  and a picked point becomes the window's inspected point, so the inspector is the same as in 2D.

vispy needs OpenGL; Qt's ``offscreen`` platform has none, so there the tab shows a message instead of a
canvas (:func:`opengl_available`). Under Xvfb + Mesa (llvmpipe) it works.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from geometry.errors import BudgetExceededError
from geometry.tessellation import has_slope_norms, mesh3d

from ..jobs import manifold3d
from ..jobs import scene3d as jobs3d
from .. import jobs
from ..model.view3d import SLICE3_KINDS, Slice3Choice, View3DState

NO_GL_PLATFORMS = ("offscreen", "minimal", "vnc")
BOUNDARY_RGBA = (0.88, 0.06, 0.16, 1.0)
OVER = ("src_alpha", "one_minus_src_alpha", "one", "one_minus_src_alpha")
"""Blending of translucent visuals: colours over what is below, and the frame's alpha only ever grows, so a
rendered PNG composited on white shows what the screen shows (not a lighter, half-transparent copy)."""
PLANE_RGBA = (0.55, 0.55, 0.6, 0.18)


def opengl_available() -> tuple[bool, str]:
    """Whether vispy can draw here, and why not (Qt platform without OpenGL, vispy missing)."""
    app = QGuiApplication.instance()
    name = app.platformName() if app is not None else ""
    if name in NO_GL_PLATFORMS:
        return False, (
            f"The 3D view needs OpenGL, which Qt's '{name}' platform does not provide. Run with a display "
            "(or under Xvfb with QT_QPA_PLATFORM=xcb and Mesa's software renderer)."
        )
    try:
        import vispy  # noqa: F401
    except ImportError:
        return False, "The 3D view needs vispy (pip install vispy)."
    return True, ""


def _rgba(c) -> np.ndarray:
    return np.asarray(c, dtype=np.float32).reshape(-1)


class Canvas3D(QWidget):
    """vispy SceneCanvas with the 3D view's visuals. Coordinates are slice coordinates (u, v, w).

    Signals: ``picked(u, v, w)`` a left click (no drag, no modifier) hit a drawn surface (coordinates of the
    tessellation, exploded view undone); ``plane_dragged(position)`` Ctrl+left drag moved the clipping plane.
    """

    picked = Signal(float, float, float)
    plane_dragged = Signal(float)

    def __init__(self, background: str = "#ffffff", foreground: str = "#202020", parent: QWidget | None = None):
        super().__init__(parent)
        import vispy

        vispy.use(app="pyside6")
        from vispy import scene
        from vispy.visuals.filters.clipping_planes import PlanesClipper

        self._scene = scene
        self.canvas = scene.SceneCanvas(keys=None, show=False, bgcolor=background, size=(800, 600))
        self.canvas.unfreeze()
        self.view = self.canvas.central_widget.add_view()
        self.view.bgcolor = background
        self.turntable = scene.cameras.TurntableCamera(fov=35.0, elevation=22.0, azimuth=-55.0)
        self.fly = scene.cameras.FlyCamera(fov=60.0)
        self.view.camera = self.turntable
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.canvas.native)
        fg = np.array(_hex_rgba(foreground))

        S = scene.visuals
        self.boundary = S.Mesh(parent=self.view.scene, shading="smooth", color=BOUNDARY_RGBA)
        self.boundary.set_gl_state("opaque", depth_test=True, cull_face=False)
        self.boundary.order = 0
        self.points = S.Markers(parent=self.view.scene)
        self.points.set_gl_state("translucent", depth_test=True, blend_func=OVER)
        self.points.order = 1
        # points on a surface (a generator's samples): drawn after its translucent faces (vispy fixes the draw
        # order once it has drawn, so this is a visual of its own rather than a changed order)
        self.surface_points = S.Markers(parent=self.view.scene)
        self.surface_points.set_gl_state("translucent", depth_test=True, blend_func=OVER)
        self.surface_points.order = 10.5
        self.paths = S.Line(parent=self.view.scene, method="gl", width=3.0, connect="strip")
        self.paths.order = 2
        self.marker = S.Markers(parent=self.view.scene)
        # the inspected point lies on the plane: always on top; drawn last, so it turns depth writes back on
        self.marker.set_gl_state("translucent", depth_test=False, depth_mask=True)
        self.marker.order = 15
        self.box = S.Line(parent=self.view.scene, method="gl", connect="segments", color=tuple(fg[:3]) + (0.55,))
        self.box.order = 4
        self.faces = S.Mesh(parent=self.view.scene)
        self.faces.set_gl_state("translucent", depth_test=True, depth_mask=False, cull_face=False, blend_func=OVER)
        self.faces.order = 10
        self.edges = S.Line(parent=self.view.scene, method="gl", connect="segments")
        self.edges.set_gl_state("translucent", depth_test=True, depth_mask=False)
        self.edges.order = 11
        self.plane = S.Mesh(parent=self.view.scene, color=PLANE_RGBA)
        self.plane.set_gl_state("translucent", depth_test=True, depth_mask=False, cull_face=False)
        self.plane.order = 12
        self.cap = S.Mesh(parent=self.view.scene)
        self.cap.set_gl_state("translucent", depth_test=True, depth_mask=False, cull_face=False)
        self.cap.order = 9
        self.cap_edges = S.Line(parent=self.view.scene, method="gl", connect="segments", color=tuple(fg[:3]) + (0.45,))
        self.cap_edges.set_gl_state("translucent", depth_test=True, depth_mask=False)
        self.cap_edges.order = 9.5
        self.plane_outline = S.Line(parent=self.view.scene, method="gl", connect="strip", width=2.0, color=(0.35, 0.35, 0.45, 0.9))
        self.plane_outline.order = 13
        self.labels = S.Text("", parent=self.view.scene, color=tuple(fg[:3]) + (0.9,), font_size=11, anchor_x="center", anchor_y="center")
        self.labels.order = 14
        # translucent visuals turn depth writes off; the last visual drawn turns them back on, or the next
        # frame's clear would leave the depth buffer stale (and hide everything)
        self.labels.set_gl_state("translucent", depth_test=False, depth_mask=True)
        self._clippers = {}
        for name in ("boundary", "points", "surface_points", "paths", "faces", "edges"):
            clip = PlanesClipper()
            getattr(self, name).attach(clip)
            self._clippers[name] = clip
        # every visual gets (hidden) data now: switching cameras computes the bounds of all of them
        dummy = np.zeros((2, 3), np.float32)
        self.points.set_data(pos=dummy)
        self.surface_points.set_data(pos=dummy)
        self.marker.set_data(pos=dummy)
        self.paths.set_data(pos=dummy)
        self.edges.set_data(pos=dummy)
        self.plane_outline.set_data(pos=dummy)
        self.cap_edges.set_data(pos=dummy)
        self.box.set_data(pos=dummy)
        for v in (
            self.boundary,
            self.points,
            self.surface_points,
            self.paths,
            self.marker,
            self.faces,
            self.edges,
            self.plane,
            self.plane_outline,
            self.cap,
            self.cap_edges,
        ):
            v.visible = False

        self._box = np.array([-1.0, 1.0, -1.0, 1.0, -1.0, 1.0])
        self._pick_tris = np.zeros((0, 3, 3))
        self._pick_offsets = np.zeros((0, 3))
        self._pick_cells = np.zeros(0, dtype=np.int64)
        self._clip = None  # (axis, position, keep_above) or None
        self._press = None
        self._drag_start = None
        self.canvas.events.mouse_press.connect(self._on_press)
        self.canvas.events.mouse_move.connect(self._on_move)
        self.canvas.events.mouse_release.connect(self._on_release)

    # -- data ---------------------------------------------------------------------------------------
    def set_box(self, box, reset_camera: bool = True, labels=("u", "v", "w")) -> None:
        """The slice's box (6,): draws its wireframe and axis ``labels``, and fits the cameras to it."""
        b = np.asarray(box, dtype=np.float64).reshape(3, 2)
        self._box = b.reshape(-1)
        corners = np.array([[b[0, i], b[1, j], b[2, k]] for i in (0, 1) for j in (0, 1) for k in (0, 1)])
        edges = [(0, 1), (2, 3), (4, 5), (6, 7), (0, 2), (1, 3), (4, 6), (5, 7), (0, 4), (1, 5), (2, 6), (3, 7)]
        self.box.set_data(pos=corners[np.array(edges).reshape(-1)].astype(np.float32))
        span = float((b[:, 1] - b[:, 0]).max())
        lab_pos = np.array([[b[0, 1] + 0.06 * span, b[1, 0], b[2, 0]], [b[0, 0], b[1, 1] + 0.06 * span, b[2, 0]], [b[0, 0], b[1, 0], b[2, 1] + 0.06 * span]])
        self.labels.text = list(labels)
        self.labels.pos = lab_pos.astype(np.float32)
        if reset_camera:
            self.reset_camera()
        self.canvas.update()

    def reset_camera(self, grow: float = 1.0) -> None:
        """Fit both cameras to the box (times ``grow``, e.g. 1 + explode for the exploded view)."""
        b = self._box.reshape(3, 2)
        c = b.mean(1)
        span = float((b[:, 1] - b[:, 0]).max()) * max(float(grow), 1.0)
        # the scale factor is the extent across the canvas's shorter side; the rotated box spans up to its diagonal
        self.turntable.scale_factor = span * 1.75
        self.turntable.center = tuple(c)
        self.turntable.distance = None
        self.turntable.elevation, self.turntable.azimuth = 22.0, -55.0
        # the fly camera stands in front of the box (towards -v, a little above) and looks at its centre: its
        # own range fit aims from a corner of every visual's bounds, which left the box out of view
        eye = np.array([0.0, -2.6, 0.5]) * span
        self.fly.center = tuple(c + eye)
        self.fly.scale_factor = span
        self.fly.rotation1 = _fly_rotation_towards(-eye)
        self.fly.rotation2 = type(self.fly.rotation1)()  # no pending mouse turn
        self.fly.view_changed()
        self.canvas.update()

    def set_camera(self, kind: str) -> None:
        cam = self.fly if kind == "fly" else self.turntable
        if self.view.camera is not cam:
            self.view.camera = cam
            self.reset_camera()

    def camera_pose(self, kind: str | None = None) -> dict:
        """A camera's pose (kind, centre, zoom, field of view, and azimuth/elevation or the fly camera's
        rotation), so an offscreen canvas can show exactly this view. ``kind``: "turntable", "fly" or None
        (the active one)."""
        cam = {"fly": self.fly, "turntable": self.turntable}.get(kind, self.view.camera)
        pose = {"kind": "fly" if cam is self.fly else "turntable", "center": tuple(cam.center), "scale_factor": cam.scale_factor, "fov": cam.fov}
        if cam is self.fly:
            r = cam.rotation1
            pose["rotation"] = (r.w, r.x, r.y, r.z)
        else:
            pose["azimuth"], pose["elevation"] = cam.azimuth, cam.elevation
        return pose

    def set_camera_pose(self, pose: dict) -> None:
        """Take a pose from :meth:`camera_pose` (of this or another canvas)."""
        from vispy.util.quaternion import Quaternion

        self.set_camera(pose["kind"])
        cam = self.view.camera
        cam.center, cam.scale_factor, cam.fov = pose["center"], pose["scale_factor"], pose["fov"]
        if pose["kind"] == "fly":
            cam.rotation1 = Quaternion(*pose["rotation"])
            cam.rotation2 = Quaternion()
        else:
            cam.azimuth, cam.elevation = pose["azimuth"], pose["elevation"]
        cam.view_changed()
        self.canvas.update()

    def draw(self, d) -> None:
        """Draw a whole :class:`app.jobs.scene3d.Drawing3D` (the box keeps the current camera)."""
        self.set_box(d.box, reset_camera=False, labels=d.axis_labels)
        if d.scene is None:
            self.set_faces(None, None, None)
            self.set_boundary(None, None)
            self.set_pickable(np.zeros((0, 3, 3)), np.zeros((0, 3)), np.zeros(0, np.int64))
        else:
            self.show_scene(d.scene)
        self.set_points(*(d.points if d.points is not None else (None,)), over_faces=d.points_over_faces)
        self.set_paths(list(d.paths))
        self.set_marker(d.marker)
        clip = d.clip
        if clip is not None and clip.enabled:
            self.set_clip(True, clip.axis, clip.position, clip.keep_above)
        else:
            self.set_clip(False)
        self.set_cap(*(d.cap if d.cap is not None else (None,)))

    def set_faces(
        self,
        positions: np.ndarray | None,
        triangles: np.ndarray | None,
        tri_colors: np.ndarray | None,
        edge_pos: np.ndarray | None = None,
        edge_colors: np.ndarray | None = None,
        cull_back: bool = False,
    ) -> None:
        """Region faces: positions (P, 3), triangles (T, 3) counter-clockwise seen from outside their cell,
        per-triangle RGBA (T, 4); outlines as segments edge_pos (2E, 3) with per-vertex RGBA (2E, 4). None hides
        them. ``cull_back``: draw only faces seen from outside (their cell's near side)."""
        if positions is None or triangles is None or len(triangles) == 0:
            self.faces.visible = False
        else:
            self.faces.set_gl_state("translucent", depth_test=True, depth_mask=False, cull_face=bool(cull_back), front_face="ccw", blend_func=OVER)
            self.faces.set_data(
                vertices=np.asarray(positions, np.float32), faces=np.asarray(triangles, np.uint32), face_colors=np.asarray(tri_colors, np.float32)
            )
            self.faces.visible = True
        if edge_pos is None or len(edge_pos) == 0:
            self.edges.visible = False
        else:
            self.edges.set_data(pos=np.asarray(edge_pos, np.float32), color=np.asarray(edge_colors, np.float32))
            self.edges.visible = True
        self.canvas.update()

    def set_boundary(self, positions: np.ndarray | None, triangles: np.ndarray | None, color=BOUNDARY_RGBA) -> None:
        if positions is None or triangles is None or len(triangles) == 0:
            self.boundary.visible = False
        else:
            self.boundary.set_data(vertices=np.asarray(positions, np.float32), faces=np.asarray(triangles, np.uint32), color=color)
            self.boundary.visible = True
        self.canvas.update()

    def show_scene(self, scene) -> None:
        """Push a :class:`app.jobs.scene3d.Scene3D` (faces, outlines, boundary, pickable surfaces)."""
        self.set_faces(scene.positions, scene.triangles, scene.tri_colors, scene.edge_pos, scene.edge_colors, scene.cull_back)
        self.set_boundary(scene.boundary_pos, scene.boundary_tris)
        self.set_pickable(scene.pick_tris, scene.pick_offsets, np.zeros(len(scene.pick_tris), np.int64))

    def set_pickable(self, tris: np.ndarray, offsets: np.ndarray, cells: np.ndarray) -> None:
        """Surfaces a click can hit: triangles (T, 3, 3) as drawn, and the explode offset (T, 3) to undo."""
        self._pick_tris = np.asarray(tris, dtype=np.float64)
        self._pick_offsets = np.asarray(offsets, dtype=np.float64)
        self._pick_cells = np.asarray(cells, dtype=np.int64)

    def set_points(self, pos: np.ndarray | None, colors: np.ndarray | None = None, size: float = 6.0, over_faces: bool = False) -> None:
        """Points (n, 3) with RGBA (n, 4); ``over_faces``: they lie on the drawn surface (drawn after its faces)."""
        shown, hidden = (self.surface_points, self.points) if over_faces else (self.points, self.surface_points)
        hidden.visible = False
        if pos is None or len(pos) == 0:
            shown.visible = False
        else:
            shown.set_data(
                pos=np.asarray(pos, np.float32),
                face_color=np.asarray(colors, np.float32),
                edge_color=(0, 0, 0, 0.6) if size >= 4 else np.asarray(colors, np.float32),  # small dots: no dark rim
                edge_width=0.5,
                size=size,
            )
            shown.visible = True
        self.canvas.update()

    def set_paths(self, polylines: list[tuple[np.ndarray, tuple]]) -> None:
        """Paths as 3D polylines: list of (points (n, 3), rgba)."""
        polylines = [(np.asarray(p, np.float64), c) for p, c in polylines if len(p) >= 2]
        if not polylines:
            self.paths.visible = False
            self.canvas.update()
            return
        pos = np.concatenate([p for p, _ in polylines]).astype(np.float32)
        col = np.concatenate([np.tile(_rgba(c), (len(p), 1)) for p, c in polylines])
        connect = np.ones(len(pos), dtype=bool)
        ends = np.cumsum([len(p) for p, _ in polylines]) - 1
        connect[ends] = False
        self.paths.set_data(pos=pos, color=col, connect=connect[:-1] if len(pos) > 1 else connect)
        self.paths.visible = True
        self.canvas.update()

    def set_marker(self, u) -> None:
        if u is None:
            self.marker.visible = False
        else:
            self.marker.set_data(
                pos=np.asarray(u, np.float32).reshape(1, 3), face_color=(1.0, 0.83, 0.0, 1.0), edge_color=(0, 0, 0, 1), edge_width=1.5, size=16, symbol="star"
            )
            self.marker.visible = True
        self.canvas.update()

    def set_clip(self, enabled: bool, axis: int = 2, position: float = 0.0, keep_above: bool = True) -> None:
        """Clip the drawn cells, boundary, points and paths to one side of ``u[axis] = position`` and draw the plane."""
        self._clip = (int(axis), float(position), bool(keep_above)) if enabled else None
        planes = np.zeros((0, 2, 3), np.float32)
        if enabled:
            p = np.zeros(3)
            p[axis] = position
            n = np.zeros(3)
            n[axis] = 1.0 if keep_above else -1.0
            planes = np.array([[p, n]], np.float32)
            b = self._box.reshape(3, 2)
            others = [k for k in range(3) if k != axis]
            quad = np.zeros((4, 3))
            for i, (s, t) in enumerate([(0, 0), (1, 0), (1, 1), (0, 1)]):
                quad[i, others[0]] = b[others[0], s]
                quad[i, others[1]] = b[others[1], t]
                quad[i, axis] = position
            self.plane.set_data(vertices=quad.astype(np.float32), faces=np.array([[0, 1, 2], [0, 2, 3]], np.uint32), color=PLANE_RGBA)
            self.plane_outline.set_data(pos=np.vstack([quad, quad[:1]]).astype(np.float32))
        for clip in self._clippers.values():
            clip.clipping_planes = planes
        self.plane_outline.visible = bool(enabled)
        self.plane.visible = bool(enabled) and not self.cap.visible
        if not enabled:
            self.cap.visible = self.cap_edges.visible = False
        self.canvas.update()

    def set_cap(
        self, positions: np.ndarray | None, triangles: np.ndarray | None = None, tri_colors: np.ndarray | None = None, outline: np.ndarray | None = None
    ) -> None:
        """The clipping plane's cross-section of the cells (drawn on the plane instead of its grey fill), and
        the polygons' outlines as segment end points (2E, 3)."""
        if positions is None or triangles is None or len(triangles) == 0:
            self.cap.visible = self.cap_edges.visible = False
        else:
            self.cap.set_data(
                vertices=np.asarray(positions, np.float32), faces=np.asarray(triangles, np.uint32), face_colors=np.asarray(tri_colors, np.float32)
            )
            self.cap.visible = self._clip is not None
            if outline is not None and len(outline):
                self.cap_edges.set_data(pos=np.asarray(outline, np.float32))
            self.cap_edges.visible = self.cap.visible and outline is not None and len(outline) > 0
        self.plane.visible = self._clip is not None and not self.cap.visible
        self.canvas.update()

    def render_image(self, size: tuple[int, int] | None = None) -> np.ndarray:
        """(H, W, 4) uint8 RGBA image of the scene (offscreen render)."""
        if size is not None and tuple(self.canvas.size) != tuple(size):
            self.canvas.size = size
            from PySide6.QtWidgets import QApplication

            QApplication.processEvents()  # let the view box follow the new size before drawing
        return np.asarray(self.canvas.render(alpha=True))

    # -- picking and dragging --------------------------------------------------------------------------
    def ray_at(self, x: float, y: float) -> tuple[np.ndarray, np.ndarray]:
        """Ray (origin (3,), unit direction (3,)) in scene coordinates through canvas pixel (x, y)."""
        tr = self.view.scene.transform
        near = np.asarray(tr.imap([x, y, -1.0, 1.0]), dtype=np.float64)
        far = np.asarray(tr.imap([x, y, 1.0, 1.0]), dtype=np.float64)
        near, far = near[:3] / near[3], far[:3] / far[3]
        d = far - near
        return near, d / max(float(np.linalg.norm(d)), 1e-300)

    def pick(self, x: float, y: float) -> np.ndarray | None:
        """The first drawn surface point under canvas pixel (x, y) on the kept side of the clipping plane,
        in tessellation coordinates (exploded view undone), or None."""
        tris = self._pick_tris
        if tris.shape[0] == 0:
            return None
        o, d = self.ray_at(x, y)
        alive = np.ones(tris.shape[0], dtype=bool)
        for _ in range(64):
            idx = np.flatnonzero(alive)
            i, t = mesh3d.ray_triangles(o, d, tris[idx])
            if i < 0:
                return None
            k = idx[i]
            hit = o + t * d
            if self._clip is not None:
                axis, pos, above = self._clip
                if (hit[axis] - pos) * (1 if above else -1) < 0:
                    alive[k] = False
                    continue
            return hit - self._pick_offsets[k]
        return None

    def _on_press(self, ev) -> None:
        self._press = (ev.pos, ev.button, tuple(m.name for m in ev.modifiers))
        if ev.button == 1 and "Control" in self._press[2] and self._clip is not None:
            self.view.camera.interactive = False
            self._drag_start = (np.asarray(ev.pos, float), self._clip[1])
            ev.handled = True

    def _on_move(self, ev) -> None:
        if self._drag_start is None:
            return
        p0, pos0 = self._drag_start
        axis = self._clip[0]
        span = self._box[2 * axis + 1] - self._box[2 * axis]
        h = max(self.canvas.size[1], 1)
        delta = -(float(ev.pos[1]) - p0[1]) / h * span * 1.5
        self.plane_dragged.emit(float(np.clip(pos0 + delta, self._box[2 * axis], self._box[2 * axis + 1])))

    def _on_release(self, ev) -> None:
        press, self._press = self._press, None
        if self._drag_start is not None:
            self._drag_start = None
            self.view.camera.interactive = True
            return
        if press is None or ev.button != 1 or press[2]:
            return
        if np.linalg.norm(np.asarray(ev.pos, float) - np.asarray(press[0], float)) > 3:
            return  # a drag (camera), not a click
        hit = self.pick(float(ev.pos[0]), float(ev.pos[1]))
        if hit is not None:
            self.picked.emit(float(hit[0]), float(hit[1]), float(hit[2]))


def _fly_rotation_towards(direction):
    """vispy FlyCamera orientation looking along ``direction`` with w up: at pitch −90° and yaw 0° it looks
    along +v (level); yaw turns it about w, and a pitch below −90° looks up, above −90° down."""
    from vispy.util.quaternion import Quaternion

    d = np.asarray(direction, dtype=np.float64)
    yaw = math.atan2(-d[0], d[1])
    elevation = math.atan2(d[2], math.hypot(d[0], d[1]))
    pitch = Quaternion.create_from_axis_angle(-math.pi / 2 - elevation, 1, 0, 0)
    turn = Quaternion.create_from_axis_angle(yaw, 0, 0, 1)
    return (pitch * turn).normalize()


def _hex_rgba(c: str) -> tuple[float, float, float, float]:
    c = c.lstrip("#")
    return tuple(int(c[i : i + 2], 16) / 255 for i in (0, 2, 4)) + (1.0,)


# == the tab ==================================================================================================
class View3DTab(QWidget):
    """The main window's 3D tab: controls + canvas, observing the window's state and the 3D state.

    The canvas is created when the tab is first shown (OpenGL is touched only then); until a 3D slice is
    computed nothing is tessellated. ``ctx``: the :class:`app.qt.context.ViewContext` (state, results, work,
    cache, theme) it draws from.
    """

    def __init__(self, ctx, parent: QWidget | None = None):
        super().__init__(parent)
        from .view3d_controls import View3DControls

        self.ctx = ctx
        self.state, self.results, self.work, self.cache, self.theme = ctx.state, ctx.results, ctx.work, ctx.cache, ctx.theme
        self.state3d = View3DState()
        self.tess3: list | None = None
        self.tess3_key: str | None = None
        self.error: str | None = None
        self.canvas: Canvas3D | None = None
        self.scene = None
        self.manifold: jobs3d.Drawing3D | None = None  # a generator's manifold frame (manifold mode)
        self._manifold_key = None
        self._active = False
        self._linking = False
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        from .dialogs import scrolling

        self.controls = View3DControls(self.state3d)
        controls = scrolling(self.controls)  # a tall column of controls: it scrolls on a laptop screen
        controls.setMinimumWidth(self.controls.minimumSizeHint().width() + 16)
        controls.setMaximumWidth(self.controls.sizeHint().width() + 24)
        lay.addWidget(controls)
        self.body = QVBoxLayout()
        self.message = QLabel("Open a run to see its 3D slice.")
        self.message.setWordWrap(True)
        self.message.setMargin(8)
        self.body.addWidget(self.message)
        self.grid_view = PictureView()  # a generator of images: its pictures over the latent window
        self.grid_view.setVisible(False)
        self.body.addWidget(self.grid_view, 1)
        self.image_grid: manifold3d.ImageGrid | None = None
        self._grid_key = None
        lay.addLayout(self.body, 1)
        self._gl_ok, self._gl_why = opengl_available()

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(120)
        self._timer.timeout.connect(self._request)
        self._link_timer = QTimer(self)
        self._link_timer.setSingleShot(True)
        self._link_timer.setInterval(150)
        self._link_timer.timeout.connect(self._link_2d)

        st, s3 = self.state.events, self.state3d.events
        st.run.connect(lambda _: self._on_run())
        st.epoch_index.connect(lambda _: self._schedule())
        ctx.results.events.tiles.connect(lambda _: self._request_manifold())
        st.depth.connect(lambda _: self._redraw())
        st.color_mode.connect(lambda _: (self._redraw(), self._schedule()))  # the slope colouring may need ||A_w||_2
        st.paths.connect(lambda _: QTimer.singleShot(0, self, self._redraw_paths))
        st.inspected.connect(lambda _: self._redraw_marker())
        s3.choice.connect(lambda _: self._request_slice())
        s3.slice3.connect(lambda _: self._on_slice3())
        s3.settings.connect(self._on_settings)
        s3.clip.connect(self._on_clip)
        s3.picked.connect(lambda _: self._redraw_marker())
        ctx.work.activity.connect(lambda busy, *_: QTimer.singleShot(0, self, self._redraw_paths) if not busy else None)
        self.controls.reset_camera.connect(lambda: self.canvas.reset_camera(1.0 + self.state3d.settings.explode) if self.canvas else None)

    # -- life cycle -----------------------------------------------------------------------------------
    def set_active(self, active: bool) -> None:
        """The tab became visible (create the canvas, compute what is missing) or hidden."""
        self._active = bool(active)
        if not active:
            return
        if self._image_generator():
            self._request_manifold()
            return
        if not self._gl_ok:
            self.message.setText(self._gl_why)
            return
        if self.canvas is None:
            self.canvas = Canvas3D(self.theme.background, self.theme.foreground)
            self.body.addWidget(self.canvas, 1)
            self.canvas.picked.connect(self._on_picked)
            self.canvas.plane_dragged.connect(lambda p: self.state3d.update_clip(position=p))
            self.canvas.set_camera(self.state3d.settings.camera)
            if self.state3d.slice3 is not None:
                self._on_slice3()
        if self.manifold_mode:
            self._request_manifold()
        elif self.state3d.slice3 is None:
            self._request_slice()
        else:
            self._schedule()

    @property
    def manifold_mode(self) -> bool:
        """Whether this tab shows a generator's manifold (2 latent inputs) instead of a 3D input slice."""
        return manifold3d.is_manifold_run(self.results.bundle)

    def _on_run(self) -> None:
        self.tess3, self.tess3_key, self.error = None, None, None
        self.manifold, self._manifold_key = None, None
        self.image_grid, self._grid_key = None, None
        self.grid_view.setVisible(False)
        b = self.results.bundle
        self.state3d.set_slice3(None)
        if b is None:
            return
        self.controls.set_run(b.input_dim, b.depth, len(b.points()[0]), manifold=self.manifold_mode, images=self._image_generator())
        if self.manifold_mode:
            self._request_manifold()
            return
        choice = jobs3d.default_choice(b)
        if choice == self.state3d.choice:
            self._request_slice()
        else:
            self.state3d.set_choice(choice)

    # -- a generator's manifold ------------------------------------------------------------------------
    def _image_generator(self) -> bool:
        b = self.results.bundle
        return self.manifold_mode and b.run.output_shape is not None

    def _request_manifold(self) -> None:
        """Map the 2D view's latent tiles onto the manifold (and sample it) in a worker; a generator of images:
        its pictures on a grid over the 2D view's latent window."""
        b = self.results.bundle
        if self._image_generator() and self._active:
            self._request_image_grid()
            return
        if not self.manifold_mode or not self._active or self.canvas is None:
            return
        tiles = self.results.tiles
        if tiles is None:  # between epochs the last manifold stays up until the new tiles arrive
            if self.manifold is None:
                self._show_message("Waiting for the exact latent tiles of the 2D view …", busy=True)
            return
        D = tiles.by_depth[-1].out_linear.shape[1]
        if D != 3:
            self._show_message(
                f"This generator maps its latent plane into R^{D}; the 3D tab draws a manifold in R³. "
                "The 2D tab shows its latent tiles coloured by volume change; `splineatlas generate` samples it.",
            )
            return
        s = self.state3d.settings
        key = (tiles.key, s.sampler, s.rho, s.samples, s.sample_seed, s.show_faces, s.show_edges, s.show_points, s.opacity)
        if key == self._manifold_key:
            return
        tess, data = tiles.by_depth[-1], manifold3d.data_outputs(b)
        edge = tuple(tuple(_qcolor_f(c)) for c in (self.theme.edge_new, self.theme.edge_old, self.theme.edge_domain))
        self.work.submit(
            "manifold3d",
            "Mapping the latent tiles onto the manifold",
            lambda progress, cancel: manifold3d.manifold_drawing(tess, data, s, edge),
            on_done=lambda d: self._show_manifold(key, d),
            on_error=lambda exc: self._show_message(f"Could not draw the manifold: {exc}", error=True),
        )

    def _request_image_grid(self) -> None:
        b, tiles, s = self.results.bundle, self.results.tiles, self.state3d.settings
        window = tiles.window if tiles is not None else self.state.window
        if window is None:
            return
        epoch, shape = self.state.epoch_index, b.run.output_shape
        key = (b.checkpoint_hash(epoch), tuple(window), s.image_grid)
        if key == self._grid_key:
            return
        self.work.submit(
            "imagegrid",
            "Generating the image grid",
            lambda progress, cancel: manifold3d.image_grid(b.network(epoch), window, shape, s.image_grid),
            on_done=lambda grid: self._show_image_grid(key, grid),
            on_error=lambda exc: self._show_message(f"Could not generate the image grid: {exc}", error=True),
        )

    def _show_image_grid(self, key, grid) -> None:
        if not self._image_generator():
            return
        self.image_grid, self._grid_key = grid, key
        if self.canvas is not None:
            self.canvas.setVisible(False)
        self.grid_view.set_picture(grid.mosaic)
        self.grid_view.setVisible(True)
        self.message.setStyleSheet("")
        self.message.setText(grid.caption())
        self.message.setVisible(True)
        b = self.results.bundle
        C, H, W = b.run.output_shape
        n = grid.latent.shape[0] * grid.latent.shape[1]
        self.controls.set_summary(f"{n} generated {H}x{W} pictures ({'RGB' if C == 3 else 'grey'}), epoch {b.epochs[self.state.epoch_index]}")

    def _show_manifold(self, key, drawing) -> None:
        if self.canvas is None or not self.manifold_mode:
            return
        first = self.manifold is None
        self.manifold, self._manifold_key, self.scene = drawing, key, drawing.scene
        self.canvas.draw(self._with_marker(drawing))
        if first:
            self.canvas.reset_camera()
        self.message.setVisible(False)
        self.controls.set_summary(drawing.scene.summary())
        self.controls.show_density(drawing.scene.density)

    def _with_marker(self, drawing):
        from dataclasses import replace

        z = self.state.inspected
        return replace(drawing, marker=None if z is None else manifold3d.manifold_point(drawing.scene, z))

    def _request_slice(self) -> None:
        b = self.results.bundle
        if b is None or not self._active:
            return
        if self.manifold_mode:
            self._request_manifold()
            return
        if b.input_dim < 3:
            self._show_message(f"The 3D view needs at least 3 input dimensions; this network has {b.input_dim}. Use the 2D slice tab.")
            return
        choice, epoch = self.state3d.choice, self.state.epoch_index
        self._show_message("Preparing the 3D slice …", busy=True)
        self.work.submit(
            "slice3d",
            "Preparing the 3D slice",
            lambda progress, cancel: jobs3d.make_slice3(b, choice, epoch, progress, cancel),
            on_done=lambda res: self.state3d.set_slice3(*res),
            on_error=lambda exc: self._show_message(f"Could not make the 3D slice: {exc}", error=True),
        )

    def _on_slice3(self) -> None:
        self.tess3, self.tess3_key = None, None
        sl = self.state3d.slice3
        if sl is None or self.canvas is None:
            return
        self.canvas.set_box(self.state3d.box)
        self._redraw_points()
        self._redraw_paths()
        self._schedule()

    def _schedule(self) -> None:
        if self._active and not self.manifold_mode:
            self._timer.start()

    def _request(self) -> None:
        """Compute (or fetch from the cache) the 3D tessellation at the current epoch, in a worker."""
        b, sl = self.results.bundle, self.state3d.slice3
        if b is None or sl is None or self.canvas is None:
            return
        if not b.piecewise_affine:
            self._show_message("This network has smooth layers: there is no exact tessellation to show.", error=True)
            return
        epoch, box, budget = self.state.epoch_index, self.state3d.box, self.state3d.settings.max_cells
        key = jobs.tessellation_key(b, epoch, sl, box, budget)
        slopes = self._slopes_shown()
        complete = lambda t: t is not None and (not slopes or has_slope_norms(t[-1]))  # noqa: E731
        if key == self.tess3_key and complete(self.tess3):
            return
        hit = self.cache.peek(key)
        if complete(hit):
            self._on_tessellation(key, hit)
            return
        what = f"Tessellating the 3D slice at epoch {b.epochs[epoch]} …" if hit is None else "Computing every cell's ‖A_ω‖₂ for the slope colouring …"
        self._show_message(what, busy=True)
        cache = self.cache
        self.work.submit(
            "tessellation3d",
            f"3D tessellation, epoch {b.epochs[epoch]}",
            lambda progress, cancel: jobs.tessellate_all(b, epoch, sl, box, budget, cache, progress, cancel, slopes=slopes),
            on_done=lambda res: self._on_tessellation(key, res),
            on_error=lambda exc: self._on_error(exc),
        )

    def _slopes_shown(self) -> bool:
        """Every cell's ||A_w||_2 is computed only for the slope colouring (as in the 2D tab): for a 3D slice
        of a CNN it is C backward passes per cell, most of the tessellation's time. A cached entry without
        them is upgraded in place (:func:`app.jobs.tessellate_all`); until then the cells are grey."""
        return self.state.color_mode == "slope"

    def _on_tessellation(self, key: str, tess: list) -> None:
        self.tess3, self.tess3_key, self.error = tess, key, None
        self._redraw()

    def _on_error(self, exc) -> None:
        self.error = str(exc)
        hint = ""
        if isinstance(exc, BudgetExceededError):  # the engine's advice, in this tab's words
            hint = " In this tab: lower 'box size' (a smaller box holds fewer cells), raise 'max cells', or move the layer slider down."
        self._show_message(f"3D tessellation unavailable: {exc}{hint}", error=True)

    def _show_message(self, text: str, error: bool = False, busy: bool = False) -> None:
        self.message.setText(text)
        self.message.setStyleSheet("color: #d0312d;" if error else "")
        self.message.setVisible(True)

    # -- drawing ----------------------------------------------------------------------------------------
    def _on_settings(self, s) -> None:
        if self.canvas is not None:
            self.canvas.set_camera(s.camera)
            if s.explode != getattr(self, "_explode", 0.0):
                self.canvas.reset_camera(1.0 + s.explode)
            self._explode = s.explode
        if self.manifold_mode:
            self._request_manifold()
            return
        if self.tess3 is not None and self.tess3_key != jobs.tessellation_key(
            self.results.bundle, self.state.epoch_index, self.state3d.slice3, self.state3d.box, s.max_cells
        ):
            self._schedule()
        self._redraw()

    def _redraw(self) -> None:
        """Build the scene arrays (filters, colours, boundary mesh) in a worker, newest request first."""
        if self.canvas is None or self.tess3 is None or self.manifold_mode:
            return
        theme = self.theme
        edge = tuple(tuple(_qcolor_f(c)) for c in (theme.edge_new, theme.edge_old, theme.edge_domain))
        args = (self.tess3, self.state.depth, self.state.color_mode, self.state3d.settings, self.state3d.box, edge)
        key = self.tess3_key
        self.work.submit(
            "scene3d",
            "Building the 3D scene",
            lambda progress, cancel: jobs3d.scene_arrays(*args),
            on_done=lambda scene: self._show_scene(key, scene),
            on_error=lambda exc: self._show_message(f"Could not draw the 3D slice: {exc}", error=True),
        )

    def _show_scene(self, key, scene) -> None:
        if key != self.tess3_key or self.canvas is None:
            return
        self.scene = scene
        self.canvas.show_scene(scene)
        self._update_cap()
        self.message.setVisible(False)
        self.controls.set_summary(scene.summary())
        self._redraw_points()

    def drawing(self):
        """The whole current frame (:class:`app.jobs.scene3d.Drawing3D`): what the canvas shows, and what
        the 3D PNG and turntable exports render."""
        if self.manifold_mode:
            return self._with_marker(self.manifold) if self.manifold is not None else jobs3d.Drawing3D(box=np.asarray(self.state3d.box, dtype=np.float64))
        return jobs3d.Drawing3D(
            box=np.asarray(self.state3d.box, dtype=np.float64),
            scene=self.scene,
            points=self._points(),
            paths=self._paths(),
            marker=self._marker(),
            clip=self.state3d.clip,
            cap=self._cap(),
        )

    def _points(self):
        b, sl, s = self.results.bundle, self.state3d.slice3, self.state3d.settings
        if b is None or sl is None or not s.show_points:
            return None
        return jobs3d.points_in_box(b, sl, self.state3d.box)

    def _paths(self) -> tuple:
        return jobs3d.path_lines(self.state3d.slice3, self.results.shown_paths(self.state.paths), self.state3d.settings.show_paths)

    def _marker(self):
        return jobs3d.marker_point(self.state.slice, self.state3d.slice3, self.state3d.clip, self.state.inspected)

    def _cap(self):
        return jobs3d.cap_arrays(self.tess3, self.state.depth, self.state.color_mode, self.state3d.clip)

    def _redraw_points(self) -> None:
        if self.canvas is not None and not self.manifold_mode:
            self.canvas.set_points(*(self._points() or (None,)))

    def _redraw_paths(self) -> None:
        if self.canvas is not None and not self.manifold_mode:
            self.canvas.set_paths(list(self._paths()))

    def _redraw_marker(self) -> None:
        if self.canvas is None:
            return
        if self.manifold_mode:
            if self.manifold is not None:
                self.canvas.set_marker(self._with_marker(self.manifold).marker)
            return
        self.canvas.set_marker(self._marker())

    # -- clipping plane and picking: linked to the 2D view -----------------------------------------------
    def _update_cap(self) -> None:
        if self.canvas is not None:
            self.canvas.set_cap(*(self._cap() or (None,)))

    def _on_clip(self, clip) -> None:
        if self.canvas is not None:
            self.canvas.set_clip(clip.enabled, clip.axis, clip.position, clip.keep_above)
            self._update_cap()
        self.controls.show_clip(clip, self.state3d.box)
        if clip.enabled and clip.link_2d and not self._linking and self.state3d.slice3 is not None:
            self._link_timer.start()

    def _link_2d(self) -> None:
        """Make the window's 2D slice the clipping plane (its exact 2D tessellation appears in the 2D tab)."""
        sl3 = self.state3d.slice3
        if sl3 is None or self.results.bundle is None:
            return
        if jobs3d.is_clip_slice(self.state.slice, sl3, self.state3d.clip):
            return
        from ..model.state import SliceChoice

        sl2, win = jobs3d.clip_slice(sl3, self.state3d.box, self.state3d.clip)
        self.state.set_slice(sl2, SliceChoice("clip3d"), win)

    def _on_picked(self, u: float, v: float, w: float) -> None:
        """A surface point was clicked: move the clipping plane through it, make that plane the 2D slice,
        and inspect the point there (the window's inspector, as in 2D)."""
        p = np.array([u, v, w])
        if self.manifold_mode:  # a point of the manifold: inspect its latent point in the 2D view
            z = manifold3d.latent_at(self.manifold.scene, p) if self.manifold is not None else None
            if z is not None:
                self.state.set_inspected(z)
            return
        clip = self.state3d.clip
        self._linking = True
        try:
            self.state3d.update_clip(position=float(p[clip.axis]))
        finally:
            self._linking = False
        self._link_timer.stop()
        self._link_2d()
        self.state3d.set_picked(p)
        self.state.set_inspected(jobs3d.plane_from_3d(self.state3d.clip, p))


class PictureView(QLabel):
    """A uint8 picture (H, W) grey or (H, W, 3) RGB, scaled to the widget with its aspect kept and square
    pixels (nearest neighbour: a generated image's pixels stay visible)."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        from PySide6.QtCore import Qt

        from PySide6.QtWidgets import QSizePolicy

        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(120, 120)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)  # the pixmap never grows the widget
        self._image = None

    def set_picture(self, pixels: np.ndarray) -> None:
        from PySide6.QtGui import QImage

        px = np.ascontiguousarray(pixels)
        h, w = px.shape[:2]
        fmt = QImage.Format.Format_RGB888 if px.ndim == 3 else QImage.Format.Format_Grayscale8
        self._image = QImage(px.data, w, h, px.strides[0], fmt).copy()  # own the bytes
        self._rescale()

    def resizeEvent(self, ev) -> None:  # noqa: N802 (Qt)
        super().resizeEvent(ev)
        self._rescale()

    def _rescale(self) -> None:
        from PySide6.QtCore import Qt
        from PySide6.QtGui import QPixmap

        if self._image is None:
            return
        img = self._image.scaled(self.width(), self.height(), Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation)
        self.setPixmap(QPixmap.fromImage(img))


def _qcolor_f(c) -> np.ndarray:
    return np.array([c.redF(), c.greenF(), c.blueF(), c.alphaF()], dtype=np.float32)


def install_view3d(ctx, tabs) -> View3DTab:
    """The 3D tab, added to the window's central ``tabs`` (created once by the window)."""
    tab = View3DTab(ctx)
    tabs.addTab(tab, "3D slice")
    tabs.currentChanged.connect(lambda i: tab.set_active(tabs.widget(i) is tab))
    return tab


__all__ = ["Canvas3D", "View3DTab", "install_view3d", "opengl_available", "SLICE3_KINDS", "Slice3Choice"]
