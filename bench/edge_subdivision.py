"""Benchmark (#17): the 3D engine against the published edge-subdivision code (Berzins, ICML 2023), same
random nets, same process, interleaved: wall and CPU time, and the complex each finds.

    .venv/bin/python bench/edge_subdivision.py --reference DIR [--cases 3-32x3,3-64x3] [--repeat 2] [--threads 2]

DIR is a checkout of github.com/arturs-berzins/relu_edge_subdivision (its ``edge_subdivision.py`` and
``NN.py`` are imported from there, never copied here). Nets: random 3-w^d-1 MLPs (torch seed 0, this
engine's default initialisation) in the box [-1, 1]^3; the reference gets the same weights in its own
``Net`` class. The reference computes the vertex/edge skeleton of the complex in float32, over the hidden
layers and the output neuron (its zero set, the decision surface), and returns no cells or faces. This
engine computes every depth's cells with their faces (float64), patterns, classes and the decision
boundary as polygons. The check: both find the same vertices of the complex after the last hidden
layer (this engine's cells' vertices welded across cells at 1e-8; the reference's
intermediate skeleton after that layer).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geometry.networks.network import Network  # noqa: E402
from geometry.networks.spec import mlp_spec  # noqa: E402
from geometry.slices import Slice  # noqa: E402
from geometry.tessellation import tessellate_all_depths  # noqa: E402


def _case(name: str):
    width, depth = name.split("-")[1].split("x")
    widths = [3] + [int(width)] * int(depth) + [1]
    torch.manual_seed(0)
    return widths, Network(mlp_spec(widths)).eval()


def _reference_net(ref, widths, net):
    f = ref.Net(ks=widths)
    linears = [m for m in net.layers if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        for theirs, ours in zip(f.fcs, linears):
            theirs.weight.copy_(ours.weight.float())
            theirs.bias.copy_(ours.bias.float())
    return f


def _welded(t, tol: float) -> int:
    return int(np.unique(np.round(t.vertices / tol).astype(np.int64), axis=0).shape[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reference", type=Path, required=True, help="a checkout of relu_edge_subdivision")
    ap.add_argument("--cases", default="3-32x3,3-64x3")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(args.reference.resolve()))
    import edge_subdivision as es  # noqa: E402  (the published code, from its own checkout)
    import NN as ref  # noqa: E402, N813

    print(f"3D, box [-1, 1]^3, {args.threads} threads, interleaved, {args.repeat} runs each")
    print(f"  {'net':9s} {'engine':22s} {'wall s':>7s} {'CPU s':>7s}  result")
    for name in args.cases.split(","):
        widths, net = _case(name)
        f = _reference_net(ref, widths, net)
        for rep in range(args.repeat):
            order = ("this", "reference") if rep % 2 == 0 else ("reference", "this")
            for who in order:
                w, c = time.perf_counter(), time.process_time()
                with torch.no_grad():
                    if who == "this":
                        ts = tessellate_all_depths(net, Slice.input_plane(3), [-1, 1] * 3, slope_norm=False)
                    else:
                        inter = es.skeletal_subdivision(f, bbox=(-1, 1), device="cpu", verbose=False, return_intermediate=True)
                wall, cpu = time.perf_counter() - w, time.process_time() - c
                if who == "this":
                    t = ts[-1]
                    what = f"{t.num_regions:,} cells, {t.face_offsets.shape[0] - 1:,} faces, {_welded(t, 1e-8):,} vertices"
                else:
                    vs, edges, _ = inter[len(widths) - 2]
                    what = f"skeleton: {vs.shape[0]:,} vertices, {edges.shape[0]:,} edges after the hidden layers"
                print(f"  {name:9s} {who + ' (' + ('cells+faces' if who == 'this' else 'skeleton') + ')':22s} {wall:7.2f} {cpu:7.2f}  {what}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
