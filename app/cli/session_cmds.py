"""``splineatlas session create|show``: the headless twin of the window's File > Save/Open Session.

``create`` writes a session file (run, epoch, layer depth, slice, window, colour mode, paths) that the
app opens with ``splineatlas FILE``; ``show`` validates one and prints what it holds, and with
``--tessellate`` computes the exact tessellation the window would draw for it (region counts per depth).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from geometry.errors import SplineAtlasError

from ..model.state import COLOR_MODES, PATH_KINDS, SliceChoice, ViewerState

from ..model.session import read_session, save_session
from geometry.safe_io import write_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("session", help="create or inspect a session file of the desktop app")
    ss = p.add_subparsers(dest="session_command", metavar="ACTION")
    c = ss.add_parser("create", help="write a session file the app can open")
    c.add_argument("run", help="run.json, run folder or checkpoint")
    c.add_argument("--out", required=True, help="session .json to write")
    c.add_argument("--epoch", type=int, help="epoch (default: the last checkpoint)")
    c.add_argument("--depth", type=int, help="layer depth 1..L (default: all layers)")
    g = c.add_mutually_exclusive_group()
    g.add_argument("--plane", choices=("input", "pca"), help="input plane (2-input nets) or PCA of the data")
    g.add_argument("--through", help="plane through three training points I,J,K")
    g.add_argument("--deepfool", type=int, metavar="I", help="point I + its DeepFool direction + a random direction")
    c.add_argument("--seed", type=int, default=0, help="seed of the random direction (--deepfool)")
    c.add_argument(
        "--window",
        type=float,
        nargs=4,
        metavar=("UMIN", "UMAX", "VMIN", "VMAX"),
        help="visible window in slice coordinates (default: around the data / defining points)",
    )
    c.add_argument("--color-mode", choices=COLOR_MODES, default="class")
    c.add_argument("--relative", action="store_true", help="store the run's path relative to the session file (for sessions shipped beside runs)")
    c.add_argument(
        "--path", action="append", nargs="+", default=[], metavar="ARG", help="KIND U0 V0 [U1 V1]: keep a path (kind: " + ", ".join(PATH_KINDS) + ")"
    )
    c.set_defaults(func=cmd_create)
    s = ss.add_parser("show", help="validate a session file and print what it holds")
    s.add_argument("file")
    s.add_argument("--tessellate", action="store_true", help="also compute the exact tessellation it shows")
    s.add_argument("--json", action="store_true", help="print the session JSON (normalised)")
    s.set_defaults(func=cmd_show)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _choice(args, bundle) -> SliceChoice:
    from .. import jobs

    if args.through:
        try:
            idx = tuple(int(i) for i in args.through.split(","))
        except ValueError:
            raise SplineAtlasError(f"--through takes three comma-separated indices, got {args.through!r}.") from None
        if len(idx) != 3:
            raise SplineAtlasError("--through needs exactly three indices I,J,K.")
        n = len(bundle.points()[0])
        if any(not 0 <= i < n for i in idx):
            raise SplineAtlasError(f"--through indices must be in 0..{n - 1} (the run's training points).")
        return SliceChoice("points", idx)
    if args.deepfool is not None:
        return SliceChoice("deepfool", (int(args.deepfool),), int(args.seed))
    if args.plane:
        return SliceChoice(args.plane)
    return jobs.default_slice_choice(bundle)


def cmd_create(args) -> int:
    from .. import jobs

    bundle = jobs.open_run_bundle(args.run)
    st = ViewerState()
    epoch_index = bundle.run.exact_index(args.epoch)
    st.set_run(str(Path(args.run).resolve()), len(bundle.run), bundle.depth, epoch_index)
    if args.depth is not None:
        if not 1 <= args.depth <= bundle.depth:
            raise SplineAtlasError(f"--depth must be in 1..{bundle.depth} for this network.")
        st.set_depth(args.depth)
    choice = _choice(args, bundle)
    sl, window = jobs.make_slice(bundle, choice, epoch_index)
    st.set_slice(sl, choice, window)
    if args.window:
        try:
            st.set_window(args.window)
        except ValueError as exc:
            raise SplineAtlasError(str(exc)) from None
    st.set_color_mode(args.color_mode)
    for spec in args.path:
        kind, nums = spec[0], spec[1:]
        if kind not in PATH_KINDS or len(nums) not in (2, 4):
            raise SplineAtlasError(f"--path takes KIND U0 V0 [U1 V1] with KIND in {PATH_KINDS}; got {' '.join(spec)}.")
        if kind != "normal" and len(nums) != 4:
            raise SplineAtlasError(f"a {kind} path needs a start and an end: --path {kind} U0 V0 U1 V1.")
        v = [float(x) for x in nums]
        st.add_path(kind, v[:2], v[2:] if len(v) == 4 else None)
    save_session(st, args.out)
    if args.relative:
        import os

        data = json.loads(Path(args.out).read_text())
        data["run"] = os.path.relpath(Path(args.run).resolve(), Path(args.out).resolve().parent)
        write_text(args.out, json.dumps(data, indent=1))
    print(
        f"wrote {args.out}: {bundle.name}, epoch {bundle.epochs[st.epoch_index]}, layers 1..{st.depth}, "
        f"{sl.description}, window {[round(w, 4) for w in st.window]}, {len(st.paths)} path(s)"
    )
    return 0


def cmd_show(args) -> int:
    data = read_session(args.file)
    if args.json:
        print(json.dumps(data, indent=1))
        return 0
    run = data.get("run")
    sc = data.get("slice_choice") or {}
    print(f"session {args.file}")
    print(f"  run:        {run}")
    print(f"  epoch idx:  {data.get('epoch_index')}   layers 1..{data.get('depth')}   colour: {data.get('color_mode')}")
    print(f"  slice:      {(data.get('slice') or {}).get('description', '(none)')}  [{sc.get('kind')} {sc.get('indices', [])}]")
    print(f"  window:     {data.get('window')}")
    for p in data.get("paths") or []:
        print(f"  path #{p['id']}: {p['kind']} from {p['start']} to {p.get('end')} (epoch idx {p.get('epoch_index')})")
    if args.tessellate:
        from geometry.slices import Slice

        from .. import jobs

        if not run or data.get("slice") is None:
            raise SplineAtlasError("this session names no run or slice to tessellate.")
        run_path = Path(run)
        if not run_path.is_absolute():  # relative to the session file, as the app resolves it
            run_path = Path(args.file).resolve().parent / run_path
        bundle = jobs.open_run_bundle(run_path)
        i = min(int(data.get("epoch_index", 0)), len(bundle.run) - 1)
        t0 = time.perf_counter()
        tess = jobs.tessellate_all(bundle, i, Slice.from_json(data["slice"]), data["window"], int((data.get("settings") or {}).get("max_regions", 200_000)))
        dt = time.perf_counter() - t0
        counts = ", ".join(f"{t.num_regions}" for t in tess)
        print(f"  regions per depth 1..{len(tess)}: {counts}; {len(tess[-1].boundary_segments)} decision-boundary segments; {dt:.2f} s")
    return 0
