"""Screenshot of the real window in a given state (for docs and visual checks; run under Xvfb or offscreen).

    python -m app.qt.screenshot OUT.png [PATH] [--mode class|slope|hash|layer] [--depth L] [--epoch-index I]
        [--inspect U,V] [--path KIND:U0,V0[:U1,V1]] [--window=UMIN,UMAX,VMIN,VMAX] [--sites] [--tab NAME]
        [--size 1600x1000] [--dark] [--colors N] [--region-stats N]

The README's docs/screenshot.png: ``--size 1440x900 --path horizontal:-0.75,-0.6:0.8,0.55
--path segment:-0.8,0.8:0.8,-0.85 --inspect 0.31,-0.21 --colors 128`` under ``xvfb-run``.

Opens PATH (default: the bundled spirals run), waits for the exact tessellation and every job to finish,
applies the requested state and saves ``window.grab()``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(","))


def wait_until(app, cond, timeout: float) -> None:
    """Process Qt events until ``cond()`` or ``timeout`` seconds."""
    t0 = time.time()
    while not cond() and time.time() - t0 < timeout:
        app.processEvents()
        time.sleep(0.02)


def wait_for(app, cond, timeout: float = 600.0) -> None:
    """Like :func:`wait_until`, but a timeout raises TimeoutError; then a few more events are processed so
    the last redraws are painted (screenshot scripts)."""
    wait_until(app, cond, timeout)
    if not cond():
        raise TimeoutError("timed out waiting for the window")
    for _ in range(20):
        app.processEvents()


def settle_window(app, win, timeout: float) -> None:
    """Wait until the window has no job running or pending and its last redraws are painted."""
    for _ in range(3):
        wait_until(app, lambda: not win.work.busy() and not win.controller.tess_timer.isActive(), timeout)
        for _ in range(15):
            app.processEvents()
            time.sleep(0.02)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m app.qt.screenshot", description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("path", nargs="?")
    ap.add_argument("--mode", default="class")
    ap.add_argument("--depth", type=int)
    ap.add_argument("--epoch-index", type=int)
    ap.add_argument("--inspect", type=_floats)
    ap.add_argument("--path", dest="paths", action="append", default=[], help="KIND:U0,V0[:U1,V1] (kind: horizontal, normal, region, segment)")
    ap.add_argument("--window", type=_floats, help="UMIN,UMAX,VMIN,VMAX")
    ap.add_argument("--sites", action="store_true")
    ap.add_argument("--tab", default="2D slice")
    ap.add_argument("--size", default="1600x1000")
    ap.add_argument("--dark", action="store_true")
    ap.add_argument("--region-stats", type=int, metavar="N", help="compute the Regions tab's statistics for N points per set first")
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--colors", type=int, default=0, help="quantise to this many colours (smaller PNG; needs Pillow)")
    args = ap.parse_args(argv)

    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from geometry.cache import ResultCache

    from .launch import DEMO_RUN
    from .main_window import MainWindow
    from .theme import Theme

    app = QApplication.instance() or QApplication([sys.argv[0]])
    if args.dark:
        from .theme import use_dark_palette

        use_dark_palette(app)
    tmp = tempfile.mkdtemp(prefix="splineatlas-shot-")
    win = MainWindow(cache=ResultCache(None), settings=QSettings(f"{tmp}/s.ini", QSettings.Format.IniFormat), theme=Theme(dark=True) if args.dark else None)
    w, h = (int(v) for v in args.size.split("x"))
    win.resize(w, h)
    win.show()

    def wait(cond) -> None:
        wait_until(app, cond, args.timeout)

    def settle() -> None:
        settle_window(app, win, args.timeout)

    win.open_path(args.path or str(DEMO_RUN))
    wait(lambda: win.tess is not None or win.last_error is not None)
    settle()
    st = win.state
    if args.epoch_index is not None:
        st.set_epoch_index(args.epoch_index)
    if args.window:
        st.set_window(args.window)
    settle()
    st.set_color_mode(args.mode)
    if args.depth:
        st.set_depth(args.depth)
    if args.sites:
        st.update_settings(show_sites=True)
    for spec in args.paths:
        kind, *pts = spec.split(":")
        st.add_path(kind, _floats(pts[0]), _floats(pts[1]) if len(pts) > 1 else None)
    if args.inspect:
        st.set_inspected(args.inspect)
    if args.region_stats:
        win.regions_panel.n_spin.setValue(args.region_stats)
        win.regions_panel.compute_btn.click()
    settle()
    for i in range(win.tabs.count()):
        if win.tabs.tabText(i) == args.tab:
            win.tabs.setCurrentIndex(i)
    settle()
    from geometry.safe_io import atomic_output

    with atomic_output(args.out) as tmp:
        win.grab().save(str(tmp))
        if args.colors:
            from PIL import Image

            im = Image.open(tmp).convert("RGB")
            im.quantize(colors=args.colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(tmp, format="PNG", optimize=True)
    print(f"saved {args.out}" + (f"; last error: {win.last_error}" if win.last_error else ""))
    win.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
