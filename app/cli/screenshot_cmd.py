"""``splineatlas screenshot``: the real 2D view rendered offscreen to a PNG, with a JSON key beside it
(pixel -> slice coordinates, plot rectangle, class colours as drawn), so the picture can be checked
against the forward pass. The twin of what the window shows."""

from __future__ import annotations

import argparse
import os
import sys

from geometry.errors import SplineAtlasError

from ..model.state import COLOR_MODES


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("screenshot", help="render the real 2D view offscreen to a PNG plus a JSON key")
    p.add_argument("path", help="run.json, run folder or checkpoint")
    p.add_argument("--epoch", type=int, default=None, help="epoch (default: the last checkpoint)")
    p.add_argument("--depth", type=int, default=None, help="layers 1..L (default: all)")
    p.add_argument("--window", type=float, nargs=4, metavar=("UMIN", "UMAX", "VMIN", "VMAX"), default=None)
    p.add_argument("--mode", choices=COLOR_MODES, default="class")
    p.add_argument("--size", default="1366x768", metavar="WxH", help="window size in pixels (default 1366x768)")
    p.add_argument("--no-points", action="store_true", help="hide the data points")
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait for the exact tessellation")
    p.add_argument("--out", required=True, metavar="VIEW.png", help="PNG; the key goes to VIEW.json")
    p.set_defaults(func=cmd_screenshot)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SplineAtlasError(f"--size {text!r}: give WxH, e.g. 1366x768.") from None
    if not (320 <= w <= 8192 and 240 <= h <= 8192):
        raise SplineAtlasError(f"--size {text}: width 320..8192 and height 240..8192 pixels.")
    return w, h


def cmd_screenshot(args) -> int:
    w, h = _size(args.size)
    if not os.environ.get("DISPLAY") and not os.environ.get("QT_QPA_PLATFORM"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    import tempfile

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from app.qt.main_window import MainWindow
    from app.qt.screenshot import settle_window, wait_until
    from app.qt.view_key import save_view
    from geometry.cache import ResultCache
    from geometry.networks.runs import open_run

    run = open_run(args.path)  # refuse bad input (and a missing --epoch) before any window
    index = run.exact_index(args.epoch)
    app = QApplication.instance() or QApplication([sys.argv[0]])
    tmp = tempfile.mkdtemp(prefix="splineatlas-screenshot-")
    win = MainWindow(cache=ResultCache(None), settings=QSettings(f"{tmp}/s.ini", QSettings.Format.IniFormat))
    win.resize(w, h)
    win.show()
    try:
        win.open_path(args.path)
        wait_until(app, lambda: win.tess is not None or win.last_error is not None, args.timeout)
        settle_window(app, win, args.timeout)
        if win.bundle is None:
            raise SplineAtlasError(win.last_error or f"{args.path} did not open.")
        st = win.state
        st.set_epoch_index(index)
        if args.window:
            st.set_window(args.window)
        st.set_color_mode(args.mode)
        if args.depth:
            st.set_depth(args.depth)
        if args.no_points:
            st.update_settings(show_points=False)
        settle_window(app, win, args.timeout)
        if win.results.tiles_error is not None:
            raise SplineAtlasError(f"the exact tessellation failed: {win.results.tiles_error}")
        key = save_view(win, args.out)
    finally:
        win.work.shutdown()
        win.close()
    print(
        f"wrote {args.out} and {os.path.splitext(args.out)[0]}.json (epoch {key['epoch']}, layers 1-{key['depth']}, {'exact' if key['exact'] else 'PREVIEW'})"
    )
    return 0
