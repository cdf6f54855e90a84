"""The 2D slice view (pyqtgraph): exact tiles, edges by layer, decision boundary, data, sites, paths.

The view computes nothing: the window pushes arrays in through ``set_*`` methods and the view turns
them into a handful of graphics items. All tiles of a tessellation are drawn by one
:class:`TilesItem` holding one ``QPainterPath`` per distinct colour (built with
numpy from the ragged vertex arrays in Qt's stream format, no Python loop over polygons), and all
edges by at most three paths (newest layer, older layers, domain) — so 10k+ regions stay one item.
"""

from __future__ import annotations

import html

from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QByteArray, QDataStream, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QVBoxLayout, QWidget

from geometry.tessellation.loops import next_in_loop

from ..render.palette import CHANGED_COLOR, FOLLOW_COLOR, hex_rgba
from ..render.palette import to_bytes as palette_bytes
from .theme import BOUNDARY_COLOR, Theme, class_color


_ELEMENTS = np.dtype([("c", ">i4"), ("x", ">f8"), ("y", ">f8")])


def _path_bytes(pts: np.ndarray, line_to: np.ndarray) -> bytes:
    """A QPainterPath in Qt's QDataStream format, built with numpy alone (no Qt call, so a worker thread
    may run it): element count, then per point (type: 0 move-to / 1 line-to, x, y), then the current
    subpath start and the fill rule (0: odd-even), all big-endian."""
    n = len(pts)
    arr = np.empty(n, dtype=_ELEMENTS)
    arr["c"], arr["x"], arr["y"] = line_to, pts[:, 0], pts[:, 1]
    return n.to_bytes(4, "big", signed=True) + arr.tobytes() + bytes(8)


def path_from_bytes(data: bytes) -> QPainterPath:
    """Decode :func:`_path_bytes` on the GUI thread. Building QPainterPaths in a worker (pyqtgraph's
    arrayToQPath streams a QByteArray into one) deadlocked with the GUI thread under load; only numpy runs
    in workers now."""
    path = QPainterPath()
    if data:
        stream = QDataStream(QByteArray(data))
        stream >> path
    return path


def polygons_bytes(vertices: np.ndarray, offsets: np.ndarray) -> bytes:
    """Every polygon (vertices (V, 2), offsets (R+1,)) as a closed subpath of one path (see _path_bytes)."""
    if len(offsets) < 2 or len(vertices) == 0:
        return b""
    starts = offsets[:-1]
    # repeat each polygon's first vertex after its last one; each polygon starts with a move-to
    idx = np.insert(np.arange(len(vertices)), offsets[1:], starts)
    line_to = np.ones(len(idx), dtype=np.int32)
    line_to[offsets[:-1] + np.arange(len(offsets) - 1)] = 0
    return _path_bytes(np.asarray(vertices, np.float64)[idx], line_to)


def segments_bytes(segments: np.ndarray) -> bytes:
    """Disjoint segments (S, 2, 2) as one path (see _path_bytes)."""
    if len(segments) == 0:
        return b""
    pts = np.ascontiguousarray(np.asarray(segments, np.float64).reshape(-1, 2))
    line_to = np.tile(np.array([0, 1], dtype=np.int32), len(segments))
    return _path_bytes(pts, line_to)


def polygons_path(vertices: np.ndarray, offsets: np.ndarray) -> QPainterPath:
    """One QPainterPath with every polygon as a closed subpath (GUI thread)."""
    return path_from_bytes(polygons_bytes(vertices, offsets))


def segments_path(segments: np.ndarray) -> QPainterPath:
    """One QPainterPath of disjoint segments (S, 2, 2) (GUI thread)."""
    return path_from_bytes(segments_bytes(segments))


COLORBAR_DEFAULT_LABEL = "‖A_ω‖₂"


@dataclass(frozen=True)
class PreparedTiles:
    """Tiles ready to paint, built without Qt (any thread): fills (path bytes, RGBA) per distinct colour,
    lines (path bytes, pen) per edge style; :meth:`TilesItem.set_prepared` decodes them on the GUI thread."""

    fills: list
    lines: list
    rect: tuple
    num_tiles: int


def prepare_tiles(vertices: np.ndarray, offsets: np.ndarray, rgba: np.ndarray, edge_groups: list[tuple[np.ndarray, QPen]] = ()) -> PreparedTiles:
    """The painter paths of a tessellation as bytes (numpy only, so a worker thread may build them).

    vertices (V, 2), offsets (R+1,), rgba (R, 4) uint8 tile colours; edge_groups: (segments (E,2,2), pen).
    One path per distinct colour, gathered with numpy (no Python loop over polygons).
    """
    vertices = np.asarray(vertices, np.float64)
    offsets = np.asarray(offsets, np.int64)
    fills, lines = [], []
    R = len(offsets) - 1
    if R > 0:
        rgba = np.ascontiguousarray(rgba, dtype=np.uint8)
        keys = rgba.view(np.uint32).reshape(-1)
        uniq, inverse = np.unique(keys, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(uniq) + 1))
        counts = np.diff(offsets)
        for k in range(len(uniq)):
            sel = order[bounds[k] : bounds[k + 1]]
            sub_counts = counts[sel]
            sub_off = np.concatenate([[0], np.cumsum(sub_counts)])
            vidx = np.repeat(offsets[sel] - sub_off[:-1], sub_counts) + np.arange(sub_off[-1])
            fills.append((polygons_bytes(vertices[vidx], sub_off), tuple(int(c) for c in rgba[sel[0]])))
    for seg, pen in edge_groups:
        if len(seg):
            lines.append((segments_bytes(seg), pen))
    if len(vertices):
        lo, hi = vertices.min(0), vertices.max(0)
        rect = (float(lo[0]), float(lo[1]), float(hi[0] - lo[0]), float(hi[1] - lo[1]))
    else:
        rect = (0.0, 0.0, 0.0, 0.0)
    return PreparedTiles(fills, lines, rect, max(R, 0))


def polygon_segments(vertices, offsets) -> np.ndarray:
    """(V, 2, 2) every polygon edge: vertex i to the next vertex of its polygon (ragged arrays)."""
    ev, eo = np.asarray(vertices, np.float64), np.asarray(offsets, np.int64)
    return np.stack([ev, ev[next_in_loop(eo)]], axis=1)


def edge_pens(theme: Theme) -> dict:
    """The edge styles' pens, made on the GUI thread: earlier layers, the newest layer, the domain."""
    return {"old": cosmetic_pen(theme.edge_old, 0.6), "new": cosmetic_pen(theme.edge_new, 0.8), "domain": cosmetic_pen(theme.edge_domain, 1.3)}


def edge_groups(theme: Theme | dict, table, depth: int, show_edges: bool) -> list:
    """(segments (E, 2, 2), pen) per edge style: layer depth-1 dark, earlier layers grey, domain outline.
    ``table``: the tessellation's :attr:`vertex_table` (each edge once, so none is stroked twice), or None.
    ``theme``: a Theme, or the pens of :func:`edge_pens` (a worker thread then makes no Qt object)."""
    if table is None or len(table.edges) == 0:
        return []
    pens = theme if isinstance(theme, dict) else edge_pens(theme)
    seg, el = table.segments, np.asarray(table.edge_layer)
    groups = []
    if show_edges:
        groups.append((seg[(el >= 0) & (el < depth - 1)], pens["old"]))
        groups.append((seg[el == depth - 1], pens["new"]))
    groups.append((seg[el < 0], pens["domain"]))
    return groups


class TilesItem(pg.GraphicsObject):
    """All tiles and edges of one tessellation: one filled path per colour, one stroked path per edge style.

    No render cache: a device-coordinate cache outlived the zoom it was made at and showed a patchwork of
    rectangles from earlier zoom levels that contradicted the exact boundary (tests/test_view_truth.py)."""

    def __init__(self):
        super().__init__()
        self._fills: list[tuple[QPainterPath, QColor]] = []
        self._lines: list[tuple[QPainterPath, QPen]] = []
        self._rect = QRectF()
        self.num_tiles = 0

    def set_data(self, vertices: np.ndarray, offsets: np.ndarray, rgba: np.ndarray, edge_groups: list[tuple[np.ndarray, QPen]] = ()) -> None:
        """vertices (V, 2), offsets (R+1,), rgba (R, 4) uint8 tile colours; edge_groups: (segments (E,2,2), pen)."""
        self.set_prepared(prepare_tiles(vertices, offsets, rgba, edge_groups))

    def set_prepared(self, prep: PreparedTiles) -> None:
        """Show tiles from :func:`prepare_tiles` (built in any thread; decoded here, on the GUI thread)."""
        self.prepareGeometryChange()
        self._fills = [(path_from_bytes(b), QColor(*rgba)) for b, rgba in prep.fills]
        self._lines = [(path_from_bytes(b), pen) for b, pen in prep.lines]
        self._rect, self.num_tiles = QRectF(*prep.rect), prep.num_tiles
        self.update()

    def clear(self) -> None:
        self.set_data(np.zeros((0, 2)), np.zeros(1, dtype=np.int64), np.zeros((0, 4), np.uint8))

    def paint(self, painter: QPainter, *args) -> None:
        """Fill paths without antialiasing (no seams between tiles), then the edges with it."""
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        painter.setPen(Qt.PenStyle.NoPen)
        for path, col in self._fills:
            painter.setBrush(QBrush(col))
            painter.drawPath(path)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        painter.setBrush(Qt.BrushStyle.NoBrush)
        for path, pen in self._lines:
            painter.setPen(pen)
            painter.drawPath(path)

    def boundingRect(self) -> QRectF:
        return self._rect


def cosmetic_pen(color, width: float, style=Qt.PenStyle.SolidLine) -> QPen:
    pen = QPen(QColor(color), width)
    pen.setCosmetic(True)
    pen.setStyle(style)
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    return pen


class SliceView(QWidget):
    """The 2D slice plot. Signals: ``clicked(u, v)`` (left click in the plot) and
    ``window_changed((umin, umax, vmin, vmax))`` (visible range after zoom/pan, debounced)."""

    clicked = Signal(float, float)
    hovered = Signal(float, float)
    window_changed = Signal(object)

    def __init__(self, theme: Theme, parent: QWidget | None = None, debounce_ms: int = 250):
        super().__init__(parent)
        self.theme = theme
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.plot = pg.PlotWidget(background=theme.background)
        lay.addWidget(self.plot)
        pi = self.plot.getPlotItem()
        self.plot_item = pi
        pi.setLabel("bottom", "u  (slice coordinate: x = o + u·b₁ + v·b₂)")
        pi.setLabel("left", "v  (slice coordinate)")
        for ax in ("bottom", "left"):
            pi.getAxis(ax).enableAutoSIPrefix(False)
        pi.showGrid(False, False)
        pi.setMenuEnabled(False)
        pi.hideButtons()
        self.vb = pi.getViewBox()
        self.vb.setAspectLocked(True)
        self.vb.setDefaultPadding(0.0)
        self.vb.setLimits(minXRange=1e-9, minYRange=1e-9, maxXRange=1e6, maxYRange=1e6)  # no degenerate windows

        self.preview = pg.ImageItem()
        self.preview.setZValue(-20)
        pi.addItem(self.preview)
        self.tiles = TilesItem()
        self.tiles.setZValue(-10)
        pi.addItem(self.tiles)
        self.highlight = TilesItem()  # compare mode: the regions whose pattern differs in the other network
        self.highlight.setZValue(-5)
        pi.addItem(self.highlight)
        self.boundary = pg.PlotCurveItem(pen=cosmetic_pen(BOUNDARY_COLOR, 2.4), connect="pairs")
        self.boundary.setZValue(5)
        pi.addItem(self.boundary)
        self.points = pg.ScatterPlotItem(size=6, pxMode=True)
        self.points.setZValue(10)
        pi.addItem(self.points)
        self.sites = pg.ScatterPlotItem(size=7, symbol="x", pxMode=True, pen=pg.mkPen(theme.foreground, width=1.2), brush=None)
        self.sites.setZValue(11)
        pi.addItem(self.sites)
        self.anchors = pg.ScatterPlotItem(size=16, symbol="star", pxMode=True, pen=pg.mkPen(theme.foreground, width=1.2), brush=pg.mkBrush("#ffd400"))
        self.anchors.setZValue(20)
        pi.addItem(self.anchors)
        self.picks = pg.ScatterPlotItem(size=14, symbol="o", pxMode=True, pen=pg.mkPen("#ff00aa", width=2.5), brush=None)
        self.picks.setZValue(30)
        pi.addItem(self.picks)
        self.followed_halo = pg.PlotCurveItem(pen=cosmetic_pen("#ffffff", 4.6))  # the followed tile's outline
        self.followed = pg.PlotCurveItem(pen=cosmetic_pen(FOLLOW_COLOR, 2.4))
        for z, item in ((29, self.followed_halo), (30, self.followed)):
            item.setZValue(z)
            pi.addItem(item)
        self.inspected = pg.ScatterPlotItem(size=18, symbol="crosshair", pxMode=True, pen=pg.mkPen(theme.foreground, width=2.2), brush=None)
        self.inspected.setZValue(31)
        pi.addItem(self.inspected)
        self._path_items: list = []

        # the bar's own axis label was drawn on the bar (its column is as wide as the tick labels only), so the
        # label is a heading above the bar instead, in the plot's top-axis row
        self.colorbar = pg.ColorBarItem(values=(0, 1), colorMap=pg.colormap.get("viridis"), interactive=False, width=14)
        pi.layout.addItem(self.colorbar, 2, 5)
        self.colorbar.setVisible(False)
        self.colorbar_label = pg.LabelItem(COLORBAR_DEFAULT_LABEL, size="9pt", color=theme.foreground)
        pi.layout.addItem(self.colorbar_label, 1, 5)
        self.colorbar_label.setVisible(False)

        self.legend = pg.LegendItem(offset=(-8, 8), labelTextSize="9pt", brush=pg.mkBrush(self._legend_bg()), pen=pg.mkPen(theme.foreground, width=0.5))
        self.legend.setParentItem(self.vb)
        self._legend_entries: list = []

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(debounce_ms)
        self._debounce.timeout.connect(self._emit_window)
        self._suppress_range = False
        self.vb.sigRangeChanged.connect(self._on_range_changed)
        self.plot.scene().sigMouseClicked.connect(self._on_click)
        self.plot.scene().sigMouseMoved.connect(self._on_move)

    def _legend_bg(self) -> QColor:
        c = QColor(self.theme.background)
        c.setAlpha(215)
        return c

    # -- window ------------------------------------------------------------------------------
    def visible_window(self) -> tuple[float, float, float, float]:
        (u0, u1), (v0, v1) = self.vb.viewRange()
        return (float(u0), float(u1), float(v0), float(v1))

    def show_window(self, window) -> None:
        """Make ``window`` visible (aspect stays 1:1, so one side may show more)."""
        u0, u1, v0, v1 = window
        self._suppress_range = True
        try:
            self.vb.setRange(xRange=(u0, u1), yRange=(v0, v1), padding=0.0)
        finally:
            self._suppress_range = False

    def _on_range_changed(self, *args) -> None:
        if not self._suppress_range:
            self._debounce.start()

    def _emit_window(self) -> None:
        self.window_changed.emit(self.visible_window())

    def flush_window(self) -> None:
        """Emit the pending debounced window now (tests, and before saving a session)."""
        if self._debounce.isActive():
            self._debounce.stop()
            self._emit_window()

    def _on_move(self, pos) -> None:
        if self.vb.sceneBoundingRect().contains(pos):
            p = self.vb.mapSceneToView(pos)
            self.hovered.emit(float(p.x()), float(p.y()))

    def _on_click(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or ev.double():
            return
        pos = ev.scenePos()
        if not self.vb.sceneBoundingRect().contains(pos):
            return
        p = self.vb.mapSceneToView(pos)
        ev.accept()
        self.clicked.emit(float(p.x()), float(p.y()))

    # -- data ----------------------------------------------------------------------------------
    def set_preview(self, rgba: np.ndarray | None, window=None) -> None:
        """A low-resolution image (n, n, 4) uint8 indexed [iu, iv] over ``window``, or None to hide it."""
        if rgba is None:
            self.preview.setVisible(False)
            return
        self.preview.setImage(rgba, autoLevels=False)
        u0, u1, v0, v1 = window
        self.preview.setRect(QRectF(u0, v0, u1 - u0, v1 - v0))
        self.preview.setVisible(True)

    def clear_tiles(self) -> None:
        self.tiles.clear()
        self.highlight.clear()
        self.boundary.setData([], [])

    def set_highlight(self, vertices: np.ndarray | None, offsets: np.ndarray | None = None) -> None:
        """Regions drawn over the tiles with a translucent fill and a strong outline (compare mode's
        changed regions); None clears them."""
        if vertices is None or offsets is None or len(offsets) < 2:
            self.highlight.clear()
            return
        fill = palette_bytes(hex_rgba(CHANGED_COLOR, 0.35))
        rgba = np.tile(fill, (len(offsets) - 1, 1))
        segs = polygon_segments(vertices, offsets)
        self.highlight.set_data(vertices, offsets, rgba, [(segs, cosmetic_pen(CHANGED_COLOR, 1.6))])

    def set_boundary(self, segments: np.ndarray | None) -> None:
        """Decision-boundary segments (S, 2, 2) in red, or None/empty to hide."""
        if segments is None or len(segments) == 0:
            self.boundary.setData([], [])
            return
        pts = segments.reshape(-1, 2)
        self.boundary.setData(pts[:, 0], pts[:, 1], connect="pairs")

    def set_points(self, u: np.ndarray, labels: np.ndarray, alpha: int = 230) -> None:
        """Dataset points (N, 2) in slice coordinates coloured by label (their projections for D > 2)."""
        key = (id(u), len(u), alpha)
        if key == getattr(self, "_points_key", None):
            return  # unchanged: re-rendering hundreds of symbols costs ~0.1 s
        self._points_key = key
        if len(u) == 0:
            self.points.setData([], [])
            return
        labels = np.asarray(labels, dtype=np.int64)
        palette = [pg.mkBrush(class_color(int(c), alpha)) for c in range(int(labels.max()) + 1)]
        brushes = [palette[c] for c in labels]  # shared brush objects: one cached symbol per class
        edge = QColor(self.theme.background)
        edge.setAlpha(min(alpha, 200))
        self.points.setData(u[:, 0], u[:, 1], brush=brushes, pen=pg.mkPen(edge, width=0.8))

    def set_sites(self, u: np.ndarray | None) -> None:
        self.sites.setData([] if u is None else u[:, 0], [] if u is None else u[:, 1])

    def set_anchors(self, u: np.ndarray | None) -> None:
        if u is None or len(u) == 0:
            self.anchors.setData([], [])
        else:
            self.anchors.setData(u[:, 0], u[:, 1])

    def set_picks(self, picks) -> None:
        p = np.asarray(picks, dtype=np.float64).reshape(-1, 2)
        self.picks.setData(p[:, 0], p[:, 1])

    def set_followed(self, polygon) -> None:
        """Outline the followed tile: (n, 2) polygon vertices, or None."""
        if polygon is None or len(polygon) < 3:
            xy = np.zeros((0, 2))
        else:
            xy = np.vstack([polygon, polygon[:1]])
        for item in (self.followed_halo, self.followed):
            item.setData(xy[:, 0], xy[:, 1])

    def set_inspected(self, p) -> None:
        if p is None:
            self.inspected.setData([], [])
        else:
            self.inspected.setData([p[0]], [p[1]])

    def set_paths(self, paths: list[tuple]) -> None:
        """Paths as (label, u (n, 2) projected points, max distance from the plane, colour[, marks (m, 2)]);
        marks (exact region crossings of a segment) are drawn as small ticks."""
        for it in self._path_items:
            self.plot_item.removeItem(it)
        self._path_items = []
        for label, u, off, col, *rest in paths:
            if len(u) == 0:
                continue
            marks = rest[0] if rest else None
            if marks is not None and len(marks):
                ticks = pg.ScatterPlotItem(marks[:, 0], marks[:, 1], size=5, symbol="o", brush=pg.mkBrush(self.theme.background), pen=pg.mkPen(col, width=1.2))
                ticks.setZValue(26)
                self.plot_item.addItem(ticks)
                self._path_items.append(ticks)
            line = pg.PlotDataItem(u[:, 0], u[:, 1], pen=cosmetic_pen(col, 2.6), symbol="o", symbolSize=4, symbolBrush=col, symbolPen=None)
            ends = pg.ScatterPlotItem(
                [u[0, 0], u[-1, 0]],
                [u[0, 1], u[-1, 1]],
                size=11,
                symbol="o",
                brush=[pg.mkBrush(col), pg.mkBrush(self.theme.background)],
                pen=pg.mkPen(col, width=2),
            )
            text = pg.TextItem(f"{label}" + (f"  ⟂{off:.2g}" if off > 1e-9 else ""), color=col, anchor=(0, 1))
            text.setPos(u[-1, 0], u[-1, 1])
            for it in (line, ends, text):
                it.setZValue(25)
                self.plot_item.addItem(it)
                self._path_items.append(it)

    def set_colorbar(self, levels: tuple[float, float] | None, label: str | None = None) -> None:
        """Show the colour bar of a measured colouring (slope, density) under a short ``label`` (HTML), or
        hide it. The hidden label keeps the default text: its size is part of the plot's layout, and a
        layout change would move the view's window (and re-tessellate it)."""
        if levels is None:
            self.colorbar.setVisible(False)
            self.colorbar_label.setText(COLORBAR_DEFAULT_LABEL)
            self.colorbar_label.setVisible(False)
        else:
            lo, hi = levels
            self.colorbar_label.setText(label or COLORBAR_DEFAULT_LABEL)
            self.colorbar.setLevels((lo, hi if hi > lo else lo + 1e-9))
            self.colorbar.setVisible(True)
            self.colorbar_label.setVisible(True)

    def set_legend(self, entries: list[tuple[str, dict]]) -> None:
        """entries: (label, style) where style has 'line' (pen) or 'brush' (a filled square/circle)."""
        key = [(label, tuple(sorted((k, str(v.color().name()) if hasattr(v, "color") else str(v)) for k, v in style.items()))) for label, style in entries]
        old = getattr(self, "_legend_key", None) or []
        if key == old:
            return
        keep = 0  # entries shared with the legend shown stay (the class swatches): rebuilding costs ~15 ms
        while keep < min(len(key), len(old)) and key[keep] == old[keep]:
            keep += 1
        self._legend_key = key
        for item in self._legend_entries[keep:]:
            self.legend.removeItem(item)
        self._legend_entries = self._legend_entries[:keep]
        for label, style in entries[keep:]:
            if "line" in style:
                item = pg.PlotDataItem([0, 1], [0, 0], pen=style["line"])
            else:
                item = pg.ScatterPlotItem(symbol=style.get("symbol", "s"), size=10, brush=style["brush"], pen=style.get("pen", pg.mkPen(None)))
            self._legend_entries.append(item)
            self.legend.addItem(item, html.escape(label))  # a legend label is rich text: "f < 0.2" is no tag
