"""Start the desktop application: ``launch(argv) -> exit code`` (called by ``splineatlas`` with no command).

``argv``: optional PATH (run.json, run folder, checkpoint or session .json). With no PATH the bundled
demo run ``assets/runs/spirals`` opens. High-DPI scaling is on by default in Qt 6.
"""

from __future__ import annotations

import sys
from pathlib import Path

DEMO_RUN = Path(__file__).resolve().parents[2] / "assets" / "runs" / "spirals"


def launch(argv: list[str] | None = None) -> int:
    import argparse

    from geometry.heap import reuse_freed_memory

    reuse_freed_memory()  # before Qt's and torch's threads start (geometry/heap.py)

    parser = argparse.ArgumentParser(prog="splineatlas", description="Open the Spline Atlas window.")
    parser.add_argument("path", nargs="?", help="run.json, run folder, checkpoint or session file (default: the bundled spirals demo run)")
    parser.add_argument("--theme", choices=("system", "light", "dark"), default="system", help="colour theme (default: follow the system)")
    parser.add_argument("--threads", type=int, default=0, metavar="N", help="CPU threads for the engine (default 0: the cores not busy with other work)")
    parser.add_argument("--model", metavar="FILE.py:CLASS", help="the checkpoints' architecture is this nn.Module class (its file is imported: its code runs)")
    parser.add_argument("--model-kwargs", metavar="JSON", help="constructor keywords of --model")
    parser.add_argument("--input-shape", type=int, nargs="+", metavar="N", help="input shape of --model without the batch axis")
    parser.add_argument("--level", type=float, default=None, metavar="L", help="regression runs: show the level set f = L as the boundary (default 0)")
    args, qt_args = parser.parse_known_args(list(argv or []))
    if args.level is not None:
        from geometry.networks.runs import set_process_level

        set_process_level(args.level)

    if args.model:  # before the window: every run it opens, in any worker thread, uses the class
        from geometry.errors import SplineAtlasError
        from geometry.networks.user_model import parse_model_ref, set_process_model

        try:
            set_process_model(parse_model_ref(args.model, args.model_kwargs, args.input_shape))
        except SplineAtlasError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"importing {args.model.rpartition(':')[0]} for --model (its code runs: your choice with --model)", file=sys.stderr)

    from PySide6.QtWidgets import QApplication

    from .main_window import APP, ORG, MainWindow

    app = QApplication.instance() or QApplication([sys.argv[0], *qt_args])
    app.setOrganizationName(ORG)
    app.setApplicationName(APP)
    from .theme import Theme, use_dark_palette

    if args.theme == "dark":
        use_dark_palette(app)
    win = MainWindow(theme=None if args.theme == "system" else Theme(dark=args.theme == "dark"))
    from geometry.networks.device import set_threads

    # the engine's threads are the process's: the app sets them (View > Compute threads…), not each window
    win.state.update_settings(threads=max(int(args.threads), 0))
    set_threads(win.state.settings.threads)
    win.state.events.settings.connect(lambda st: set_threads(st.threads))
    win.show()

    def excepthook(etype, value, tb):  # a bug in a slot becomes a dialog, not a silent trace or a crash
        import traceback

        sys.__excepthook__(etype, value, tb)
        win.show_error("Unexpected error", value, "".join(traceback.format_exception(etype, value, tb)))

    sys.excepthook = excepthook
    target = args.path or (str(DEMO_RUN) if DEMO_RUN.exists() else None)
    if target:
        win.open_path(target)
    else:
        win.results.set_status("Open a run with File > Open (Ctrl+O) or drop a file on the window.")
    from .workers import shutdown_all

    app.aboutToQuit.connect(shutdown_all)  # no worker thread runs Python while the interpreter finalizes
    return int(app.exec())
