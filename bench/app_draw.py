"""Drawing a tessellation in the 2D view: one TilesItem (a path per colour) vs one item per polygon.

    QT_QPA_PLATFORM=offscreen .venv/bin/python bench/app_draw.py

Tessellates the bundled spirals run's last checkpoint (input plane) at a few window sizes and prints, per
size: regions, seconds to build the graphics, seconds for a first paint and a repaint of a 900x700 view,
for Spline Atlas's TilesItem and for the naive approach (a QGraphicsPolygonItem per region) in the same run.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pyqtgraph as pg  # noqa: E402
from PySide6.QtGui import QBrush, QColor, QPolygonF  # noqa: E402
from PySide6.QtCore import QPointF  # noqa: E402
from PySide6.QtWidgets import QApplication, QGraphicsPolygonItem  # noqa: E402


def main() -> None:
    from app.qt.theme import Theme, class_rgba
    from app.qt.view2d import TilesItem, edge_groups, prepare_tiles
    from geometry.networks.runs import open_run
    from geometry.slices import Slice
    from geometry.tessellation.engine import tessellate_all_depths

    app = QApplication.instance() or QApplication([])
    run = open_run(Path(__file__).resolve().parents[1] / "assets" / "runs" / "spirals")
    net = run.network(len(run) - 1)
    theme = Theme(dark=False)
    print(f"{'window':>8} {'regions':>8} | {'tiles build':>11} {'1st paint':>9} {'repaint':>8} | {'naive build':>11} {'1st paint':>9} {'repaint':>8}")
    for half in (0.25, 0.6, 1.2):
        t = tessellate_all_depths(net, Slice.input_plane(2), [-half, half, -half, half])[-1]
        rgba = class_rgba(3)[np.clip(t.classes, 0, None)]
        rgba[:, 3] = 110
        rows = []
        for kind in ("tiles", "naive"):
            w = pg.PlotWidget()
            w.resize(900, 700)
            w.show()
            app.processEvents()
            t0 = time.perf_counter()
            if kind == "tiles":
                item = TilesItem()
                item.set_prepared(prepare_tiles(t.vertices, t.offsets, rgba, edge_groups(theme, t.vertices, t.offsets, t.edge_layer, 3, True)))
                w.addItem(item)
            else:
                pen = pg.mkPen(QColor(20, 20, 20, 170), width=0.8)
                pen.setCosmetic(True)
                for r in range(t.num_regions):
                    poly = QPolygonF([QPointF(float(x), float(y)) for x, y in t.polygon(r)])
                    it = QGraphicsPolygonItem(poly)
                    it.setBrush(QBrush(QColor(*[int(c) for c in rgba[r]])))
                    it.setPen(pen)
                    w.addItem(it)
            w.setRange(xRange=(-half, half), yRange=(-half, half), padding=0)
            t1 = time.perf_counter()
            w.grab()
            t2 = time.perf_counter()
            w.grab()
            t3 = time.perf_counter()
            rows.append((t1 - t0, t2 - t1, t3 - t2))
            w.close()
        (a, b, c), (d, e, f) = rows
        print(f"{2 * half:>8.2f} {t.num_regions:>8} | {a:>11.3f} {b:>9.3f} {c:>8.3f} | {d:>11.3f} {e:>9.3f} {f:>8.3f}")


if __name__ == "__main__":
    main()
