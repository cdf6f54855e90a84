"""The Spline Atlas main window: wires the viewer state, the engine (in workers) and the widgets.

Layout: data browser (left dock), central tabs (2D slice, paths, ...),
inspector (right dock), epoch/layer controls (bottom dock), progress + cancel in the status bar.
Other parts of the app extend it with small calls: :meth:`MainWindow.add_tab` for a new central tab,
:meth:`MainWindow.register_exporter` for an entry of File > Export (the menu exists only once one
registers), :meth:`MainWindow.add_dock`.
"""
from __future__ import annotations

import traceback
from pathlib import Path
from typing import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QByteArray, QEvent, QObject, QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QColor, QKeySequence
from PySide6.QtWidgets import (QAbstractItemView, QAbstractSlider, QAbstractSpinBox, QApplication, QComboBox,
                               QDockWidget, QFileDialog, QLabel, QLineEdit, QMainWindow, QMessageBox,
                               QProgressBar, QPushButton, QTabWidget, QTextEdit, QToolBar, QWidget)

from geometry.cache import ResultCache, default_cache_dir
from geometry.errors import SplineAtlasError, UnsafePickleError
from geometry.safe_io import printable

from .. import jobs
from ..state import PATH_NAMES, SliceChoice, ViewerState, read_session, save_session
from .data_browser import DataBrowser
from .inspector import Inspector
from .sliders import EpochLayerControls
from .theme import BOUNDARY_COLOR, Theme, class_color, class_rgba, hash_palette, layer_rgba
from .view2d import SliceView, cosmetic_pen, edge_groups, prepare_tiles

ORG, APP = "SplineAtlas", "Spline Atlas"
MAX_RECENT = 10
MAX_POINTS_SHOWN = 4000
SLOPE_LEVELS = 64
ASYNC_TILES = 6000  # above this many tiles + cells, painter paths are built in a worker thread
COLOR_MODE_LABELS = {"class": "Predicted class", "slope": "‖A_ω‖ (slope norm)",
                     "hash": "Activation-pattern hash", "layer": "Layer of origin"}
PICK_LABELS = {"inspect": ("Inspect", "Click a point to inspect it"),
               "horizontal": ("Horizontal path", "Click a start and an end: horizontal leaf path"),
               "normal": ("Normal path", "Click a start: normal leaf path (Shift+click: a fan of 8, one batch)"),
               "region": ("Region path", "Click two points of the same class: same-class region path"),
               "segment": ("Segment", "Click two points: straight segment")}
NORMAL_FAN = 8  # Shift+click with the normal-path tool traces this many normal paths from the point
PATH_COLORS = ["#ff00aa", "#00b3b3", "#ff7f0e", "#7b3fe4", "#2ca02c", "#8c564b"]


def is_session_file(path: str | Path) -> bool:
    p = Path(path)
    if p.suffix.lower() != ".json" or not p.is_file():
        return False
    try:
        with open(p, "rb") as fh:           # the head only: the file is not trusted yet
            head = fh.read(4000).decode("utf-8", "replace")
    except OSError:
        return False
    return '"splineatlas-session"' in head


class MainWindow(QMainWindow):
    """The application window. ``state`` is the Qt-free :class:`ViewerState` it observes."""

    def __init__(self, cache: ResultCache | None = None, settings: QSettings | None = None,
                 theme: Theme | None = None):
        super().__init__()
        self.theme = theme or Theme()
        self.theme.apply_pyqtgraph()
        self.settings = settings or QSettings(ORG, APP)
        self.cache = cache if cache is not None else ResultCache(default_cache_dir() / "results")
        self.state = ViewerState()
        from .workers import WorkManager

        self.work = WorkManager(self)
        self.bundle: jobs.RunBundle | None = None
        self.tess: list | None = None          # tessellation of the current (epoch, slice, window), all depths
        self.tess_key: str | None = None
        self._tess_epoch: int | None = None     # epoch index and window of the exact tiles last shown
        self._tess_window: tuple | None = None
        self.tess_error: str | None = None
        self.path_results: dict[int, object] = {}
        self._sites: dict = {}                 # (tessellation key, depth) -> (R, 2) projected sites
        self._pending_session: dict | None = None
        self._pending_region_info: tuple | None = None   # (u, info) that arrived before its point's report
        self._exporters: list[QAction] = []
        self.last_error: str | None = None
        self.setWindowTitle(APP)
        self.resize(1500, 950)
        self.setAcceptDrops(True)
        self.setDockOptions(QMainWindow.DockOption.AnimatedDocks | QMainWindow.DockOption.AllowTabbedDocks)

        # central tabs
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.setCentralWidget(self.tabs)
        self.view2d = SliceView(self.theme)
        self.add_tab(self.view2d, "2D slice")

        # docks
        self.data_browser = DataBrowser(self.theme)
        self.data_dock = self.add_dock(self.data_browser, "Data", Qt.DockWidgetArea.LeftDockWidgetArea)
        self.inspector = Inspector(self.theme)
        self.inspector_dock = self.add_dock(self.inspector, "Inspector", Qt.DockWidgetArea.RightDockWidgetArea)
        self.controls = EpochLayerControls(self.state)
        # playback steps only when the current frame is drawn and the next one is pre-computed
        self.controls.ready = lambda: not (self.work.busy("tessellation") or self.work.busy("prefetch")
                                           or self._tess_timer.isActive())
        self.controls_dock = self.add_dock(self.controls, "Epoch and layer", Qt.DockWidgetArea.BottomDockWidgetArea)
        self.controls_dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.inspector.enable_region_rows(jobs.region_geometry_available())

        self.paths_panel = None
        try:
            from .paths_panel import PathsPanel
        except ImportError:
            PathsPanel = None
        if PathsPanel is not None:
            self.paths_panel = PathsPanel(self.state, self.theme)
            self.add_tab(self.paths_panel, "Paths")
        from .training_panel import TrainingPanel

        self.training_panel = TrainingPanel(self.state, self.theme)
        self.add_tab(self.training_panel, "Training")
        self.training_panel.tessellate_all_requested.connect(self._tessellate_every_epoch)
        self.training_panel.trace_requested.connect(self._trace_over_run)
        from .regions_panel import RegionsPanel

        self.regions_panel = RegionsPanel(background=self.theme.background)
        self.regions_panel.set_available(False, "Regions: open a run with a dataset to compute the statistics.")
        self.add_tab(self.regions_panel, "Regions")
        self.regions_panel.compute_requested.connect(self._compute_region_stats)
        from .view3d import install_view3d  # the 3D tab (creates its OpenGL canvas only when first shown)

        self.view3d = install_view3d(self)

        self._build_status_bar()
        self._build_actions()
        self._build_toolbar()
        self._connect_state()
        from .dynamics_plots import install_dynamics_plots
        from .export_dialog import install_export

        install_export(self)                 # File > Export > Figure or video… (Ctrl+E)
        install_dynamics_plots(self)         # LC, region density, boundary distance in the Training tab

        self._tess_timer = QTimer(self)
        self._tess_timer.setSingleShot(True)
        self._tess_timer.setInterval(80)
        self._tess_timer.timeout.connect(self._request_tessellation)
        self.view2d.clicked.connect(self._on_view_click)
        self.view2d.hovered.connect(lambda u, v: self.coord_label.setText(f"u = {u:.4g}, v = {v:.4g}"))
        self.view2d.window_changed.connect(self._on_view_window)
        self.data_browser.slice_requested.connect(self.request_slice)
        self.work.activity.connect(self._on_activity)
        self.work.error.connect(self._on_job_error)
        if theme is None:  # follow the system's light/dark switch while running
            try:
                QApplication.instance().styleHints().colorSchemeChanged.connect(self._on_color_scheme)
            except AttributeError:  # Qt < 6.5
                pass
        self._key_filter = _KeyFilter(self)
        QApplication.instance().installEventFilter(self._key_filter)
        self._restore_layout()

    # == extension points ==========================================================================
    def add_tab(self, widget: QWidget, title: str) -> int:
        """Add a central tab (3D view, training dynamics, ...); returns its index."""
        return self.tabs.addTab(widget, title)

    def add_dock(self, widget: QWidget, title: str, area=Qt.DockWidgetArea.RightDockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        if hasattr(self, "view_menu"):
            self.view_menu.addAction(dock.toggleViewAction())
        return dock

    def register_exporter(self, label: str, callback: Callable[["MainWindow"], None],
                          shortcut: str | None = None) -> QAction:
        """Add File > Export > ``label``; the Export menu is created with the first exporter.

        The first exporter registered without a shortcut gets Ctrl+E.
        """
        if not self._exporters:
            self.export_menu = self.file_menu.insertMenu(self.act_quit, _menu(self, "&Export")).menu()
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
    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.status_label = QLabel("Ready")
        self.status_label.setMinimumWidth(200)
        sb.addWidget(self.status_label, 1)
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(220)
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setVisible(False)
        sb.addPermanentWidget(self.progress)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setToolTip("Cancel the running computation")
        self.cancel_btn.setVisible(False)
        self.cancel_btn.clicked.connect(self.cancel_all)
        sb.addPermanentWidget(self.cancel_btn)
        self.coord_label = QLabel("")
        self.coord_label.setMinimumWidth(190)
        self.coord_label.setToolTip("slice coordinates under the mouse")
        sb.addPermanentWidget(self.coord_label)
        self.info_label = QLabel("")
        sb.addPermanentWidget(self.info_label)

    def _build_actions(self) -> None:
        mb = self.menuBar()
        self.file_menu = mb.addMenu("&File")
        a = self.file_menu.addAction("&Open run or checkpoint…", self.open_dialog)
        a.setShortcut(QKeySequence.StandardKey.Open)
        self.recent_menu = self.file_menu.addMenu("Open &recent")
        self.file_menu.addSeparator()
        self.file_menu.addAction("Open &session…", self.open_session_dialog)
        a = self.file_menu.addAction("&Save session…", self.save_session_dialog)
        a.setShortcut(QKeySequence.StandardKey.Save)
        self.file_menu.addSeparator()
        self.act_quit = self.file_menu.addAction("&Quit", self.close)
        self.act_quit.setShortcut(QKeySequence.StandardKey.Quit)
        self._refresh_recent()
        self.view_menu = mb.addMenu("&View")
        a = self.view_menu.addAction("&Reset view", self.state.reset_window)
        a.setShortcut(QKeySequence("Ctrl+0"))
        self.view_menu.addAction("Region &budget…", self._ask_budget)
        self.view_menu.addAction("&Path settings…", self._ask_path_settings)
        self.view_menu.addSeparator()
        for dock in (self.data_dock, self.inspector_dock, self.controls_dock):
            self.view_menu.addAction(dock.toggleViewAction())
        help_menu = mb.addMenu("&Help")
        help_menu.addAction("&Keyboard shortcuts", self._show_keys)
        help_menu.addAction("&About Spline Atlas", self._about)

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
        for key, label, tip in [("show_points", "Data", "Show the dataset's points (projected into the slice)"),
                                ("show_edges", "Edges", "Show the tiles' edges (newest layer dark, earlier grey)"),
                                ("show_boundary", "Boundary", "Show the exact decision boundary (red)"),
                                ("show_sites", "Sites", "Show the power-diagram sites of the current layer: every tile's "
                                 "centroid μ projected into the slice, Bᵀ(μ − o)")]:
            if key == "show_sites" and not jobs.engine_available("power_diagram", "slice_power_diagram"):
                continue
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
        for mode in self._available_pick_modes():
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

    def _available_pick_modes(self) -> list[str]:
        modes = ["inspect"]
        if self.paths_panel is not None:
            from . import paths_panel

            modes += [m for m in ("horizontal", "normal", "region", "segment") if paths_panel.path_kind_available(m)]
        return modes

    def _connect_state(self) -> None:
        ev = self.state.events
        ev.slice.connect(self._on_slice)
        ev.window.connect(self._on_state_window)
        ev.epoch_index.connect(lambda _: self._schedule_tessellation())
        ev.depth.connect(lambda _: self._redraw())
        ev.color_mode.connect(self._on_color_mode)
        ev.settings.connect(lambda _: (self._redraw(), self._schedule_tessellation()))
        ev.picks.connect(self.view2d.set_picks)
        ev.inspected.connect(self._on_inspected)
        ev.pick_mode.connect(self._on_pick_mode)
        ev.paths.connect(self._on_paths)

    # == opening ===================================================================================
    def open_dialog(self) -> None:
        start = self.settings.value("last_dir", str(Path.cwd()))
        path, _ = QFileDialog.getOpenFileName(
            self, "Open a run, checkpoint or session", start,
            "Runs, checkpoints and sessions (*.json *.pt *.pth *.safetensors *.ts);;All files (*)")
        if path:
            self.open_path(path)

    def open_path(self, path: str | Path, trust_code: bool = False) -> None:
        """Open a run (run.json, folder), a checkpoint or a session file, in the background. A file whose
        loading would run code is opened only after the user says Yes to :meth:`confirm_trust`; whatever
        fails, the run already open stays."""
        path = str(path)
        if is_session_file(path):
            self.open_session(path)
            return
        self.settings.setValue("last_dir", str(Path(path).parent))
        self._set_status(f"Opening {printable(path, 120)} …")

        def failed(exc) -> None:
            if isinstance(exc, UnsafePickleError) and not trust_code and self.confirm_trust(path, exc):
                self.open_path(path, trust_code=True)
            else:
                self.show_error(f"Could not open {printable(path, 120)}", exc)

        self.work.submit("open", f"Opening {printable(Path(path).name, 60)}",
                         lambda progress, cancel: jobs.open_run_bundle(path, progress, cancel, trust_code),
                         on_done=self._on_run_opened, on_error=failed)

    def confirm_trust(self, path: str, exc) -> bool:
        """Ask whether to run the code stored in ``path`` (default No)."""
        box = QMessageBox(QMessageBox.Icon.Warning, "Trust this file?",
                          f"{printable(path, 200)}\n\nOpening this file runs code stored in it (a full pickle or a "
                          f"TorchScript archive). Code from a file can do anything your user account can: read, "
                          f"change or send your files. Open it only if you trust where it came from.\n\n"
                          f"{printable(exc, 400)}",
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.button(QMessageBox.StandardButton.Yes).setText("Trust and open")
        return box.exec() == QMessageBox.StandardButton.Yes

    def _on_run_opened(self, bundle: jobs.RunBundle) -> None:
        self.bundle = bundle
        self.tess, self.tess_key, self.tess_error = None, None, None
        self._tess_epoch, self._tess_window = None, None
        self.path_results.clear()
        self.view2d.clear_tiles()
        self.view2d.set_preview(None)
        self._add_recent(bundle.path)
        # The controls learn the new run's epochs before the state announces its epoch index: a run with
        # more checkpoints than the open one used to index the old epoch list and leave the window broken.
        self.controls.set_run(bundle.epochs, bundle.depth)
        self.state.set_run(str(Path(bundle.path).resolve()), len(bundle.run), bundle.depth)
        X, y = bundle.points()
        self.data_browser.set_dataset(
            f"<b>{bundle.name}</b><br>{len(bundle.run)} checkpoint{'s' if len(bundle.run) != 1 else ''} · "
            f"{bundle.depth} layers · "
            f"{bundle.input_dim} inputs · {bundle.num_classes} classes"
            + (f"<br>dataset: {bundle.dataset.name} ({len(X)} training points)" if bundle.dataset else "<br>no dataset"),
            X, y, bundle.input_dim, bundle.image_shape)
        self.inspector.set_run(bundle.class_names, bundle.image_shape)
        # smooth networks have no regions: hide the rows (no region job runs, they would say "computing…" forever)
        self.inspector.enable_region_rows(jobs.region_geometry_available() and bundle.piecewise_affine)
        if self.paths_panel is not None:
            self.paths_panel.set_run(bundle)
        self.training_panel.set_run(bundle)
        self.work.cancel("region-stats")
        self.regions_panel.clear()
        self.regions_panel.set_available(*self._region_stats_available(bundle))
        self.setWindowTitle(f"{bundle.name} — {APP}")
        if not bundle.piecewise_affine:
            self._set_status("This network has smooth layers: exact tiles are not available; showing predictions.")
        session, self._pending_session = self._pending_session, None
        if session is not None and session.get("slice"):
            self.state.apply_session(session)
            self.data_browser.set_choice(self.state.slice_choice)
            if session.get("view3d"):
                try:
                    self.view3d.state3d.apply_dict(session["view3d"])
                except SplineAtlasError as exc:
                    self.show_error("The session's 3D view could not be restored", exc)
        else:
            self.request_slice(jobs.default_slice_choice(bundle))

    def request_slice(self, choice: SliceChoice) -> None:
        """Build the slice for ``choice`` in a worker, then make it current."""
        if self.bundle is None:
            return
        bundle, epoch = self.bundle, self.state.epoch_index
        self.work.submit("slice", "Preparing the slice",
                         lambda progress, cancel: jobs.make_slice(bundle, choice, epoch, progress, cancel),
                         on_done=lambda res: self._set_slice(res, choice),
                         on_error=lambda exc: self.show_error("Could not make that slice", exc))

    def _set_slice(self, res, choice: SliceChoice) -> None:
        sl, window = res
        self.state.set_slice(sl, choice, window)
        self.data_browser.set_choice(choice)

    # == sessions ==================================================================================
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
        try:
            save_session(self.state, path, self.view3d.state3d.to_dict())
        except OSError as exc:
            self.show_error("Could not save the session", exc)
            return
        self.settings.setValue("last_session", str(path))
        self._set_status(f"Session saved to {path}")

    def open_session_dialog(self) -> None:
        start = self.settings.value("last_session", str(Path.cwd()))
        path, _ = QFileDialog.getOpenFileName(self, "Open session", start, "Spline Atlas sessions (*.json)")
        if path:
            self.open_session(path)

    def open_session(self, path: str | Path) -> None:
        """Read a session file, open its run, then restore slice, sliders, paths and view settings."""
        try:
            data = read_session(path)
        except SplineAtlasError as exc:
            self.show_error(f"Could not open session {path}", exc)
            return
        if not data.get("run"):
            self.show_error("Session has no run", "This session file names no run to open.")
            return
        run = Path(data["run"])
        if not run.is_absolute():
            run = (Path(path).parent / run).resolve()
        self.settings.setValue("last_session", str(path))
        self._add_recent(str(path))
        self._pending_session = data
        self.work.submit("open", f"Opening {run.name}",
                         lambda progress, cancel: jobs.open_run_bundle(run, progress, cancel),
                         on_done=self._on_run_opened,
                         on_error=lambda exc: self.show_error(f"Could not open the session's run {run}", exc))

    # == tessellation ==============================================================================
    def _on_slice(self, sl) -> None:
        self.tess, self.tess_key = None, None
        self._tess_epoch, self._tess_window = None, None
        self.view2d.clear_tiles()
        self.path_results.clear()
        if self.bundle is None or sl is None:
            return
        X, y = self.bundle.points()
        if len(X):
            if len(X) > MAX_POINTS_SHOWN:
                keep = np.random.default_rng(0).choice(len(X), MAX_POINTS_SHOWN, replace=False)
                X, y = X[keep], y[keep]
            self._points_u, self._points_y = sl.project(X), y
        else:
            self._points_u, self._points_y = np.zeros((0, 2)), np.zeros(0, np.int64)
        self.view2d.set_anchors(sl.anchors if len(sl.anchors) else None)
        self.info_label.setText(sl.description)
        self._update_legend()

    def _on_state_window(self, window) -> None:
        vis = self.view2d.visible_window()
        tol = 1e-9 * max(1.0, abs(window[1] - window[0]))
        if not np.allclose(vis, window, rtol=0, atol=tol):
            self.view2d.show_window(window)
            vis = self.view2d.visible_window()
            if self.view2d.isVisible() and not np.allclose(vis, window, rtol=0, atol=tol):
                # the 1:1 aspect shows more than asked on one side: tessellate what is visible
                self.state.set_window(vis)
                return
        self._schedule_tessellation()

    def _on_view_window(self, window) -> None:
        if self.bundle is not None and self.state.slice is not None:
            self.state.set_window(window)

    def _schedule_tessellation(self) -> None:
        """Draw at once from the memory cache when possible (instant scrubbing); else compute after a short
        debounce, so that a burst of slider/zoom changes starts one job, not many."""
        b, st = self.bundle, self.state
        if b is not None and st.slice is not None and b.piecewise_affine:
            key = jobs.tessellation_key(b, st.epoch_index, st.slice, st.window, st.settings.max_regions)
            hit = self.cache.peek(key)
            if hit is not None:
                self._tess_timer.stop()
                self.work.cancel("tessellation")
                if key != self.tess_key:
                    self._on_tessellation(key, hit)
                return
        self._tess_timer.start()

    def cancel_all(self) -> None:
        """Cancel: every running job, and the debounced tessellation that has not started yet (it would
        otherwise start a new job right after the user pressed Cancel)."""
        self._tess_timer.stop()
        self.work.cancel()
        st = self.state
        if self.tess is None and self._tess_epoch is not None and self._tess_epoch != st.epoch_index \
                and self._tess_window is not None and np.allclose(self._tess_window, st.window):
            # the exact tiles shown last were of another epoch: go back to it (the slider follows), from the cache
            st.set_epoch_index(self._tess_epoch)

    def _request_tessellation(self) -> None:
        """Compute (or fetch from the cache) the tiles of the visible window at the current epoch."""
        b, st = self.bundle, self.state
        if b is None or st.slice is None:
            return
        epoch, sl, window, budget = st.epoch_index, st.slice, st.window, st.settings.max_regions
        exact = b.piecewise_affine and jobs.engine_available("tessellation", "tessellate_all_depths")
        if not exact:
            self._request_preview(epoch, sl, window)
            return
        key = jobs.tessellation_key(b, epoch, sl, window, budget)
        if key == self.tess_key:
            return
        hit = self.cache.peek(key)
        if hit is not None:
            self._on_tessellation(key, hit)
            return
        if self.tess is not None and self._tess_epoch != epoch:
            # the tiles on screen are another epoch's: take them down, so the view shows this epoch's
            # preview (labelled in the status bar) until its exact tiles arrive, never the old picture
            self.tess, self.tess_key = None, None
            self.view2d.clear_tiles()
            self._redraw_overlays()
        self._request_preview(epoch, sl, window)
        cache = self.cache
        self.work.submit("tessellation", f"Tessellating epoch {b.epochs[epoch]}",
                         lambda progress, cancel: jobs.tessellate_all(b, epoch, sl, window, budget, cache,
                                                                      progress, cancel),
                         on_done=lambda res: self._on_tessellation(key, res, epoch),
                         on_error=lambda exc: self._on_tessellation_error(key, exc))

    def _request_preview(self, epoch, sl, window) -> None:
        b = self.bundle
        self.work.submit("preview", "Predicting classes",
                         lambda progress, cancel: jobs.class_map(b, epoch, sl, window),
                         on_done=self._on_preview)

    def _on_preview(self, cm: jobs.ClassMap) -> None:
        rgba = class_rgba(max(self.bundle.num_classes, 1))[cm.classes].copy()
        rgba[..., 3] = (self.theme.tile_alpha * (0.35 + 0.65 * cm.confidence)).astype(np.uint8)
        self.view2d.set_preview(rgba, cm.window)
        self._preview_window = tuple(cm.window)
        if self.tess is not None and np.allclose(self._tess_window, cm.window) and self._tess_epoch == cm.epoch_index:
            self.view2d.preview.setVisible(False)  # the exact tiles of this window are already shown
        else:
            self._redraw_overlays()

    def _on_tessellation(self, key: str, tess: list, epoch: int | None = None) -> None:
        self.tess, self.tess_key, self.tess_error = tess, key, None
        self._tess_window = tuple(self.state.window)
        self._tess_epoch = self.state.epoch_index if epoch is None else epoch
        self.view2d.set_preview(None)
        self._redraw()
        self._update_region_counts()
        self._prefetch_next()
        t = tess[-1]
        self._set_status(f"{t.num_regions:,} regions at full depth · {len(t.boundary_segments):,} boundary "
                         f"segments · {t.seconds:.2f} s ({t.device})")
        if self.state.inspected is not None and self.inspector.report is not None:
            self._inspect(self.state.inspected)

    def _prefetch_next(self) -> None:
        """While playing, tessellate the next epoch into the cache (the second worker thread) so that the
        next frame is a cache hit."""
        b, st = self.bundle, self.state
        if not st.playing or b is None or st.slice is None or st.epoch_index + 1 >= st.n_epochs:
            return
        nxt, sl, window, budget, cache = st.epoch_index + 1, st.slice, st.window, st.settings.max_regions, self.cache
        if cache.peek(jobs.tessellation_key(b, nxt, sl, window, budget)) is not None:
            return
        self.work.submit("prefetch", f"Pre-computing epoch {b.epochs[nxt]}",
                         lambda progress, cancel: jobs.tessellate_all(b, nxt, sl, window, budget, cache,
                                                                      progress, cancel))

    def _update_region_counts(self) -> None:
        b, st = self.bundle, self.state
        if b is not None and st.slice is not None:
            self.training_panel.set_region_counts(
                jobs.cached_region_counts(b, st.slice, st.window, st.settings.max_regions, self.cache))

    def _tessellate_every_epoch(self) -> None:
        b, st = self.bundle, self.state
        if b is None or st.slice is None:
            return
        sl, window, budget, cache = st.slice, st.window, st.settings.max_regions, self.cache
        self.work.submit("tessellate-all", "Tessellating every epoch",
                         lambda progress, cancel: jobs.tessellate_every_epoch(b, sl, window, budget, cache,
                                                                              progress, cancel),
                         on_done=lambda counts: self._update_region_counts(),
                         on_error=lambda exc: self.show_error("Could not tessellate every epoch", exc))

    def _trace_over_run(self) -> None:
        b = self.bundle
        if b is None:
            return
        from geometry.local_data_matrix import trace_over_run

        self.work.submit("trace-over-run", "Mean Tr G over training",
                         lambda progress, cancel: trace_over_run(b.locked_run(), max_points=256, progress=progress,
                                                                 cancel=cancel),
                         on_done=self.training_panel.set_trace,
                         on_error=lambda exc: self.show_error("Could not compute Tr G over training", exc))

    def _region_stats_available(self, bundle: jobs.RunBundle) -> tuple[bool, str]:
        if not jobs.region_geometry_available():
            return False, "Regions: the region engine (geometry.regions) is not available in this build."
        if not bundle.piecewise_affine:
            return False, "Regions: this network has smooth layers, so it has no linear regions."
        if bundle.dataset is None:
            return False, "Regions: this run names no dataset (the statistics need train and test points)."
        return True, "Regions: no statistics yet. Choose the sets and press Compute (current checkpoint)."

    def _compute_region_stats(self, req: dict) -> None:
        """Region statistics (Chebyshev radii, active bits) of train / test / DeepFool points, current checkpoint."""
        b = self.bundle
        if b is None:
            return
        epoch, n, sets, active = self.state.epoch_index, int(req["n"]), tuple(req["sets"]), bool(req["active"])
        panel = self.regions_panel
        panel.set_computing(f"Computing the regions of {n} points per set at epoch {b.epochs[epoch]} …")

        def failed(exc):
            panel.set_computing(f"Region statistics failed: {exc}")
            self.show_error("Could not compute the region statistics", exc)

        self.work.submit("region-stats", f"Region statistics, epoch {b.epochs[epoch]}",
                         lambda progress, cancel: jobs.region_stats(b, epoch, n, sets, active, progress=progress,
                                                                    cancel=cancel),
                         on_done=lambda res: self._on_region_stats(b, res), on_error=failed)

    def _on_region_stats(self, bundle, res) -> None:
        if bundle is not self.bundle:
            return  # another run was opened meanwhile
        self.regions_panel.set_result(res)
        s = res.stats.summary()
        self._set_status("Region statistics: " + ", ".join(
            f"{k} mean radius {v['radius']['mean']:.3g}" if v["radius"]["mean"] is not None else f"{k}: no radius"
            for k, v in s.items()))

    def _on_tessellation_error(self, key: str, exc: BaseException) -> None:
        self.tess_error = str(exc)
        self.tess, self.tess_key = None, None
        self.view2d.clear_tiles()
        if np.allclose(getattr(self, "_preview_window", (0, 0, 0, 0)), self.state.window):
            self.view2d.preview.setVisible(True)  # keep showing the predicted classes
        self._redraw_overlays()
        self._set_status(f"Exact tiles unavailable: {exc}", error=True)

    # == drawing ===================================================================================
    def _redraw(self) -> None:
        if self.tess is None:
            self._redraw_overlays()
            return
        st, tess = self.state, self.tess
        depth = min(st.depth, len(tess))
        t, full = tess[depth - 1], tess[-1]
        mode = st.color_mode
        alpha = self.theme.tile_alpha
        levels = None
        if mode == "class":
            if full.class_cell_vertices is not None and full.class_cell_class is not None:
                fv, fo, vals = full.class_cell_vertices, full.class_cell_offsets, full.class_cell_class
            else:
                fv, fo, vals = full.vertices, full.offsets, full.classes
            rgba = class_rgba(max(self.bundle.num_classes, 1))[np.clip(vals, 0, None)]
            rgba[:, 3] = alpha
            rgba[np.asarray(vals) < 0] = self.theme.unknown.getRgb()
        elif mode == "slope":
            fv, fo = full.vertices, full.offsets
            s = np.asarray(full.slope_norm, np.float64)
            finite = np.isfinite(s)
            lo, hi = (float(s[finite].min()), float(s[finite].max())) if finite.any() else (0.0, 1.0)
            q = np.clip(((s - lo) / max(hi - lo, 1e-300) * (SLOPE_LEVELS - 1)).round(), 0, SLOPE_LEVELS - 1)
            lut = pg.colormap.get("viridis").getLookupTable(0.0, 1.0, SLOPE_LEVELS, alpha=True)
            rgba = lut[np.where(finite, q, 0).astype(int)].astype(np.uint8)
            rgba[:, 3] = min(255, alpha + 80)
            rgba[~finite] = self.theme.unknown.getRgb()
            levels = (lo, hi)
        elif mode == "hash":
            fv, fo = t.vertices, t.offsets
            h = jobs.tile_values(tess, depth, "hash")
            pal = hash_palette()
            rgba = pal[h % len(pal)].copy()
            rgba[:, 3] = alpha + 40
        else:
            fv, fo = t.vertices, t.offsets
            org = jobs.layer_of_origin(tess, depth)
            rgba = layer_rgba(self.bundle.depth)[org].copy()
            rgba[:, 3] = alpha
        theme, show_edges = self.theme, st.settings.show_edges

        def prepare(progress=None, cancel=None):
            groups = edge_groups(theme, t.vertices, t.offsets, t.edge_layer, depth, show_edges)
            return prepare_tiles(fv, fo, rgba, groups)

        if len(fo) - 1 + t.num_regions > ASYNC_TILES:   # build the paths off the GUI thread
            self.work.submit("draw", "Drawing the tiles", prepare, on_done=self.view2d.tiles.set_prepared)
        else:
            self.work.cancel("draw")
            self.view2d.tiles.set_prepared(prepare())
        self.view2d.set_boundary(full.boundary_segments if st.settings.show_boundary else None)
        self.view2d.set_colorbar(levels)
        self._redraw_overlays()
        self._update_sites()

    def _update_sites(self) -> None:
        """Power-diagram sites of layer ``depth`` for the tiles at that depth (computed once, in a worker)."""
        st = self.state
        if not st.settings.show_sites or self.tess is None or not self.bundle.piecewise_affine:
            self.view2d.set_sites(None)
            return
        depth = min(st.depth, len(self.tess))
        key = (self.tess_key, depth)
        if key in self._sites:
            self.view2d.set_sites(self._sites[key])
            return
        self.view2d.set_sites(None)
        b, epoch, t = self.bundle, st.epoch_index, self.tess[depth - 1]

        def compute(progress, cancel):
            spd = jobs._engine("power_diagram", "slice_power_diagram")
            return spd(b.network(epoch), t, [depth - 1], progress=progress, cancel=cancel).sites[0]

        def done(sites):
            if len(self._sites) > 48:
                self._sites.clear()
            self._sites[key] = sites
            if (self.tess_key, min(self.state.depth, len(self.tess or []))) == key:
                self.view2d.set_sites(sites)

        self.work.submit("sites", f"Power-diagram sites of layer {depth}", compute, on_done=done)

    def _redraw_overlays(self) -> None:
        st = self.state
        if self.bundle is None or st.slice is None:
            return
        if st.settings.show_points and len(getattr(self, "_points_u", ())):
            self.view2d.set_points(self._points_u, self._points_y, 230 if self.bundle.input_dim == 2 else 120)
        else:
            self.view2d.set_points(np.zeros((0, 2)), np.zeros(0))
        if self.tess is None:
            self.view2d.set_boundary(None)
        self._update_legend()

    def _update_legend(self) -> None:
        if self.bundle is None:
            return
        entries = []
        for i, name in enumerate(self.bundle.class_names[:12]):
            entries.append((name, {"brush": pg.mkBrush(class_color(i)), "symbol": "s"}))
        if self.tess is not None:
            d = min(self.state.depth, len(self.tess))
            if self.state.settings.show_boundary and len(self.tess[-1].boundary_segments):
                entries.append(("decision boundary", {"line": cosmetic_pen(BOUNDARY_COLOR, 2.4)}))
            if self.state.settings.show_edges:
                entries.append((f"cuts of layer {d}", {"line": cosmetic_pen(self.theme.edge_new, 1.5)}))
                if d > 1:
                    entries.append((f"cuts of layer{'s 1–' if d > 2 else ' '}{d - 1}", {"line": cosmetic_pen(self.theme.edge_old, 1.5)}))
            if self.state.color_mode == "layer":
                cols = layer_rgba(self.bundle.depth)
                for j in range(1, d + 1):
                    entries.append((f"tile last cut by layer {j}", {"brush": pg.mkBrush(QColor(*cols[j])), "symbol": "s"}))
            if self.state.settings.show_sites:
                entries.append((f"power-diagram sites (layer {d})", {"brush": pg.mkBrush(None), "symbol": "x",
                                                                      "pen": pg.mkPen(self.theme.foreground)}))
        if self.state.slice is not None and len(self.state.slice.anchors):
            entries.append(("slice's defining points", {"brush": pg.mkBrush("#ffd400"), "symbol": "star"}))
        self.view2d.set_legend(entries)

    def _on_color_mode(self, mode: str) -> None:
        i = self.color_combo.findData(mode)
        if i >= 0 and self.color_combo.currentIndex() != i:
            self.color_combo.setCurrentIndex(i)
        self._redraw()

    def _on_color_scheme(self, *_) -> None:
        """The system switched light/dark: recolour the plots (Qt recolours the widgets itself)."""
        self.theme.__init__()
        self.theme.apply_pyqtgraph()
        bg = self.theme.background
        for w in (self.view2d.plot, self.inspector.bars, self.data_browser.scatter_w, self.regions_panel.radius_plot,
                  self.regions_panel.active_plot):
            w.setBackground(bg)
        for w in (self.inspector.images, getattr(self.paths_panel, "plots", None), self.training_panel.plots):
            if w is not None:
                w.setBackground(bg)
        self.view2d._legend_key = None
        self.view2d.legend.setBrush(pg.mkBrush(self.view2d._legend_bg()))
        self._redraw()

    # == clicks, inspect, paths ======================================================================
    def _on_view_click(self, u: float, v: float) -> None:
        if self.bundle is None or self.state.slice is None:
            return
        done = self.state.add_pick(u, v)
        if done is None or self.state.pick_mode == "inspect":
            return
        mode = self.state.pick_mode
        if mode == "normal" and QApplication.keyboardModifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.state.add_paths(mode, [done[0]] * NORMAL_FAN)    # a fan: each id seeds its own direction
        elif mode in ("horizontal", "normal", "region", "segment"):
            self.state.add_path(mode, done[0], done[1] if len(done) > 1 else None)

    def _on_pick_mode(self, mode: str) -> None:
        act = self.pick_actions.get(mode)
        if act is not None and not act.isChecked():
            act.setChecked(True)
        label, tip = PICK_LABELS.get(mode, (mode, ""))
        self._set_status(tip)

    def _on_inspected(self, p) -> None:
        self.view2d.set_inspected(p)
        if p is None:
            self.inspector.clear()
        else:
            self._inspect(p)

    def _inspect(self, p) -> None:
        b, st = self.bundle, self.state
        if b is None or st.slice is None:
            return
        epoch, sl, depth = st.epoch_index, st.slice, st.depth
        tess = self.tess
        self._pending_region_info = None
        self.inspector.set_busy(p)
        self.work.submit("inspect", "Inspecting the point",
                         lambda progress, cancel: jobs.inspect_point(b, epoch, sl, p, depth, tess, progress, cancel),
                         on_done=self._on_inspect_report,
                         on_error=lambda exc: self.show_error("Could not inspect that point", exc))
        if jobs.region_geometry_available() and b.piecewise_affine:
            x = sl.to_input(np.asarray(p, np.float64)[None])[0]
            self.work.submit("inspect-region", "Region geometry (LPs, QP)",
                             lambda progress, cancel: jobs.region_geometry(b, epoch, x, progress, cancel),
                             on_done=lambda info: self._on_region_info(p, info),
                             on_error=lambda exc: self._on_region_info(p, {"error": str(exc)}))

    def _on_inspect_report(self, rep) -> None:
        self.inspector.set_report(rep)
        pending, self._pending_region_info = self._pending_region_info, None
        if pending is not None and tuple(pending[0]) == tuple(rep.u):
            self.inspector.set_region_info(pending[1])   # the slow part finished first

    def _on_region_info(self, p, info: dict) -> None:
        if self.state.inspected != p:
            return  # stale: the user clicked elsewhere
        rep = self.inspector.report
        if rep is None or tuple(rep.u) != tuple(p):
            self._pending_region_info = (p, info)       # shown when the fast part of this inspection arrives
            return
        self.inspector.set_region_info(info)

    def _on_paths(self, paths) -> None:
        if self.paths_panel is None:
            return
        live = {p.id for p in paths}
        for pid in list(self.path_results):
            if pid not in live:
                del self.path_results[pid]
        if self.bundle is None or self.state.slice is None:
            self._redraw_paths()
            return
        from .paths_panel import LEAF_KINDS

        batches: dict[tuple, list] = {}
        for spec in paths:
            if spec.id in self.path_results:
                continue
            if spec.kind in LEAF_KINDS:        # leaf paths of one kind, epoch and budget: one engine batch
                batches.setdefault((spec.kind, spec.epoch_index, spec.steps), []).append(spec)
            else:
                self._compute_paths([spec])
        for specs in batches.values():
            self._compute_paths(specs)
        self._redraw_paths()

    def _compute_paths(self, specs: list) -> None:
        """Trace ``specs`` in a worker: one leaf-path batch, or one path of another kind."""
        from . import paths_panel

        b, sl = self.bundle, self.state.slice
        ids = [sp.id for sp in specs]
        for pid in ids:
            self.path_results[pid] = None
        if len(specs) == 1:
            spec = specs[0]
            fn = lambda progress, cancel: {spec.id: paths_panel.compute_path(b, sl, spec, progress, cancel)}  # noqa: E731
            what = f"{PATH_NAMES[spec.kind]} #{spec.id}"
        else:
            fn = lambda progress, cancel: paths_panel.compute_leaf_paths(b, sl, specs, progress, cancel)  # noqa: E731
            what = f"{len(specs)} {PATH_NAMES[specs[0].kind]}s #{ids[0]}–#{ids[-1]}"
        self.work.submit(f"path-{ids[0]}", f"Tracing {what}", fn,
                         on_done=self._on_paths_done,
                         on_error=lambda exc: self._on_paths_error(ids, exc), supersede=False)

    def _on_paths_done(self, results: dict) -> None:
        """{path id: PathResult} of one job; paths deleted meanwhile are dropped; one redraw."""
        live = {p.id for p in self.state.paths}
        self.path_results.update({pid: r for pid, r in results.items() if pid in live})
        self._redraw_paths()

    def _on_paths_error(self, ids: list, exc: BaseException) -> None:
        for pid in ids:
            self.state.remove_path(pid)
        self.show_error("Could not trace that path" if len(ids) == 1 else f"Could not trace those {len(ids)} paths", exc)

    def _redraw_paths(self) -> None:
        items = []
        for spec in self.state.paths:
            res = self.path_results.get(spec.id)
            if res is None or not spec.visible:
                continue
            col = QColor(PATH_COLORS[(spec.id - 1) % len(PATH_COLORS)])
            items.append((f"#{spec.id}", res.u, float(np.max(res.off_plane)) if len(res.off_plane) else 0.0, col,
                          res.marks))
        self.view2d.set_paths(items)
        if self.paths_panel is not None:
            self.paths_panel.set_results(self.state.paths, self.path_results)

    # == status, errors ============================================================================
    def _set_status(self, text: str, error: bool = False) -> None:
        self._rest_status = (text, error)
        self.status_label.setText(text)
        self.status_label.setStyleSheet("color: #d0312d;" if error else "")

    def _on_activity(self, busy: bool, frac: float, message: str) -> None:
        self.progress.setVisible(busy)
        self.cancel_btn.setVisible(busy)
        if busy:
            if frac <= 0:
                self.progress.setRange(0, 0)
            else:
                self.progress.setRange(0, 1000)
                self.progress.setValue(int(1000 * min(frac, 1.0)))
            self.status_label.setStyleSheet("")
            self.status_label.setText(message)
        else:
            text, error = getattr(self, "_rest_status", ("Ready", False))
            self.status_label.setText(text)
            self.status_label.setStyleSheet("color: #d0312d;" if error else "")

    def _on_job_error(self, description: str, exc: BaseException, tb: str) -> None:
        self.show_error(f"{description} failed", exc, tb)

    def show_error(self, title: str, exc, tb: str = "") -> None:
        """User errors (SplineAtlasError) in one line in the status bar and a dialog; bugs with details."""
        text = printable(str(exc) if str(exc) else type(exc).__name__, 1000)
        if not isinstance(exc, (SplineAtlasError, str)) and not tb:
            tb = "".join(traceback.format_exception(exc)) if isinstance(exc, BaseException) else ""
        self.last_error = f"{title}: {text}"
        self._set_status(self.last_error, error=True)
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

    def _ask_budget(self) -> None:
        from PySide6.QtWidgets import QInputDialog

        n, ok = QInputDialog.getInt(self, "Region budget", "Stop a tessellation beyond this many regions:",
                                    self.state.settings.max_regions, 1000, 50_000_000, 10_000)
        if ok:
            self.state.update_settings(max_regions=int(n))

    def _ask_path_settings(self) -> None:
        """Step budget and relative step size of new leaf paths (a fraction of the start-end distance)."""
        from PySide6.QtWidgets import QInputDialog

        st = self.state.settings
        steps, ok = QInputDialog.getInt(self, "Path settings", "Step budget of new leaf paths:", st.path_steps, 1, 100_000)
        if not ok:
            return
        size, ok = QInputDialog.getDouble(self, "Path settings", "Step size (fraction of the start–end distance; "
                                          "absolute for normal paths):", st.path_step_size, 1e-6, 10.0, 4)
        if ok:
            self.state.update_settings(path_steps=int(steps), path_step_size=float(size))

    def _show_keys(self) -> None:
        QMessageBox.information(self, "Keyboard shortcuts",
                                "←/→  previous/next epoch\n↑/↓  more/fewer layers\nSpace  play/pause the epoch sweep\n"
                                "Esc  cancel the current pick\nShift+click (normal-path tool)  a fan of 8 normal paths\n"
                                "Ctrl+O  open · Ctrl+S  save session · Ctrl+E  export\n"
                                "Ctrl+0  reset the view\nMouse: drag to pan, wheel to zoom (re-tessellates the window)")

    def _about(self) -> None:
        QMessageBox.about(self, "About Spline Atlas",
                          "Spline Atlas: exact tessellations, power diagrams, decision boundaries and leaf paths "
                          "of trained piecewise-affine networks.")

    # == recent files, layout ======================================================================
    def _recent(self) -> list[str]:
        v = self.settings.value("recent", [])
        if isinstance(v, str):
            v = [v]
        return [str(x) for x in (v or [])]

    def _add_recent(self, path: str) -> None:
        path = str(Path(path).resolve())
        rec = [path] + [p for p in self._recent() if p != path]
        self.settings.setValue("recent", rec[:MAX_RECENT])
        self._refresh_recent()

    def _refresh_recent(self) -> None:
        self.recent_menu.clear()
        rec = self._recent()
        for p in rec:
            self.recent_menu.addAction(p, lambda p=p: self.open_path(p))
        if rec:
            self.recent_menu.addSeparator()
            self.recent_menu.addAction("Clear list", lambda: (self.settings.setValue("recent", []), self._refresh_recent()))
        self.recent_menu.setEnabled(bool(rec))

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

    # == drag and drop =============================================================================
    def dragEnterEvent(self, ev) -> None:
        if ev.mimeData().hasUrls():
            ev.acceptProposedAction()

    def dropEvent(self, ev) -> None:
        urls = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if urls:
            ev.acceptProposedAction()
            self.open_path(urls[0])

    # == keyboard ==================================================================================
    def keyPressEvent(self, ev) -> None:
        if ev.modifiers() & ~Qt.KeyboardModifier.KeypadModifier or not self.handle_key(ev.key()):
            super().keyPressEvent(ev)

    def handle_key(self, key: int) -> bool:
        """Window-wide keys; returns True when handled."""
        st = self.state
        if key == Qt.Key.Key_Escape:
            st.cancel_picks()
            if st.pick_mode != "inspect":
                self._set_status("Pick cancelled.")
            return True
        if self.bundle is None:
            return False
        if key == Qt.Key.Key_Left:
            st.step_epoch(-1)
        elif key == Qt.Key.Key_Right:
            st.step_epoch(1)
        elif key == Qt.Key.Key_Up:
            st.set_depth(st.depth + 1)
        elif key == Qt.Key.Key_Down:
            st.set_depth(st.depth - 1)
        elif key == Qt.Key.Key_Space:
            st.set_playing(not st.playing)
        else:
            return False
        return True


class _KeyFilter(QObject):
    """Routes arrows/space/Esc to the window unless a text field, spin box, list or slider has focus."""

    def __init__(self, window: MainWindow):
        super().__init__(window)
        self.window = window

    def eventFilter(self, obj, ev) -> bool:
        if ev.type() != QEvent.Type.KeyPress or ev.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            return False
        w = QApplication.focusWidget()
        if w is not None and w.window() is not self.window:
            return False
        if isinstance(w, (QLineEdit, QTextEdit, QAbstractSpinBox, QComboBox, QAbstractItemView, QAbstractSlider)) \
                and ev.key() != Qt.Key.Key_Escape:
            return False
        if obj is not w or w is None or w is self.window:
            return False  # once, at the focus widget; keys sent to the window go to its keyPressEvent
        return self.window.handle_key(ev.key())


def _menu(parent, title):
    from PySide6.QtWidgets import QMenu

    return QMenu(title, parent)
