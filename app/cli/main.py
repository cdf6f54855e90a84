"""Entry point of ``splineatlas``: dispatches subcommands; no subcommand opens the desktop app.

Each command module exposes ``register(subparsers)`` that adds its subparsers and sets
``func=handler(args) -> int``. Errors of type SplineAtlasError print one line and exit non-zero.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import signal
import sys
import traceback

from app.cli.common import check_argument_budgets
from geometry.errors import SplineAtlasError
from geometry.safe_io import CHECKPOINT_LIMIT_ENV, printable

# Command modules (app/cli/<name>.py). Add a new command group by adding its module here.
COMMAND_MODULES = [
    "app.cli.foundation_cmds",
    "app.cli.tessellate_cmd",
    "app.cli.inspect_cmd",
    "app.cli.follow_cmd",
    "app.cli.density_cmd",
    "app.cli.generate_cmd",
    "app.cli.compare_cmd",
    "app.cli.region_cmds",
    "app.cli.boundary_cmds",
    "app.cli.render3d_cmd",
    "app.cli.path_cmds",
    "app.cli.export_cmds",
    "app.cli.dynamics_cmds",
    "app.cli.sweep_cmd",
    "app.cli.precompute_cmd",
    "app.cli.session_cmds",
    "app.cli.screenshot_cmd",
]


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2), like every other bad input."""

    def error(self, message: str):
        print(f"error: {printable(message, 400)} (see: {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="splineatlas",
        description="Spline Atlas: the geometry of trained networks. With no command (or just a PATH), opens the app.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    for command in sub.choices.values():  # options every command takes
        command.add_argument("--verbose", action="store_true", help="on an error, also print the technical cause")
        command.add_argument("--max-checkpoint-mb", type=float, default=None, metavar="MB", help="refuse checkpoint files larger than this (default 4096)")
        command.add_argument("--threads", type=int, default=None, metavar="N", help="CPU threads for the engine (default: the cores not busy with other work)")
        command.add_argument(
            "--memory-budget",
            type=float,
            default=None,
            metavar="GB",
            help="memory one layer's affine maps may use before its regions go on through the network in chunks "
            "(a network with branches: the window is split into glued sub-windows; default: 30%% of the free memory)",
        )
        command.add_argument(
            "--model",
            metavar="FILE.py:CLASS",
            help="the checkpoints' architecture is this nn.Module class (its file is imported: its code runs) or torchvision:NAME",
        )
        command.add_argument("--level", type=float, default=None, metavar="L", help="regression runs: the boundary tools trace the level set f = L (default 0)")
        command.add_argument("--model-kwargs", metavar="JSON", help="constructor keywords of --model, e.g. '{\"num_classes\": 10}'")
        command.add_argument("--input-shape", type=int, nargs="+", metavar="N", help="input shape of --model without the batch axis, e.g. 1 28 28")
    return parser


def _open_app(argv: list[str]) -> int:
    from app.qt.launch import launch  # Qt is imported only here

    return launch(argv)


class _EscapingStream:
    """A text stream that escapes control characters (ANSI sequences in a run name, say) and undecodable
    file-name bytes before they reach the terminal; newlines and tabs pass."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        return self._stream.write("\n".join(printable(line, 1 << 20).replace("\\x0d", "\r") for line in text.split("\n")))

    def __getattr__(self, attr):
        return getattr(self._stream, attr)


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def _model_ref(args):
    """The --model reference, or None; importing the user's file runs its code, so say so."""
    if not getattr(args, "model", None):
        if getattr(args, "model_kwargs", None) or getattr(args, "input_shape", None):
            raise SplineAtlasError("--model-kwargs and --input-shape go with --model FILE.py:CLASS.")
        return None
    from geometry.networks.user_model import parse_model_ref

    ref = parse_model_ref(args.model, args.model_kwargs, args.input_shape)
    if ref.source != "torchvision":
        print(f"importing {ref.source} for --model {ref.cls} (its code runs: your choice with --model)", file=sys.stderr)
    return ref


def _report(message: str) -> None:
    print(f"error: {printable(message, 600)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    from geometry.heap import reuse_freed_memory

    reuse_freed_memory()  # before any thread starts: the engine's big tensors reuse pages (geometry/heap.py)
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    commands = set(parser._subparsers._group_actions[0].choices) if parser._subparsers else set()
    if not argv or (argv[0] not in commands and not argv[0].startswith("-")) or argv[0] == "open":
        return _open_app(argv[1:] if argv and argv[0] == "open" else argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    if args.max_checkpoint_mb is not None:
        os.environ[CHECKPOINT_LIMIT_ENV] = str(args.max_checkpoint_mb)
    import torch

    from geometry.networks.device import set_threads
    from geometry.tessellation.engine import set_memory_budget
    from geometry.networks.runs import using_level
    from geometry.networks.user_model import using_model

    threads_before = torch.get_num_threads()  # a caller in this process (tests) keeps its own setting
    restore = sys.stdout
    if not isinstance(sys.stdout, _EscapingStream):
        sys.stdout = _EscapingStream(sys.stdout)
    with contextlib.suppress(ValueError):  # not in the main thread (tests): keep the default
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        check_argument_budgets(args)
        set_threads(args.threads)
        if args.memory_budget is not None:
            if not args.memory_budget > 0:
                raise SplineAtlasError(f"--memory-budget {args.memory_budget:g}: give a positive number of GB.")
            set_memory_budget(int(args.memory_budget * 2**30))
        with using_model(_model_ref(args)), using_level(args.level):
            return int(args.func(args) or 0)
    except SplineAtlasError as exc:
        _report(str(exc))
        if args.verbose:
            traceback.print_exception(exc.__cause__ or exc, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` & co.
        sys.stderr.close()
        return 0
    except MemoryError:
        _report(f"{args.command} ran out of memory; use smaller sizes (see --help) or a smaller network.")
        return 2
    except Exception as exc:  # a defect of ours: still one line, the traceback on --verbose
        _report(
            f"{args.command} failed unexpectedly ({type(exc).__name__}: {exc}); this is a bug in Spline Atlas — rerun with --verbose and report the traceback."
        )
        if args.verbose:
            traceback.print_exception(exc, file=sys.stderr)
        return 1
    finally:
        sys.stdout = restore
        torch.set_num_threads(threads_before)
        set_memory_budget(None)


def run() -> None:
    """The console entry point: ``main()``, then exit. After Ctrl+C the process ends at once: every output
    was written atomically (its temporary is already removed), so the second or so torch needs to tear
    down its state on a normal interpreter exit is skipped."""
    code = main()
    if code == 130:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)
    sys.exit(code)


if __name__ == "__main__":
    run()
