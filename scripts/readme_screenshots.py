"""The README's screenshots of the real window (run under Xvfb), retaken whenever the window changes:

    xvfb-run -a -s "-screen 0 1920x1080x24" .venv/bin/python scripts/readme_screenshots.py

Writes docs/screenshot.png (the 2D tab on spirals with a point inspected and a horizontal path, 1366x768)
and assets/screenshots/compare.png (the Compare tab, epochs 3000 and 2900, 1366x768). The 3D tab's
shot comes from scripts/screenshot_view3d.py (assets/screenshots/view3d_clip.png).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> int:
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.qt.screenshot import wait_for as wait

    app = QApplication.instance() or QApplication([sys.argv[0]])
    from app.qt.main_window import MainWindow
    from geometry.cache import ResultCache

    tmp = Path(tempfile.mkdtemp())
    win = MainWindow(cache=ResultCache(tmp / "cache"), settings=QSettings(str(tmp / "s.ini"), QSettings.Format.IniFormat))
    win.resize(1366, 768)
    win.show()
    win.open_path(str(ROOT / "assets" / "runs" / "spirals"))
    idle = lambda: win.results.tiles is not None and not win.work.busy() and not win.controller.tess_timer.isActive()  # noqa: E731
    wait(app, idle)
    st, b = win.state, win.bundle
    X, _ = b.points()
    p = win.state.slice.project(X[[5, 300]])
    path = st.add_path("horizontal", tuple(p[0]), tuple(p[1]))
    wait(app, lambda: idle() and win.results.paths.get(path.id) is not None)
    st.set_inspected((0.06, 0.04))
    wait(app, lambda: idle() and win.results.region_info is not None)
    win.grab().save(str(ROOT / "docs" / "screenshot.png"))
    print("wrote docs/screenshot.png")
    tab = win.compare_tab
    win.tabs.setCurrentWidget(tab)
    tab.epoch_box.setCurrentIndex(len(b.epochs) - 2)
    wait(app, lambda: idle() and win.results.comparison is not None and win.results.comparison.b.epoch_index == len(b.epochs) - 2)
    out = ROOT / "assets" / "screenshots" / "compare.png"
    win.grab().save(str(out))
    print("wrote", out.relative_to(ROOT), "·", tab.summary.text())
    win.work.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
