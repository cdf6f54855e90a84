"""Entry point of ``splineatlas``: dispatches subcommands; no subcommand opens the desktop app.

Each command module exposes ``register(subparsers)`` that adds its subparsers and sets
``func=handler(args) -> int``. Errors of type SplineAtlasError print one line and exit non-zero.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from geometry.errors import SplineAtlasError

# Command modules (app/cli/<name>.py). Add a new command group by adding its module here.
COMMAND_MODULES = [
    "app.cli.foundation_cmds",
    "app.cli.tessellate_cmd",
    "app.cli.region_cmds",
    "app.cli.boundary_cmds",
    "app.cli.render3d_cmd",
    "app.cli.path_cmds",
    "app.cli.export_cmds",
    "app.cli.dynamics_cmds",
    "app.cli.session_cmds",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="splineatlas",
        description="Spline Atlas: the geometry of trained networks. With no command (or just a PATH), opens the app.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def _open_app(argv: list[str]) -> int:
    from app.qt.launch import launch  # Qt is imported only here

    return launch(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = set(parser._subparsers._group_actions[0].choices) if parser._subparsers else set()
    if not argv or (argv[0] not in commands and not argv[0].startswith("-")) or argv[0] == "open":
        return _open_app(argv[1:] if argv and argv[0] == "open" else argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except SplineAtlasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` & co.
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
