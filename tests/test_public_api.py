"""Every name geometry re-exports resolves, and the engine never imports Qt or the app."""

import subprocess
import sys

import geometry


def test_every_export_resolves():
    missing = [n for n in geometry.__all__ if getattr(geometry, n, None) is None]
    assert not missing


def test_engine_and_cli_do_not_import_qt():
    code = (
        "import sys, geometry, app.cli.main\n"
        "[getattr(geometry, n) for n in geometry.__all__]\n"
        "app.cli.main.build_parser()\n"
        "bad = [m for m in sys.modules if m.startswith(('PySide6', 'pyqtgraph', 'vispy', 'app.qt'))]\n"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_geometry_never_imports_app():
    import pathlib

    root = pathlib.Path(geometry.__file__).parent
    offenders = [str(p) for p in root.rglob("*.py") if "import app" in p.read_text() or "from app" in p.read_text()]
    assert not offenders
