"""The Spline Atlas main window: a shell of menus, docks, tabs, status bar and keys around the Qt-free model.

The model is :class:`~app.model.state.ViewerState` (what the user looks at) and
:class:`~app.model.results.Results` (what was computed for it). The :class:`~app.qt.controller.Controller`
turns state changes into engine jobs and writes the results; the 2D tab's presenter
(:class:`~app.qt.slice_tab.SliceTab`) and every other widget draw from state + results, each handed the
model objects it needs (:class:`~app.qt.context.ViewContext`), never this window.

Layout: data browser (left dock), central tabs (2D slice, paths, training, regions, 3D),
inspector (right dock), epoch/layer controls (bottom dock), progress + cancel in the status bar.
:meth:`MainWindow.add_tab`, :meth:`MainWindow.add_dock` and :meth:`MainWindow.register_exporter` extend it.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Callable

import pyqtgraph as pg
from PySide6.QtCore import QByteArray, QSettings, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QTabWidget,
    QToolBar,
    QWidget,
)

from geometry.cache import ResultCache, default_cache_dir
from geometry.errors import SplineAtlasError

from ..model.results import Results
from ..model.session import is_session_file
from ..model.state import COLOR_MODE_LABELS, PATH_KINDS, ViewerState
from .context import ViewContext
from .controller import Controller
from .data_browser import DataBrowser
from .dialogs import OpenWithModelDialog, RecentFiles, ask_budget, ask_path_settings, ask_threads, ask_trust, save_csv, scrolling, show_layers
from .inspector import Inspector
from .keys import KeyFilter, handle_key, show_keys
from .paths_panel import PathsPanel
from .regions_panel import RegionsPanel
from .sliders import EpochLayerControls
from .slice_tab import SliceTab
from .status_bar import StatusLine
from .theme import Theme
from .training_panel import TrainingPanel
from .view2d import SliceView
from .workers import WorkManager

ORG, APP = "SplineAtlas", "Spline Atlas"
PICK_LABELS = {
    "inspect": ("Inspect", "Click a point to inspect it"),
    "horizontal": ("Horizontal path", "Click a start and an end: horizontal leaf path"),
    "normal": ("Normal path", "Click a start: normal leaf path (Shift+click: a fan of 8, one batch)"),
    "region": ("Region path", "Click two points of the same class: same-class region path"),
    "segment": ("Segment", "Click two points: straight segment"),
}
NORMAL_FAN = 8  # Shift+click with the normal-path tool traces this many normal paths from the point


class MainWindow(QMainWindow):
    """The application window. ``state`` and ``results`` are the Qt-free model it shows."""

    def __init__(self, cache: ResultCache | None = None, settings: QSettings | None = None, theme: Theme | None = None):
        super().__init__()
        self.theme = theme or Theme()
        self.theme.apply_pyqtgraph()
        self.settings = settings or QSettings(ORG, APP)
        self.cache = cache if cache is not None else ResultCache(default_cache_dir() / "results")
        self.state = ViewerState()
        self.results = Results()
        self.work = WorkManager(self)
        self.ctx = ViewContext(self.state, self.results, self.work, self.cache, self.theme)
        self.controller = Controller(
            self.state,
            self.results,
            self.work,
            self.cache,
            self,
            confirm_trust=lambda path, exc: self.confirm_trust(path, exc),
            restore_view3d=self._restore_view3d,
        )
        self._exporters: list[QAction] = []
        self.setWindowTitle(APP)
        self.resize(1500, 950)
        self.setAcceptDrops(True)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)

        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.setUsesScrollButtons(True)  # six tabs must not widen the window past a laptop screen
        self.setCentralWidget(self.tabs)
        self.view2d = SliceView(self.theme)
        self.slice_tab = SliceTab(self.view2d, self.state, self.results, self.work, self.theme, self)
        self.add_tab(self.view2d, "2D slice")
        self.data_browser = DataBrowser(self.theme)
        self.data_dock = self.add_dock(self.data_browser, "Data", Qt.DockWidgetArea.LeftDockWidgetArea)
        self.inspector = Inspector(self.theme)
        self.inspector_dock = self.add_dock(self.inspector, "Inspector", Qt.DockWidgetArea.RightDockWidgetArea)
        self.controls = EpochLayerControls(self.state)
        self.controls.ready = self.controller.playback_ready
        self.controls_dock = self.add_dock(self.controls, "Epoch and layer", Qt.DockWidgetArea.BottomDockWidgetArea, scroll=False)
        self.controls_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.paths_panel = PathsPanel(self.state, self.results, self.theme)
        self.add_tab(self.paths_panel, "Paths")
        self.training_panel = TrainingPanel(self.state, self.theme)
        self.add_tab(self.training_panel, "Training")
        self.regions_panel = RegionsPanel(background=self.theme.background)
        self.regions_panel.set_available(*self.controller.region_stats_available())
        self.add_tab(self.regions_panel, "Regions")
        from .view3d import install_view3d  # the 3D tab (creates its OpenGL canvas only when first shown)

        self.view3d = install_view3d(self.ctx, self.tabs)
        from .compare_tab import install_compare

        self.compare_tab = install_compare(self.ctx, self.tabs)
        from .dynamics_plots import DynamicsPlots

        self.dynamics_plots = DynamicsPlots(self.ctx)  # LC, region density, boundary distance
        self.training_panel.layout().addWidget(self.dynamics_plots, 1)

        self.status_line = StatusLine(self.statusBar(), self.results, self.work, self.cancel_all)
        sl = self.status_line
        self.status_label, self.progress, self.cancel_btn = sl.label, sl.progress, sl.cancel_btn
        self.coord_label, self.info_label = sl.coord_label, sl.info_label
        self._build_actions()
        self._build_toolbar()
        self._connect()
        from .export_dialog import open_export_dialog

        self.register_exporter("Figure or video…", lambda w: setattr(w, "export_dialog", open_export_dialog(w.ctx, w.view3d, w)))
        if theme is None:  # follow the system's light/dark switch while running
            try:
                QApplication.instance().styleHints().colorSchemeChanged.connect(self._on_color_scheme)
            except AttributeError:  # Qt < 6.5
                pass
        self._key_filter = KeyFilter(self)
        QApplication.instance().installEventFilter(self._key_filter)
        self._restore_layout()

    # == the model, for scripts and tests ==========================================================
    bundle = property(lambda self: self.results.bundle)
    tess = property(lambda self: None if self.results.tiles is None else self.results.tiles.by_depth)
    tess_key = property(lambda self: None if self.results.tiles is None else self.results.tiles.key)
    path_results = property(lambda self: self.results.paths)
    last_error = property(lambda self: self.results.last_error, lambda self, value: setattr(self.results, "last_error", value))

    # == extension points ==========================================================================
    def add_tab(self, widget: QWidget, title: str) -> int:
        """Add a central tab (3D view, training dynamics, ...); returns its index."""
        return self.tabs.addTab(widget, title)

    def add_dock(self, widget: QWidget, title: str, area=Qt.DockWidgetArea.RightDockWidgetArea, scroll: bool = True) -> QDockWidget:
        """A dock holding ``widget``; with ``scroll`` its content scrolls when the window is too small for it
        (so the window fits a 1280×720 screen and nothing essential leaves it)."""
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title}")
        dock.setWidget(scrolling(widget) if scroll else widget)
        self.addDockWidget(area, dock)
        if hasattr(self, "view_menu"):
            self.view_menu.addAction(dock.toggleViewAction())
        return dock

    def register_exporter(self, label: str, callback: Callable[["MainWindow"], None], shortcut: str | None = None) -> QAction:
        """Add File > Export > ``label``; the Export menu is created with the first exporter, and the first
        exporter registered without a shortcut gets Ctrl+E."""
        if not self._exporters:
            self.export_menu = self.file_menu.insertMenu(self.act_quit, QMenu("&Export", self)).menu()
            self.file_menu.insertSeparator(self.act_quit)
        act = QAction(label, self)
        if shortcut:
            act.setShortcut(QKeySequence(shortcut))
        elif not any(a.shortcut() == QKeySequence("Ctrl+E") for a in self._exporters):
            act.setShortcut(QKeySequence("Ctrl+E"))
        act.triggered.connect(lambda: self._guard(lambda: callback(self), f"export {label}"))
        self.export_menu.addAction(act)
        self._exporters.append(act)
        return act

    # == building ==================================================================================
    def _build_actions(self) -> None:
        mb = self.menuBar()
        self.file_menu = mb.addMenu("&File")
        a = self.file_menu.addAction("&Open run or checkpoint…", self.open_dialog)
        a.setShortcut(QKeySequence.StandardKey.Open)
        self.file_menu.addAction(
            "Open run &folder…",
            lambda: (d := QFileDialog.getExistingDirectory(self, "Open a run folder", self.settings.value("last_dir", str(Path.cwd())))) and self.open_path(d),
        )
        a = self.file_menu.addAction("Open with your &model class…", self.open_with_model_dialog)
        a.setShortcut(QKeySequence("Ctrl+Shift+O"))
        self.recent = RecentFiles(self.settings, self.file_menu.addMenu("Open &recent"), self.open_path)
        self.recent_menu = self.recent.menu
        self.file_menu.addSeparator()
        self.file_menu.addAction("Open &session…", self.open_session_dialog)
        a = self.file_menu.addAction("&Save session…", self.save_session_dialog)
        a.setShortcut(QKeySequence.StandardKey.Save)
        self.file_menu.addSeparator()
        self.act_quit = self.file_menu.addAction("&Quit", self.close)
        self.act_quit.setShortcut(QKeySequence.StandardKey.Quit)
        edit = mb.addMenu("&Edit")
        a = edit.addAction("&Undo path or pick", lambda: self.state.undo() or self.results.set_status("Nothing to undo."))
        a.setShortcut(QKeySequence.StandardKey.Undo)
        edit.addAction("&Copy the inspector's report", self.inspector.copy_report)
        self.view_menu = mb.addMenu("&View")
        a = self.view_menu.addAction("&Reset view", self.state.reset_window)
        a.setShortcut(QKeySequence("Ctrl+0"))
        self.view_menu.addAction("Region &budget…", lambda: ask_budget(self, self.state))
        self.view_menu.addAction("&Path settings…", lambda: ask_path_settings(self, self.state))
        self.view_menu.addAction("Compute &threads…", lambda: ask_threads(self, self.state))
        self.view_menu.addSeparator()
        for dock in (self.data_dock, self.inspector_dock, self.controls_dock):
            self.view_menu.addAction(dock.toggleViewAction())
        help_menu = mb.addMenu("&Help")
        help_menu.addAction("&Keyboard shortcuts", lambda: show_keys(self))
        help_menu.addAction("Network &layers…", lambda: show_layers(self, self.results, self.state))
        help_menu.addAction(
            "&About Spline Atlas",
            lambda: QMessageBox.about(
                self,
                "About Spline Atlas",
                "Spline Atlas: exact tessellations, power diagrams, decision boundaries and leaf paths of trained piecewise-affine networks.",
            ),
        )

    def _build_toolbar(self) -> None:
        tb = QToolBar("View")
        tb.setObjectName("toolbar-view")
        self.addToolBar(tb)
        tb.addWidget(QLabel(" Colour tiles by "))
        self.color_combo = QComboBox()
        for k, label in COLOR_MODE_LABELS.items():
            self.color_combo.addItem(label, k)
        self.color_combo.currentIndexChanged.connect(lambda i: self.state.set_color_mode(self.color_combo.itemData(i)))
        tb.addWidget(self.color_combo)
        tb.addSeparator()
        self.toggle_actions: dict[str, QAction] = {}
        for key, label, tip in [
            ("show_points", "Data", "Show the dataset's points (projected into the slice)"),
            ("show_edges", "Edges", "Show the tiles' edges (newest layer dark, earlier grey)"),
            ("show_boundary", "Boundary", "Show the exact decision boundary (a regression run's level set f = L) in red"),
            ("show_legend", "Legend", "Show the legend of the 2D view"),
            ("show_sites", "Sites", "Show the power-diagram sites of the current layer: every tile's centroid μ projected into the slice, Bᵀ(μ − o)"),
        ]:
            act = QAction(label, self)
            act.setCheckable(True)
            act.setChecked(getattr(self.state.settings, key))
            act.setToolTip(tip)
            act.toggled.connect(lambda on, k=key: self.state.update_settings(**{k: on}))
            tb.addAction(act)
            self.toggle_actions[key] = act
        tb.addSeparator()
        tb.addWidget(QLabel(" Click: "))
        self.pick_group = QActionGroup(self)
        self.pick_actions: dict[str, QAction] = {}
        for mode in ("inspect",) + PATH_KINDS:
            label, tip = PICK_LABELS[mode]
            act = QAction(label, self)
            act.setCheckable(True)
            act.setToolTip(tip + " (Esc cancels a pick)")
            act.setChecked(mode == "inspect")
            act.triggered.connect(lambda _=False, m=mode: self.state.set_pick_mode(m))
            self.pick_group.addAction(act)
            tb.addAction(act)
            self.pick_actions[mode] = act
        tb.addSeparator()
        tb.addAction("Reset view", self.state.reset_window)

    def _connect(self) -> None:
        ev, rev, ctl = self.state.events, self.results.events, self.controller
        ev.slice.connect(self._on_slice)
        ev.color_mode.connect(self._on_color_mode)
        ev.inspected.connect(lambda p: self.inspector.clear() if p is None else self.inspector.set_busy(p))
        ev.pick_mode.connect(self._on_pick_mode)
        rev.bundle.connect(self._on_run_opened)
        rev.point_report.connect(self._on_point_report)
        rev.region_info.connect(lambda info: info is not None and self.results.point_report is not None and self.inspector.set_region_info(info))
        rev.region_counts.connect(self.training_panel.set_region_counts)
        rev.trace_over_run.connect(self.training_panel.set_trace)
        rev.region_track.connect(lambda t: self.training_panel.set_track(t) if t is not None else None)
        rev.region_stats.connect(lambda res: res is not None and self.regions_panel.set_result(res))
        rev.error.connect(lambda e: self._error_dialog(*e))
        self.view2d.clicked.connect(self._on_view_click)
        self.view2d.hovered.connect(lambda u, v: self.coord_label.setText(f"u = {u:.4g}, v = {v:.4g}"))
        self.data_browser.slice_requested.connect(ctl.request_slice)
        self.training_panel.tessellate_all_requested.connect(ctl.tessellate_every_epoch)
        self.training_panel.precompute_requested.connect(ctl.precompute_every_epoch)
        self.training_panel.follow_requested.connect(ctl.follow_inspected)
        self.training_panel.trace_requested.connect(ctl.trace_over_run)
        self.training_panel.csv_requested.connect(
            lambda: save_csv(self, self.results, "Export the training curves", "training.csv", self.training_panel.export_csv)
        )
        self.regions_panel.csv_requested.connect(
            lambda: save_csv(self, self.results, "Export the region table", "region_points.csv", self.regions_panel.export_csv)
        )
        self.paths_panel.csv_requested.connect(lambda: save_csv(self, self.results, "Export the path's diagnostics", "path.csv", self.paths_panel.export_csv))
        self.regions_panel.compute_requested.connect(self._compute_region_stats)
        self.work.error.connect(lambda description, exc, tb: self.results.report_error(f"{description} failed", exc, tb))

    # == opening and sessions ======================================================================
    def open_dialog(self) -> None:
        start = self.settings.value("last_dir", str(Path.cwd()))
        kinds = "*.json *.pt *.pth *.safetensors *.ts *.ckpt *.onnx *.pt2 *.bin"
        path, _ = QFileDialog.getOpenFileName(self, "Open a run, checkpoint or session", start, f"Runs, checkpoints and sessions ({kinds});;All files (*)")
        if path:
            self.open_path(path)

    def open_with_model_dialog(self) -> None:
        """Open a checkpoint or run whose architecture is the user's class (the CLI's ``--model``)."""
        dlg = OpenWithModelDialog(self, self.settings.value("last_dir", str(Path.cwd())))
        while dlg.exec():
            try:
                ref = dlg.model_ref()
            except SplineAtlasError as exc:
                self.show_error("Open with your model class", exc)
                continue
            self.settings.setValue("last_dir", str(Path(dlg.path.text().strip()).parent))
            self.controller.open_path(dlg.path.text().strip(), model=ref)
            return

    def open_path(self, path: str | Path, trust_code: bool = False) -> None:
        """Open a run (run.json, folder), a checkpoint or a session file, in the background; a file whose
        loading would run code is opened only after :meth:`confirm_trust`; whatever fails, the open run stays."""
        if is_session_file(path):
            self.open_session(path)
            return
        self.settings.setValue("last_dir", str(Path(path).parent))
        self.controller.open_path(path, trust_code)

    def confirm_trust(self, path: str, exc) -> bool:
        """Ask whether to run the code stored in ``path`` (default No)."""
        return ask_trust(self, path, exc)

    def _on_run_opened(self, bundle) -> None:
        if bundle is None:
            return
        self._add_recent(bundle.path)
        if bundle.run.task == "generate" and self.state.color_mode == "class":  # a generator has no classes: its tiles' area stretch
            self.state.set_color_mode("volume")
        self.controls.set_run(bundle.epochs, bundle.depth)
        X, y = bundle.points()
        n = len(bundle.run)
        self.data_browser.set_dataset(
            f"<b>{bundle.name}</b><br>{n} checkpoint{'s' if n != 1 else ''} · {bundle.depth} layers · "
            f"{bundle.input_dim} inputs · "
            + (
                "regression"
                if bundle.is_regression
                else f"generator into R^{bundle.run.spec.get('output_dim')}"
                if bundle.run.task == "generate"
                else f"{bundle.num_classes} classes"
            )
            + (f"<br>dataset: {bundle.dataset.name} ({len(X)} training points)" if bundle.dataset else "<br>no dataset"),
            X,
            y,
            bundle.input_dim,
            bundle.image_shape,
            bundle.preprocessing,
        )
        self.inspector.set_run(bundle.class_names, bundle.image_shape, bundle.preprocessing, output_shape=bundle.run.output_shape)
        # smooth networks have no regions: hide the rows (no region job runs, they would say "computing…" forever)
        self.inspector.enable_region_rows(bundle.piecewise_affine)
        self.training_panel.set_run(bundle)
        self.regions_panel.clear()
        self.regions_panel.set_available(*self.controller.region_stats_available())
        self.setWindowTitle(f"{bundle.name} — {APP}")

    def _restore_view3d(self, data: dict) -> None:
        self.view3d.state3d.apply_dict(data)

    def save_session_dialog(self) -> None:
        if self.bundle is None:
            self.show_error("Nothing to save", "Open a run first (File > Open).")
            return
        start = self.settings.value("last_session", str(Path.cwd() / "session.json"))
        path, _ = QFileDialog.getSaveFileName(self, "Save session", start, "Spline Atlas sessions (*.json)")
        if path:
            self.save_session(path)

    def save_session(self, path: str | Path) -> None:
        self.view2d.flush_window()
        if self.controller.save_session(path, self.view3d.state3d.to_dict()):
            self.settings.setValue("last_session", str(path))

    def open_session_dialog(self) -> None:
        start = self.settings.value("last_session", str(Path.cwd()))
        path, _ = QFileDialog.getOpenFileName(self, "Open session", start, "Spline Atlas sessions (*.json)")
        if path:
            self.open_session(path)

    def open_session(self, path: str | Path) -> None:
        """Read a session file, open its run, then restore slice, sliders, paths and view settings."""
        if self.controller.open_session(path):
            self.settings.setValue("last_session", str(path))
            self._add_recent(str(path))

    # == reacting to the model =====================================================================
    def _on_slice(self, sl) -> None:
        if sl is not None:
            self.info_label.setText(sl.description)
            self.data_browser.set_choice(self.state.slice_choice)

    def _on_color_mode(self, mode: str) -> None:
        i = self.color_combo.findData(mode)
        if i >= 0 and self.color_combo.currentIndex() != i:
            self.color_combo.setCurrentIndex(i)

    def _on_pick_mode(self, mode: str) -> None:
        act = self.pick_actions.get(mode)
        if act is not None and not act.isChecked():
            act.setChecked(True)
        self.results.set_status(PICK_LABELS.get(mode, (mode, ""))[1])

    def _on_point_report(self, rep) -> None:
        if rep is None:
            return
        self.inspector.set_report(rep)
        if self.results.region_info is not None:
            self.inspector.set_region_info(self.results.region_info)  # the slow part finished first

    def _on_view_click(self, u: float, v: float) -> None:
        if self.bundle is None or self.state.slice is None:
            return
        done = self.state.add_pick(u, v)
        mode = self.state.pick_mode
        if done is None or mode == "inspect":
            return
        if mode == "normal" and QApplication.keyboardModifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.state.add_paths(mode, [done[0]] * NORMAL_FAN)  # a fan: each id seeds its own direction
        elif mode in PATH_KINDS:
            self.state.add_path(mode, done[0], done[1] if len(done) > 1 else None)

    def _compute_region_stats(self, req: dict) -> None:
        b, panel = self.bundle, self.regions_panel
        if b is None:
            return
        panel.set_computing(f"Computing the regions of {int(req['n'])} points per set at epoch {b.epochs[self.state.epoch_index]} …")
        self.controller.compute_region_stats(
            req["n"], req["sets"], req["active"], on_failed=lambda exc: panel.set_computing(f"Region statistics failed: {exc}")
        )

    def cancel_all(self) -> None:
        self.controller.cancel_all()

    # == status, errors ============================================================================
    def show_error(self, title: str, exc, tb: str = "") -> None:
        """Report a failure: one line in the status bar (the results' status) and a dialog."""
        self.results.report_error(title, exc, tb)

    def _error_dialog(self, title: str, text: str, exc, tb: str) -> None:
        """The dialog of a reported failure: user errors (SplineAtlasError) in one line; bugs with details."""
        if not isinstance(exc, (SplineAtlasError, str)) and not tb:
            tb = "".join(traceback.format_exception(exc)) if isinstance(exc, BaseException) else ""
        box = QMessageBox(QMessageBox.Icon.Warning, title, text, QMessageBox.StandardButton.Ok, self)
        if tb:
            box.setDetailedText(tb)
        box.setModal(False)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.error_box = box
        box.show()

    def _guard(self, fn: Callable[[], None], what: str) -> None:
        try:
            fn()
        except Exception as exc:  # noqa: BLE001
            self.show_error(f"Could not {what}", exc)

    def _on_color_scheme(self, *_) -> None:
        """The system switched light/dark: recolour the plots (Qt recolours the widgets itself)."""
        self.theme.__init__()
        self.theme.apply_pyqtgraph()
        bg = self.theme.background
        for w in (
            self.view2d.plot,
            self.inspector.bars,
            self.data_browser.scatter_w,
            self.regions_panel.radius_plot,
            self.regions_panel.active_plot,
            self.inspector.images,
            self.paths_panel.plots,
            self.training_panel.plots,
        ):
            w.setBackground(bg)
        self.view2d._legend_key = None
        self.view2d.legend.setBrush(pg.mkBrush(self.view2d._legend_bg()))
        self.slice_tab.redraw()

    # == layout, drag and drop, keys =================================================
    def _add_recent(self, path: str) -> None:
        self.recent.add(path)

    def _restore_layout(self) -> None:
        geo = self.settings.value("geometry")
        if isinstance(geo, QByteArray):
            self.restoreGeometry(geo)
        st = self.settings.value("windowState")
        if isinstance(st, QByteArray):
            self.restoreState(st)
        else:
            self.resizeDocks([self.data_dock, self.inspector_dock], [300, 330], Qt.Orientation.Horizontal)

    def closeEvent(self, ev) -> None:
        self.settings.setValue("geometry", self.saveGeometry())
        self.settings.setValue("windowState", self.saveState())
        QApplication.instance().removeEventFilter(self._key_filter)
        self.work.shutdown()
        super().closeEvent(ev)

    def dragEnterEvent(self, ev) -> None:
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev) -> None:
        urls = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if urls:
            ev.acceptProposedAction()
            self.open_path(urls[0])

    def keyPressEvent(self, ev) -> None:
        if ev.modifiers() & ~Qt.KeyboardModifier.KeypadModifier or not self.handle_key(ev.key()):
            super().keyPressEvent(ev)

    def handle_key(self, key: int) -> bool:
        """Window-wide keys; returns True when handled."""
        return handle_key(self.state, key, self.bundle is not None, self.results.set_status)
