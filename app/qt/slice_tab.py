"""The 2D tab's presenter: draws the :class:`~app.qt.view2d.SliceView` from the viewer state and the results.

Tiles are coloured by :func:`app.render.tiles.tile_colours`, the very function exported figures use, so
the window and ``splineatlas export-figure`` colour a view alike. Nothing here computes geometry: the
presenter turns results into pixels, and turns clicks, zoom and pan into state changes.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject
from PySide6.QtGui import QColor

from ..model.results import Results
from ..model.state import ViewerState
from ..render import palette
from ..render.tiles import tile_colours
from .theme import BOUNDARY_COLOR, Theme, class_color
from .view2d import SliceView, cosmetic_pen, edge_groups, edge_pens, prepare_tiles

MAX_POINTS_SHOWN = 4000
ASYNC_TILES = 6000  # above this many polygons, painter paths are built in a worker thread
LEGEND_CLASSES = 12


class SliceTab(QObject):
    """Keeps ``view`` (a SliceView) showing ``state`` and ``results``; ``work`` runs the heavy drawing."""

    def __init__(self, view: SliceView, state: ViewerState, results: Results, work, theme: Theme, parent: QObject | None = None):
        super().__init__(parent)
        self.view, self.state, self.results, self.work, self.theme = view, state, results, work, theme
        self._points_u, self._points_y = np.zeros((0, 2)), np.zeros(0, np.int64)
        ev, rev = state.events, results.events
        ev.slice.connect(self._on_slice)
        ev.window.connect(self._on_state_window)
        ev.depth.connect(lambda _: self.redraw())
        ev.color_mode.connect(lambda _: self.redraw())
        ev.settings.connect(lambda _: self.redraw())
        ev.picks.connect(view.set_picks)
        ev.inspected.connect(view.set_inspected)
        ev.paths.connect(lambda _: self.redraw_paths())
        rev.bundle.connect(lambda _: (view.clear_tiles(), view.set_preview(None)))
        rev.tiles.connect(lambda _: self.redraw())
        rev.preview.connect(self._on_preview)
        rev.sites.connect(view.set_sites)
        rev.paths.connect(lambda _: self.redraw_paths())
        rev.region_track.connect(lambda _: (self.redraw_followed(), self.update_legend()))
        view.window_changed.connect(self._on_view_window)

    # -- slice and window --------------------------------------------------------------------------
    def _on_slice(self, sl) -> None:
        self.view.clear_tiles()
        b = self.results.bundle
        if b is None or sl is None:
            return
        X, y = b.points()
        if len(X) > MAX_POINTS_SHOWN:
            keep = np.random.default_rng(0).choice(len(X), MAX_POINTS_SHOWN, replace=False)
            X, y = X[keep], y[keep]
        self._points_u, self._points_y = (sl.project(X), y) if len(X) else (np.zeros((0, 2)), np.zeros(0, np.int64))
        self.view.set_anchors(sl.anchors if len(sl.anchors) else None)
        self.redraw_overlays()

    def _on_state_window(self, window) -> None:
        vis = self.view.visible_window()
        tol = 1e-9 * max(1.0, abs(window[1] - window[0]))
        if not np.allclose(vis, window, rtol=0, atol=tol):
            self.view.show_window(window)
            vis = self.view.visible_window()
            if self.view.isVisible() and not np.allclose(vis, window, rtol=0, atol=tol):
                # the 1:1 aspect shows more than asked on one side: tessellate what is visible
                self.state.set_window(vis)

    def _on_view_window(self, window) -> None:
        if self.results.bundle is not None and self.state.slice is not None:
            self.state.set_window(window)

    # -- tiles -------------------------------------------------------------------------------------
    def _on_preview(self, cm) -> None:
        b, view = self.results.bundle, self.view
        if cm is None or b is None:
            view.set_preview(None)
            return
        rgba = palette.to_bytes(palette.class_rgba(max(b.num_classes, 1)))[cm.classes].copy()
        rgba[..., 3] = (self.theme.tile_alpha * (0.35 + 0.65 * cm.confidence)).astype(np.uint8)
        view.set_preview(rgba, cm.window)
        tiles = self.results.tiles
        # the exact tiles of this window and epoch are already shown: the preview stays hidden
        view.preview.setVisible(not (tiles is not None and tiles.shows(cm.epoch_index, cm.window)))
        self.redraw_overlays()

    def redraw(self) -> None:
        tiles, st, b = self.results.tiles, self.state, self.results.bundle
        if tiles is None or b is None:
            self.work.cancel("draw")
            self.view.clear_tiles()
            cm = self.results.preview
            if cm is not None and np.allclose(cm.window, st.window) and cm.epoch_index == st.epoch_index:
                self.view.preview.setVisible(True)  # keep showing this view's predicted classes
            self.view.set_colorbar(None)
            self.redraw_overlays()
            return
        tess = tiles.by_depth
        depth = min(st.depth, len(tess))
        t, full = tess[depth - 1], tess[-1]
        colours = tile_colours(tess, depth, st.color_mode, b.num_classes, self.theme.tile_alpha / 255)
        fv, fo, rgba = colours.polygons()
        rgba = palette.to_bytes(rgba)
        pens, show_edges = edge_pens(self.theme), st.settings.show_edges  # Qt objects: made here, not in the worker

        def prepare(progress=None, cancel=None):
            groups = edge_groups(pens, t.vertex_table, depth, show_edges)
            return prepare_tiles(fv, fo, rgba, groups)

        self.view.set_preview(None)
        if len(fo) - 1 + t.num_regions > ASYNC_TILES:  # build the painter paths off the GUI thread
            self.work.submit("draw", "Drawing the tiles", prepare, on_done=self.view.tiles.set_prepared)
        else:
            self.work.cancel("draw")
            self.view.tiles.set_prepared(prepare())
        self.view.set_boundary(full.boundary_segments if st.settings.show_boundary else None)
        self.view.set_colorbar(colours.levels, colours.colorbar_short)
        self.redraw_overlays()

    def redraw_followed(self) -> None:
        """The followed tile (Training tab's Follow point) as it is at this epoch and depth: the tile of the
        shown tiles holding the followed point (what the figure and video exports outline)."""
        track, tiles = self.results.region_track, self.results.tiles
        if track is None or tiles is None:
            self.view.set_followed(None)
            return
        t = tiles.by_depth[min(self.state.depth, len(tiles.by_depth)) - 1]
        r = int(t.region_of(np.asarray(track.u, dtype=np.float64).reshape(1, 2))[0])
        self.view.set_followed(t.polygon(r) if r >= 0 else None)

    def redraw_overlays(self) -> None:
        st, b = self.state, self.results.bundle
        if b is None or st.slice is None:
            return
        if st.settings.show_points and len(self._points_u):
            self.view.set_points(self._points_u, self._points_y, 230 if b.input_dim == 2 else 120)
        else:
            self.view.set_points(np.zeros((0, 2)), np.zeros(0))
        if self.results.tiles is None:
            self.view.set_boundary(None)
        self.redraw_followed()
        self.update_legend()

    def update_legend(self) -> None:
        b, st, tiles = self.results.bundle, self.state, self.results.tiles
        if b is None:
            return
        entries = [(name, {"brush": pg.mkBrush(class_color(i)), "symbol": "s"}) for i, name in enumerate(b.class_names[:LEGEND_CLASSES])]
        if tiles is not None:
            d = min(st.depth, len(tiles.by_depth))
            if st.settings.show_boundary and len(tiles.by_depth[-1].boundary_segments):
                entries.append((b.boundary_name, {"line": cosmetic_pen(BOUNDARY_COLOR, 2.4)}))
            if self.results.region_track is not None:
                entries.append(("tile followed (Training tab)", {"line": cosmetic_pen(palette.FOLLOW_COLOR, 2.4)}))
            if st.settings.show_edges:
                entries.append((f"cuts of layer {d}", {"line": cosmetic_pen(self.theme.edge_new, 1.5)}))
                if d > 1:
                    entries.append((f"cuts of layer{'s 1–' if d > 2 else ' '}{d - 1}", {"line": cosmetic_pen(self.theme.edge_old, 1.5)}))
            if st.color_mode == "layer":
                cols = palette.to_bytes(palette.layer_rgba(b.depth))
                for j in range(1, d + 1):
                    entries.append((f"tile last cut by layer {j}", {"brush": pg.mkBrush(QColor(*cols[j])), "symbol": "s"}))
            if st.settings.show_sites:
                entries.append((f"power-diagram sites (layer {d})", {"brush": pg.mkBrush(None), "symbol": "x", "pen": pg.mkPen(self.theme.foreground)}))
        if st.slice is not None and len(st.slice.anchors):
            entries.append(("slice's defining points", {"brush": pg.mkBrush(palette.ANCHOR_COLOR), "symbol": "star"}))
        self.view.set_legend(entries)
        self.view.legend.setVisible(st.settings.show_legend)

    # -- paths -------------------------------------------------------------------------------------
    def redraw_paths(self) -> None:
        items = []
        for spec, res in self.results.shown_paths(self.state.paths):
            items.append((f"#{spec.id}", res.u, float(np.max(res.off_plane)) if len(res.off_plane) else 0.0, QColor(palette.path_color(spec.id)), res.marks))
        self.view.set_paths(items)


__all__ = ["SliceTab"]
