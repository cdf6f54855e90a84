"""Screenshots of the real window's 3D tab (run under Xvfb) at a few interesting states.

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshot_view3d.py OUT_DIR [--run PATH]
        [--reference]

``--reference``: when the 3D engine is not installed, tessellate with the slow independent reference of the
tests (tests/reference_tess3d.py, Linear/ReLU MLPs only) and hand the result to the window's result cache,
where the tab looks before asking the engine. Shots: default view, clipping plane + the linked 2D tab,
exploded view, faces of layer 1 only coloured by layer, faces near the decision boundary.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--run", default=str(ROOT / "assets" / "runs" / "rings3d"))
    ap.add_argument("--reference", action="store_true")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.qt.screenshot import wait_for as wait

    app = QApplication.instance() or QApplication([sys.argv[0]])
    from app.jobs import scene3d as jobs3d
    from app import jobs
    from app.qt.main_window import MainWindow
    from geometry.cache import ResultCache

    tmp = Path(tempfile.mkdtemp())
    win = MainWindow(cache=ResultCache(tmp / "cache"), settings=QSettings(str(tmp / "s.ini"), QSettings.Format.IniFormat))
    win.resize(1560, 960)
    win.show()
    win.open_path(args.run)
    wait(app, lambda: win.bundle is not None and win.tess is not None)
    tab = win.view3d
    b = win.bundle
    if args.reference:
        from reference_tess3d import reference_tessellations

        sl, box = jobs3d.make_slice3(b, jobs3d.default_choice(b), len(b.run) - 1)
        t0 = time.time()
        tb = reference_tessellations(b.run.network(len(b.run) - 1), box)
        print(f"reference tessellation: {tb[-1].num_regions} cells in {time.time() - t0:.1f} s")
        win.cache.put(jobs.tessellation_key(b, len(b.run) - 1, sl, box, tab.state3d.settings.max_cells), tb, persist=False)
    win.tabs.setCurrentWidget(tab)
    wait(app, lambda: tab.scene is not None or (tab.error is not None))
    if tab.scene is None:
        print("no 3D tessellation:", tab.error)
        return 1

    def shot(name):
        wait(app, lambda: not win.work.busy("scene3d") and not win.work.busy("tessellation3d"))
        for _ in range(10):
            app.processEvents()
        win.grab().save(str(out / name))
        print("wrote", out / name, "·", tab.scene.summary())

    shot("view3d_default.png")
    box = tab.state3d.box
    tab.state3d.update_clip(enabled=True, axis=2, position=box[4] + 0.45 * (box[5] - box[4]))
    wait(app, lambda: jobs3d.is_clip_slice(win.state.slice, tab.state3d.slice3, tab.state3d.clip))
    wait(app, lambda: win.tess is not None and not win.work.busy("tessellation"))
    shot("view3d_clip.png")
    win.tabs.setCurrentWidget(win.view2d)
    wait(app, lambda: True)
    win.grab().save(str(out / "view3d_clip_linked_2d.png"))
    print("wrote", out / "view3d_clip_linked_2d.png")
    win.tabs.setCurrentWidget(tab)
    tab.state3d.update_clip(enabled=False)
    tab.state3d.update_settings(explode=0.6, opacity=0.35)
    shot("view3d_exploded.png")
    tab.state3d.update_settings(explode=0.0, opacity=0.3, only_layer=1)
    win.state.set_color_mode("layer")
    shot("view3d_layer1.png")
    tab.state3d.update_settings(only_layer=0, near_boundary=True, near_distance=0.0, opacity=0.25)
    win.state.set_color_mode("class")
    shot("view3d_near_boundary.png")
    win.work.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
