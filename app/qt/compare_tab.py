"""Compare tab: two networks side by side on the window's slice -- the epoch slider's checkpoint on the left,
another checkpoint of this run (or of another run of the same architecture) on the right -- with linked
views (a zoom or pan in either moves both and the window's own view, and the comparison follows), a linked
cursor, and the regions whose activation pattern differs in the other network highlighted.

The comparison is :func:`app.jobs.compare.compare_epochs` (what ``splineatlas compare`` runs), kept in
:attr:`Results.comparison`; the tiles are coloured by :func:`app.render.tiles.tile_colours` as in the 2D
tab, and "Export figure…" writes :func:`app.render.compare_figure.render_comparison`, the CLI's figure.
While a comparison is computed the views are empty and the labels say what is coming: nothing stale shows.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from geometry.errors import CancelledError, SplineAtlasError

from ..jobs.compare import compare_epochs
from ..model.compare import CompareState
from ..render import palette
from ..render.compare_figure import changed_polygons, render_comparison, side_title
from ..render.tiles import tile_colours
from .view2d import SliceView, edge_groups, prepare_tiles


class CompareTab(QWidget):
    """The Compare tab; ``ctx``: an :class:`app.qt.context.ViewContext`."""

    def __init__(self, ctx, parent: QWidget | None = None):
        super().__init__(parent)
        self.ctx, self.state, self.results, self.work, self.theme = ctx, ctx.state, ctx.results, ctx.work, ctx.theme
        self.compare = CompareState()
        self.other_bundle = None  # the right-hand run when it is not the open one
        self.active = False
        self._request_key = None
        lay = QVBoxLayout(self)
        row = QHBoxLayout()
        lead = QLabel("Right: epoch")
        lead.setToolTip("The left network is the epoch slider's checkpoint; the right one is chosen here")
        row.addWidget(lead)
        self.epoch_box = QComboBox()
        self.epoch_box.setToolTip("The right-hand network's checkpoint")
        self.epoch_box.currentIndexChanged.connect(lambda i: i >= 0 and self.compare.update(other_epoch_index=i))
        row.addWidget(self.epoch_box)
        self.run_label = QLabel("of this run")
        row.addWidget(self.run_label)
        self.other_btn = QPushButton("Other run…")
        self.other_btn.setToolTip("Compare with a checkpoint of another run of the same architecture (a run folder)")
        self.other_btn.clicked.connect(self._choose_run)
        self.same_btn = QPushButton("This run")
        self.same_btn.clicked.connect(lambda: self.set_other_run(None))
        self.export_btn = QPushButton("Export figure…")
        self.export_btn.setToolTip("The two views as one figure (PNG, SVG or PDF), as splineatlas compare writes it")
        self.export_btn.clicked.connect(self._export)
        for w in (self.other_btn, self.same_btn):
            row.addWidget(w)
        row.addStretch(1)
        lay.addLayout(row)
        row2 = QHBoxLayout()
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        row2.addWidget(self.summary, 1)
        row2.addWidget(self.export_btn)
        lay.addLayout(row2)
        views = QHBoxLayout()
        self.views, self.titles = [], []
        for _ in range(2):
            col = QVBoxLayout()
            title = QLabel("")
            title.setWordWrap(True)
            view = SliceView(self.theme)
            view.hovered.connect(self._on_hover)
            # a zoom or pan by the user (not the linked view following, which would loop) moves the window's view
            view.vb.sigRangeChangedManually.connect(lambda *_, v=view: self._user_moved(v))
            col.addWidget(title)
            col.addWidget(view, 1)
            views.addLayout(col, 1)
            self.views.append(view)
            self.titles.append(title)
        a, b = self.views
        b.plot_item.setXLink(a.plot_item)
        b.plot_item.setYLink(a.plot_item)
        lay.addLayout(views, 1)
        self._moved_view = None
        self._move_timer = QTimer(self)
        self._move_timer.setSingleShot(True)
        self._move_timer.setInterval(250)
        self._move_timer.timeout.connect(self.flush_window)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(150)
        self._timer.timeout.connect(self._request)
        ev = self.state.events
        for sig in (ev.epoch_index, ev.slice, ev.window):
            sig.connect(lambda *_: self._schedule())
        ev.settings.connect(lambda *_: self._schedule())
        self.compare.changed.connect(lambda *_: self._schedule())
        self.results.events.bundle.connect(self._on_run)
        self.results.events.comparison.connect(self._show)

    # -- inputs --------------------------------------------------------------------------------
    def _right(self):
        return self.other_bundle if self.other_bundle is not None else self.results.bundle

    def _on_run(self, bundle) -> None:
        self.other_bundle = None
        self.run_label.setText("of this run")
        self._fill_epochs()

    def _fill_epochs(self) -> None:
        b = self._right()
        self.epoch_box.blockSignals(True)
        self.epoch_box.clear()
        if b is not None:
            self.epoch_box.addItems([str(e) for e in b.epochs])
            self.epoch_box.setCurrentIndex(0)  # the run's first checkpoint, as splineatlas compare
        self.epoch_box.blockSignals(False)
        self.compare.update(other_run=None if self.other_bundle is None else self.other_bundle.path, other_epoch_index=0)

    def set_other_run(self, bundle) -> None:
        """Compare with ``bundle`` (a RunBundle of the same architecture), or None for the open run."""
        if bundle is not None and self.results.bundle is not None:
            from ..jobs.compare import same_architecture

            try:
                same_architecture(self.results.bundle, bundle)
            except SplineAtlasError as exc:
                self.results.report_error("Compare", exc)
                return
        self.other_bundle = bundle
        self.run_label.setText("of this run" if bundle is None else f"of {bundle.run.name}")
        self._fill_epochs()

    def _choose_run(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Run folder to compare with")
        if not path:
            return
        from ..jobs import open_run_bundle

        self.work.submit(
            "compare-open",
            f"Opening {path}",
            lambda progress, cancel: open_run_bundle(path, progress, cancel),
            on_done=self.set_other_run,
            on_error=lambda exc: self.results.report_error("Compare: could not open the run", exc),
        )

    def set_active(self, active: bool) -> None:
        self.active = bool(active)
        if self.active:
            self._schedule()

    # -- computing -----------------------------------------------------------------------------
    def covering_window(self) -> tuple[float, float, float, float]:
        """The window's view grown to the compare views' aspect ratio about its centre, so the tiles fill
        the views (they are narrower than the 2D tab) instead of a band of them."""
        u0, u1, v0, v1 = (float(x) for x in self.state.window)
        vb = self.views[0].vb
        w, h = float(vb.width()), float(vb.height())
        if w <= 1 or h <= 1 or u1 <= u0 or v1 <= v0:
            return (u0, u1, v0, v1)
        cu, cv, su, sv = (u0 + u1) / 2, (v0 + v1) / 2, u1 - u0, v1 - v0
        if su / sv < w / h:
            su = sv * w / h
        else:
            sv = su * h / w
        return (cu - su / 2, cu + su / 2, cv - sv / 2, cv + sv / 2)

    def request_key(self):
        st, right = self.state, self._right()
        if self.results.bundle is None or right is None or st.slice is None:
            return None
        other = self.compare.choice.other_epoch_index
        # the view's window, not the panels' size (covering_window): a resize keeps the tiles
        return (id(self.results.bundle), st.epoch_index, id(right), other, id(st.slice), tuple(st.window), st.settings.max_regions)

    def _schedule(self) -> None:
        """Inputs moved: a comparison of other inputs goes at once (nothing stale stays on screen), and the
        new one is asked for shortly (a drag or a typed epoch sends many changes)."""
        if self._request_key != self.request_key():
            self._request_key = None
            if self.results.comparison is not None:
                self._clear("Updating…")
        if self.active:
            self._timer.start()

    def _request(self) -> None:
        key = self.request_key()
        if key is None or key == self._request_key:
            return
        a, b, st = self.results.bundle, self._right(), self.state
        ea, eb = st.epoch_index, self.compare.choice.other_epoch_index
        if b is a and ea == eb:
            self._clear(f"Both sides would be epoch {a.epochs[ea]}: choose another epoch on the right, or move the epoch slider.")
            self._request_key = key
            return
        if not (a.piecewise_affine and b.piecewise_affine):
            self._clear("Compare needs piecewise-affine networks (their regions and activation patterns).")
            return
        self._request_key = key
        self._clear(f"Computing epoch {a.epochs[ea]} and epoch {b.epochs[eb]}…")
        sl, window, budget, cache = st.slice, self.covering_window(), st.settings.max_regions, self.ctx.cache
        self.work.submit(
            "compare",
            "Comparing two networks",
            lambda progress, cancel: compare_epochs(a, ea, b, eb, sl, window, budget, cache, progress, cancel),
            on_done=self._done(key),
            on_error=self._failed,
        )

    def _done(self, key):
        def done(cmp) -> None:
            if key == self.request_key():  # not stale: the inputs did not move meanwhile
                self.results.set_comparison(cmp)

        return done

    def _failed(self, exc) -> None:
        self._request_key = None
        if not isinstance(exc, CancelledError):
            self._clear(f"Could not compare: {exc}")
            self.results.report_error("Compare", exc)

    # -- drawing -------------------------------------------------------------------------------
    def _clear(self, text: str) -> None:
        self.results.set_comparison(None)
        self.summary.setText(text)

    def _show(self, cmp) -> None:
        if cmp is None:
            for v, t in zip(self.views, self.titles):
                v.clear_tiles()
                v.set_points(np.zeros((0, 2)), np.zeros(0))
                t.setText("")
            return
        sides = cmp.sides()
        for i, (view, title, side) in enumerate(zip(self.views, self.titles, sides)):
            tess = side.by_depth
            t = tess[-1]
            colours = tile_colours(tess, len(tess), "class", side.bundle.num_classes, self.theme.tile_alpha / 255)
            fv, fo, rgba = colours.polygons()
            groups = edge_groups(self.theme, t.vertex_table, len(tess), self.state.settings.show_edges)
            view.tiles.set_prepared(prepare_tiles(fv, fo, palette.to_bytes(rgba), groups))
            view.set_highlight(*changed_polygons(side))
            view.set_boundary(t.boundary_segments if self.state.settings.show_boundary else None)
            X, y = side.bundle.points()
            if len(X) and self.state.settings.show_points:
                view.set_points(cmp.slice_.project(X), y, 230 if side.bundle.input_dim == 2 else 120)
            else:
                view.set_points(np.zeros((0, 2)), np.zeros(0))
            title.setText(side_title(side, sides[1 - i]) + " · exact tiles at full depth")
            view.set_legend(self._legend(side))
            view.legend.setVisible(self.state.settings.show_legend)
        self.views[0].show_window(cmp.window)
        self.summary.setText(cmp.text())

    def _legend(self, side) -> list:
        import pyqtgraph as pg

        from .theme import BOUNDARY_COLOR
        from .view2d import cosmetic_pen

        entries = []  # the class colours are the 2D tab's (its legend names them); this key says what is new here
        if self.state.settings.show_boundary:
            label = self.results.bundle.boundary_name if self.results.bundle is not None else "decision boundary"
            entries.append((label, {"line": cosmetic_pen(BOUNDARY_COLOR, 2.4)}))
        entries.append(("pattern differs in the other network", {"brush": pg.mkBrush(palette.CHANGED_COLOR), "symbol": "s"}))
        return entries

    def _user_moved(self, view) -> None:
        self._moved_view = view
        self._move_timer.start()

    def flush_window(self) -> None:
        """Send the window the user zoomed or panned to (debounced) to the viewer state now."""
        self._move_timer.stop()
        view, self._moved_view = self._moved_view, None
        if view is not None and self.results.bundle is not None and self.state.slice is not None:
            self.state.set_window(view.visible_window())

    def _on_hover(self, u: float, v: float) -> None:
        for view in self.views:  # the linked cursor: the same point in both networks
            view.set_inspected((u, v))

    # -- export --------------------------------------------------------------------------------
    def export_figure(self, path) -> str:
        """The comparison on screen as ``splineatlas compare`` draws it (2000x1000 px, dpi fit to the size)."""
        from ..render.slice_figure import FigureOptions, save_figure
        from ..render.style import fit_dpi

        cmp = self.results.comparison
        if cmp is None:
            raise SplineAtlasError("nothing to export yet: let the comparison finish first.")
        dpi = fit_dpi(2000, 1000)
        return str(save_figure(render_comparison(cmp, FigureOptions(width=2000, height=1000, dpi=dpi)), path, dpi))

    def _export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the comparison", "compare.png", "Figures (*.png *.svg *.pdf)")
        if not path:
            return
        try:
            out = self.export_figure(path)
        except (SplineAtlasError, OSError) as exc:
            self.results.report_error("Export the comparison", exc)
            return
        self.results.set_status(f"wrote {out}")


def install_compare(ctx, tabs) -> CompareTab:
    """The Compare tab, added to the window's central ``tabs``."""
    tab = CompareTab(ctx)
    tabs.addTab(tab, "Compare")
    tabs.currentChanged.connect(lambda i: tab.set_active(tabs.widget(i) is tab))
    return tab
