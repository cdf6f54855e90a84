"""File > Export…: the current 2D view as PNG/SVG/PDF, epoch/layer sweeps and path animations as
MP4/GIF, and the training-dynamics curves — with a progress dialog and Cancel.

Every export is drawn by the Qt-free renderers of :mod:`app.render` / :mod:`app.export` (the same
calls as ``splineatlas export-figure`` / ``export-video`` / ``dynamics``), from the window's current
run, checkpoint, slice, visible window, layer depth and colour mode, so the file equals the CLI's
picture. Work runs in the window's worker pool; files are written atomically (no partial file on
cancel or error). :func:`install_export` registers the menu entry (Ctrl+E).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressDialog,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from geometry.errors import CancelledError, SplineAtlasError

from ..model.state import COLOR_MODE_LABELS, PATH_NAMES
from ..render.palette import path_color

KINDS = {
    "figure": ("2D slice figure (PNG, SVG, PDF)", (".png", ".svg", ".pdf")),
    "epochs": ("Epoch sweep video (MP4, GIF)", (".mp4", ".gif")),
    "layers": ("Layer sweep video (MP4, GIF)", (".mp4", ".gif")),
    "path": ("Path animation of the last traced path (MP4, GIF)", (".mp4", ".gif")),
    "pathfig": ("Path figure of the last traced path (PNG, SVG, PDF)", (".png", ".svg", ".pdf")),
    "curves": ("Training-dynamics curves (PNG, SVG, PDF; + CSV)", (".png", ".svg", ".pdf")),
    "view3d": ("3D view as an image (PNG)", (".png",)),
    "turntable": ("3D turntable video of the 3D view (MP4, GIF)", (".mp4", ".gif")),
}
GUI_THREAD_KINDS = ("view3d", "turntable")  # OpenGL renders on the GUI thread


@dataclass(frozen=True)
class ExportRequest:
    """What to export and how (everything the worker needs; no widget references)."""

    kind: str
    path: str
    mode: str
    width: int
    height: int
    dpi: int
    fps: float
    font_scale: float
    show_edges: bool
    show_boundary: bool
    show_points: bool
    show_legend: bool
    follow: bool = False  # outline the inspected point's tile in every frame (a region followed over epochs)


def run_export(ctx, req: ExportRequest, progress=None, cancel=None) -> str:
    """Do the export ``req`` of the view in ``ctx`` (state, results, cache: an :class:`app.qt.context.ViewContext`;
    worker thread, no widgets touched). Returns the written path."""
    from app.export import sweeps
    from app.render.slice_figure import FigureOptions, build_slice_scene, export_slice_figure

    b, st = ctx.results.bundle, ctx.state
    if b is None or st.slice is None:
        raise SplineAtlasError("open a run first (File > Open).")
    opt = FigureOptions(
        mode=req.mode,
        width=req.width,
        height=req.height,
        dpi=req.dpi,
        show_edges=req.show_edges,
        show_boundary=req.show_boundary,
        show_points=req.show_points,
        show_legend=req.show_legend,
        font_scale=req.font_scale,
    ).check()
    win = tuple(st.window)
    maxr = st.settings.max_regions
    ei = st.epoch_index
    over = view_overlays(ctx)
    if req.kind == "figure":
        scene = build_slice_scene(b, ei, st.slice, win, st.depth, cache=ctx.cache, max_regions=maxr, progress=progress, cancel=cancel)
        return str(export_slice_figure(replace(scene, **over), req.path, opt))
    over.pop("sites")  # the sites belong to one epoch and depth: not drawn over a sweep
    if req.kind == "epochs" and req.follow:
        if over["marker"] is None:
            raise SplineAtlasError("inspect a point first: its tile is the one followed over the epochs.")
        over["follow"] = over["marker"]
    if req.kind == "epochs":
        frames = sweeps.epoch_sweep_frames(b, st.slice, win, st.depth, None, opt, ctx.cache, maxr, cancel, overlays=over)
    elif req.kind == "layers":
        frames = sweeps.layer_sweep_frames(b, ei, st.slice, win, opt, ctx.cache, maxr, cancel, overlays=over)
    elif req.kind == "path":
        pd, pei = last_path(ctx)
        frames = sweeps.path_animation_frames(b, pei, st.slice, win, pd, None, opt, ctx.cache, maxr, cancel)
    elif req.kind == "curves":
        return export_curves(b, req, progress, cancel, cursor_epoch=b.epochs[ei])
    elif req.kind == "pathfig":
        from app.render.path_figure import render_path_figure
        from app.render.slice_figure import save_figure

        pd, pei = last_path(ctx)
        scene = build_slice_scene(b, pei, st.slice, win, st.depth, cache=ctx.cache, max_regions=maxr, progress=progress, cancel=cancel)
        fig = render_path_figure(scene, st.slice, pd.points, pd.probs, pd.label, b.class_names, b.image_shape, options=opt, preprocessing=b.preprocessing)
        return str(save_figure(fig, req.path, req.dpi))
    else:
        raise SplineAtlasError(f"unknown export kind {req.kind!r}.")
    return str(sweeps.export_video(req.path, frames, fps=req.fps, progress=progress, cancel=cancel))


def view_overlays(ctx) -> dict:
    """What the 2D view draws over the tiles, as SliceScene fields: the visible traced paths (label, points in
    the slice, colour), the inspected point, and the power-diagram sites when they are shown."""
    st, res = ctx.state, ctx.results
    paths = tuple((f"#{spec.id} {PATH_NAMES[spec.kind]}", r.u, path_color(spec.id)) for spec, r in res.shown_paths(st.paths))
    marker = None if st.inspected is None else np.asarray(st.inspected, dtype=np.float64)
    sites = None
    if st.settings.show_sites and res.tiles is not None:
        sites = res.sites.get((res.tiles.key, min(st.depth, len(res.tiles.by_depth))))
    return {"paths": paths, "marker": marker, "sites": sites}


def export_curves(bundle, req: ExportRequest, progress=None, cancel=None, cursor_epoch=None) -> str:
    """Training-dynamics figure at ``req.path`` plus the CSV beside it (same as ``splineatlas dynamics``)."""
    from geometry.dynamics import run_dynamics

    from app.render.curves import render_curves
    from app.render.slice_figure import save_figure

    curves = run_dynamics(bundle.run, progress=progress, cancel=cancel)
    fig = render_curves(curves, width=req.width, height=req.height, dpi=req.dpi, cursor_epoch=cursor_epoch, font_scale=req.font_scale)
    out = save_figure(fig, req.path, req.dpi)
    curves.to_csv(Path(req.path).with_suffix(".csv"))
    return str(out)


def last_path(ctx):
    """(PathData, checkpoint index) of the most recent visible traced path of the view."""
    from app.export.sweeps import PathData

    shown = ctx.results.shown_paths(ctx.state.paths)
    if shown:
        spec, res = shown[-1]  # the one tracer records the probabilities at every point it keeps
        return PathData(f"path #{spec.id} ({spec.kind})", np.asarray(res.X, np.float64), np.asarray(res.probs, np.float64)), spec.epoch_index
    raise SplineAtlasError("trace a path first (pick a path tool and click in the 2D view).")


class _Relay(QObject):
    progressed = Signal(float, str)


class ExportDialog(QDialog):
    """Choose what to export, the size and the file; Export runs it with a progress dialog."""

    def __init__(self, ctx, view3d=None, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx, self.view3d = ctx, view3d
        self.setWindowTitle("Export")
        self.result_path: str | None = None
        self.error: BaseException | None = None
        form = QFormLayout()
        self.kind = QComboBox()
        for k, (label, _) in KINDS.items():
            self.kind.addItem(label, k)
        form.addRow("Export", self.kind)
        self.mode = QComboBox()
        for k, label in COLOR_MODE_LABELS.items():
            self.mode.addItem(label, k)
        self.mode.setCurrentIndex(max(0, self.mode.findData(ctx.state.color_mode)))
        form.addRow("Tile colours", self.mode)
        size = QHBoxLayout()
        self.width_ = QSpinBox()
        self.width_.setRange(16, 8192)
        self.width_.setValue(1200)  # noqa: E702
        self.height_ = QSpinBox()
        self.height_.setRange(16, 8192)
        self.height_.setValue(1000)  # noqa: E702
        self.dpi = QSpinBox()
        self.dpi.setRange(10, 1200)  # noqa: E702
        self.dpi.setToolTip("Fonts scale with the dpi; it follows the size (at least 6.4 x 4.8 inches) until you set it")
        for w, suffix in ((self.width_, " px wide"), (self.height_, " px high"), (self.dpi, " dpi")):
            w.setSuffix(suffix)
            size.addWidget(w)
        self._dpi_set_by_user = False
        self._fit_dpi()
        self.width_.valueChanged.connect(self._fit_dpi)
        self.height_.valueChanged.connect(self._fit_dpi)
        self.dpi.valueChanged.connect(self._on_dpi_edited)
        form.addRow("Size", size)
        self.fps = QDoubleSpinBox()
        self.fps.setRange(0.5, 60)
        self.fps.setValue(4.0)
        self.fps.setSuffix(" fps")  # noqa: E702
        form.addRow("Frame rate", self.fps)
        self.font_scale = QDoubleSpinBox()
        self.font_scale.setRange(0.5, 3.0)
        self.font_scale.setSingleStep(0.1)  # noqa: E702
        self.font_scale.setValue(1.0)
        form.addRow("Font scale", self.font_scale)
        shows = QHBoxLayout()
        s = ctx.state.settings
        self.edges = QCheckBox("edges")
        self.edges.setChecked(getattr(s, "show_edges", True))  # noqa: E702
        self.boundary = QCheckBox("boundary (decision boundary or level set)")
        self.boundary.setChecked(getattr(s, "show_boundary", True))  # noqa: E702
        self.points = QCheckBox("data points")
        self.points.setChecked(getattr(s, "show_points", True))  # noqa: E702
        self.legend = QCheckBox("legend")
        self.legend.setChecked(getattr(s, "show_legend", True))  # what the view shows
        for w in (self.edges, self.boundary, self.points, self.legend):
            shows.addWidget(w)
        form.addRow("Show", shows)
        self.follow = QCheckBox("outline the inspected point's tile in every frame (follow it)")
        self.follow.setToolTip("Epoch videos: the tile holding the inspected point at each checkpoint (CLI: export-video --sweep epochs --follow U,V)")
        self.follow.setChecked(False)  # an export is the screen unless asked for more
        form.addRow("Epoch video", self.follow)
        file_row = QHBoxLayout()
        self.path = QLineEdit()
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        file_row.addWidget(self.path, 1)
        file_row.addWidget(browse)
        form.addRow("File", file_row)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.note)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.export_btn = buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.start_export)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.kind.currentIndexChanged.connect(self._on_kind)
        self._on_kind()

    # -- widgets --------------------------------------------------------------------------------
    def _fit_dpi(self, *_) -> None:
        """Keep the dpi fitted to the pixel size (see app.render.style.fit_dpi) until the user sets one."""
        if not self._dpi_set_by_user:
            from app.render.style import fit_dpi

            self.dpi.blockSignals(True)
            self.dpi.setValue(fit_dpi(self.width_.value(), self.height_.value()))
            self.dpi.blockSignals(False)

    def _on_dpi_edited(self, *_) -> None:
        self._dpi_set_by_user = True

    def _on_kind(self) -> None:
        k = self.kind.currentData()
        video = k in ("epochs", "layers", "path", "turntable")
        self.fps.setEnabled(video)
        self.mode.setEnabled(k != "curves")
        exts = KINDS[k][1]
        p = self.path.text().strip()
        if not p or p == getattr(self, "_auto_path", None):  # untouched default: follow the kind
            self._auto_path = str(Path.home() / f"spline-atlas-{k}{exts[0]}")
            self.path.setText(self._auto_path)
        elif Path(p).suffix.lower() not in exts:
            self.path.setText(str(Path(p).with_suffix(exts[0])))
        if video and (self.width_.value() % 2 or self.height_.value() % 2):
            self.width_.setValue(self.width_.value() + self.width_.value() % 2)
            self.height_.setValue(self.height_.value() + self.height_.value() % 2)
        self.note.setText(
            {
                "epochs": "One frame per checkpoint of the run (uncached epochs are tessellated).",
                "layers": "One frame per layer depth at the current epoch.",
                "path": "Uses the most recently traced visible path.",
                "view3d": "The 3D tab's current scene and camera, rendered at the chosen size.",
                "turntable": "The 3D tab's current scene, one full turn of the camera (72 frames).",
                "pathfig": "The most recently traced visible path over the slice, its class probabilities and (image data) an image strip.",
                "curves": "Computes the curves for every checkpoint (cached on disk); writes a CSV beside the figure.",
            }.get(k, "The current view: epoch, slice, window and layer depth.")
        )

    def _browse(self) -> None:
        k = self.kind.currentData()
        exts = KINDS[k][1]
        filt = ";;".join(f"{e[1:].upper()} (*{e})" for e in exts)
        path, _ = QFileDialog.getSaveFileName(self, "Export to", self.path.text(), filt)
        if path:
            if Path(path).suffix.lower() not in exts:
                path += exts[0]
            self.path.setText(path)

    def request(self) -> ExportRequest:
        k = self.kind.currentData()
        p = self.path.text().strip()
        if not p:
            raise SplineAtlasError("choose a file to export to.")
        if Path(p).suffix.lower() not in KINDS[k][1]:
            raise SplineAtlasError(f"{Path(p).name}: use one of {', '.join(KINDS[k][1])} for this export.")
        return ExportRequest(
            k,
            p,
            self.mode.currentData(),
            self.width_.value(),
            self.height_.value(),
            self.dpi.value(),
            self.fps.value(),
            self.font_scale.value(),
            self.edges.isChecked(),
            self.boundary.isChecked(),
            self.points.isChecked(),
            self.legend.isChecked(),
            self.follow.isChecked(),
        )

    # -- running --------------------------------------------------------------------------------
    def start_export(self) -> None:
        """Validate, then run the export in the window's worker pool with a modal progress dialog."""
        try:
            req = self.request()
        except SplineAtlasError as exc:
            QMessageBox.warning(self, "Export", str(exc))
            return
        if req.kind in GUI_THREAD_KINDS:
            self.export_3d(req)
            return
        self.export_btn.setEnabled(False)
        stop = threading.Event()
        relay = _Relay(self)
        dlg = QProgressDialog(f"Exporting {Path(req.path).name}…", "Cancel", 0, 1000, self)
        dlg.setWindowTitle("Export")
        dlg.setWindowModality(Qt.WindowModality.WindowModal)
        dlg.setMinimumDuration(0)
        dlg.setAutoClose(False)
        dlg.setAutoReset(False)
        dlg.canceled.connect(stop.set)
        relay.progressed.connect(lambda f, m: (dlg.setValue(int(1000 * min(max(f, 0.0), 1.0))), dlg.setLabelText(f"Exporting {Path(req.path).name}…\n{m}")))
        self.progress_dialog = dlg

        def job(progress, cancel):
            def prog(f, m=""):
                relay.progressed.emit(float(f), str(m))
                progress(f, m)

            return run_export(self.ctx, req, prog, lambda: stop.is_set() or cancel())

        state = {"over": False}

        def done(path):
            state["over"] = True
            dlg.hide()
            self.result_path = path
            self.ctx.set_status(f"Exported {path}")
            self.accept()

        def failed(exc):
            if state["over"]:
                return
            state["over"] = True
            dlg.hide()
            self.export_btn.setEnabled(True)
            self.error = exc
            if isinstance(exc, CancelledError) or stop.is_set():
                self.note.setText("Export cancelled; no file was written.")
                return
            QMessageBox.warning(self, "Export failed", str(exc) or type(exc).__name__)

        dlg.show()
        work = self.ctx.work
        jid = work.submit("export", f"Exporting {Path(req.path).name}", job, on_done=done, on_error=failed, supersede=False)
        # cancellations do not reach on_error (the pool drops them): close the dialog ourselves
        dlg.canceled.connect(lambda: (work.cancel("export"), failed(CancelledError("cancelled"))))
        self.job_id = jid

    def export_3d(self, req: ExportRequest) -> None:
        """3D still or turntable: OpenGL renders on the GUI thread, so this loops here with a progress
        dialog (events are processed between frames, so Cancel works)."""
        from PySide6.QtWidgets import QApplication

        from app.export.video import write_video
        from geometry.safe_io import atomic_save

        from .turntable import scene_frames

        tab = self.view3d
        s3 = getattr(tab, "state3d", None)
        try:
            if tab is None or getattr(tab, "scene", None) is None or s3 is None or s3.slice3 is None:
                raise SplineAtlasError("show the 3D slice tab and let it draw first; the export uses its scene.")
            still = req.kind == "view3d"
            # a still is the view as shown (either camera); a turntable turns the turntable camera
            cam = tab.canvas.camera_pose(None if still else "turntable") if getattr(tab, "canvas", None) is not None else None
            n, frame = scene_frames(tab.drawing(), (req.width, req.height), 1 if still else 72, turn=0.0 if still else 360.0, camera=cam)
        except SplineAtlasError as exc:
            self.error = exc
            QMessageBox.warning(self, "Export", str(exc))
            return
        stop = threading.Event()
        dlg = QProgressDialog(f"Rendering {Path(req.path).name}…", "Cancel", 0, 1000, self)
        dlg.setWindowModality(Qt.WindowModality.WindowModal)
        dlg.setMinimumDuration(0)
        dlg.canceled.connect(stop.set)
        self.progress_dialog = dlg
        dlg.show()

        def prog(f, m=""):
            dlg.setValue(int(1000 * min(max(f, 0.0), 1.0)))
            QApplication.processEvents()

        try:
            if still:
                import imageio.v2 as imageio

                atomic_save(req.path, lambda tmp: imageio.imwrite(tmp, frame(0), format="PNG"))
                path = req.path
            else:
                path = str(write_video(req.path, n, frame, fps=req.fps, progress=prog, cancel=stop.is_set))
        except CancelledError as exc:
            dlg.hide()
            self.error = exc
            self.note.setText("Export cancelled; no file was written.")
            return
        except Exception as exc:  # noqa: BLE001 - shown to the user
            dlg.hide()
            self.error = exc
            QMessageBox.warning(self, "Export failed", str(exc) or type(exc).__name__)
            return
        finally:
            frame.canvas.deleteLater()
        dlg.hide()
        self.result_path = path
        self.ctx.set_status(f"Exported {path}")
        self.accept()


def open_export_dialog(ctx, view3d=None, parent: QWidget | None = None) -> ExportDialog:
    """File > Export…: show the dialog (non-blocking)."""
    dlg = ExportDialog(ctx, view3d, parent)
    dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    dlg.show()
    return dlg
