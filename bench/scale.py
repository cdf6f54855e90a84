"""Slices through real CNN sizes (#17): regions, wall and CPU time and peak memory of the 2D engine on a plane
through three inputs, against a baseline engine (another checkout, e.g. the commit before bounded memory)
run on the same cases in the same session, interleaved.

Every case runs in its own process so that its peak RSS (``ru_maxrss``) is its own:

    .venv/bin/python bench/scale.py                          # this checkout only
    git worktree add /tmp/base <commit>                      # a baseline checkout, then:
    .venv/bin/python bench/scale.py --baseline /tmp/base [--cases lenet5,resnet18] [--repeat 2]

Networks (random weights, seed 0; the engine's cost depends on sizes, not on training): LeNet-5 on
1x28x28, a ResNet-18-style network for 3x32x32 (torchvision's layout, 4 stages of 2 basic blocks,
widths 64..512), the survey's 5-layer ConvNet on 3x64x64 (average width 160: 5 conv + ReLU layers of
64-128-160-192-256 channels, 3x3, stride 2 after the first). The plane passes through three uniform
random inputs in [0, 1]; the window is their bounding box grown by 20 %.

3D cases (``--cases mlp3d-32,mlp3d-64,idle``): random 3-w-w-w-1 MLPs tessellated in the box
[-scale, scale]^3; ``idle`` builds a net and tessellates nothing: its peak RSS is the Python + torch +
engine baseline that the 3D cases' peaks are compared with. 2D MLP cases (``--cases mlp2d-256-6``):
a random 2-w x depth-1 MLP in the square [-scale, scale]^2.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = ("lenet5", "resnet18", "convnet5")


def _model(name: str):
    import torch
    from torch import nn

    torch.manual_seed(0)
    if name == "lenet5":
        sys.path.insert(0, str(ROOT / "tests"))
        from zoo_models import LeNet5

        return LeNet5(), [1, 28, 28]
    if name == "convnet5":
        chans = [3, 64, 128, 160, 192, 256]
        layers = []
        for i in range(5):
            layers += [nn.Conv2d(chans[i], chans[i + 1], 3, stride=1 if i == 0 else 2, padding=1), nn.ReLU()]
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 10)), [3, 64, 64]
    if name == "resnet18":

        class Block(nn.Module):
            def __init__(self, cin, cout, stride):
                super().__init__()
                self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
                self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
                self.relu = nn.ReLU()
                self.down = None
                if stride != 1 or cin != cout:
                    self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

            def forward(self, x):
                out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
                return self.relu(out + (x if self.down is None else self.down(x)))

        class ResNet18(nn.Module):
            def __init__(self):
                super().__init__()
                self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
                blocks, cin = [], 64
                for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
                    blocks += [Block(cin, cout, stride), Block(cout, cout, 1)]
                    cin = cout
                self.blocks = nn.Sequential(*blocks)
                self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, 10))

            def forward(self, x):
                return self.head(self.blocks(self.stem(x)))

        return ResNet18().eval(), [3, 32, 32]
    raise SystemExit(f"unknown case {name!r}; give one of {', '.join(CASES)}")


def run_case(name: str, scale: float) -> dict:
    """One case in this process (the child): the engine of whichever checkout is first on sys.path, with
    the app's and CLI's reuse of freed memory when that checkout has it (``BENCH_DEFAULT_ALLOCATOR=1``:
    glibc's defaults)."""
    if not os.environ.get("BENCH_DEFAULT_ALLOCATOR"):
        try:
            from geometry.heap import reuse_freed_memory

            reuse_freed_memory()
        except ImportError:  # a checkout from before it
            pass
    import torch

    from geometry.tessellation import tessellate

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    if os.environ.get("BENCH_MEMORY_GB"):  # the engine's --memory-budget (a checkout without it ignores this)
        from geometry.tessellation import engine

        if hasattr(engine, "set_memory_budget"):
            engine.set_memory_budget(int(float(os.environ["BENCH_MEMORY_GB"]) * 2**30))
    net, sl, box = _case_slice(name, scale)
    w0, c0 = time.perf_counter(), time.process_time()
    out = {"case": name, "scale": scale, "regions": 0, "pieces": 1, "chunks": 1, "stopped": None}
    try:
        if sl is not None:  # idle: the net is built, nothing is tessellated
            t = tessellate(net, sl, box, slope_norm=False)
            out.update(regions=int(t.num_regions), pieces=int(getattr(t, "pieces", 1)), chunks=int(getattr(t, "chunks", 1)))
    except Exception as exc:  # a budget stop is a result (the baseline's width-derived region cap)
        out.update(regions=None, pieces=None, chunks=None, stopped=f"{type(exc).__name__}: {exc}"[:160])
    out.update(wall_s=time.perf_counter() - w0, cpu_s=time.process_time() - c0, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    out["widest_layer"] = max(li.width for li in net.layer_infos)
    return out


def _case_slice(name: str, scale: float):
    """(network, slice or None for ``idle``, window or box) of one case."""
    import numpy as np
    import torch

    from geometry.networks.network import Network
    from geometry.networks.spec import mlp_spec, spec_from_module
    from geometry.slices import Slice

    if name.startswith(("mlp3d-", "mlp2d-")) or name == "idle":  # random MLPs in [-scale, scale]^k
        torch.manual_seed(0)
        k = 2 if name.startswith("mlp2d-") else 3
        w = int(name.split("-")[1]) if name != "idle" else 8
        depth = int(name.split("-")[2]) if k == 2 else 3
        net = Network(mlp_spec([k] + [w] * depth + [1])).eval()
        return net, (None if name == "idle" else Slice.input_plane(k)), [-scale, scale] * k
    module, shape = _model(name)
    spec, state = spec_from_module(module.eval(), shape)
    net = Network(spec).eval()
    net.load_weights(state, source=name)
    rng = np.random.default_rng(0)
    pts = rng.random((3, int(np.prod(shape))))
    sl = Slice.through_points(pts)
    u = sl.project(pts)
    lo, hi = u.min(0), u.max(0)
    c, half = (lo + hi) / 2, (hi - lo) / 2 * 1.2 * scale
    return net, sl, np.array([c[0] - half[0], c[0] + half[0], c[1] - half[1], c[1] + half[1]])


def _child(checkout: Path, name: str, scale: float, timeout: float) -> dict:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    paths = f"sys.path.insert(0, {str(checkout)!r}); sys.path.insert(1, {str(ROOT / 'bench')!r})"
    code = f"import json, sys; {paths}; import scale; print(json.dumps(scale.run_case({name!r}, {scale})))"
    try:
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout, cwd=str(checkout))
    except subprocess.TimeoutExpired:
        return {"case": name, "scale": scale, "stopped": f"over {timeout:.0f} s"}
    if res.returncode:
        return {"case": name, "scale": scale, "stopped": (res.stderr.strip().splitlines() or ["failed"])[-1][:160]}
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", type=Path, help="a checkout of the baseline engine")
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--scale", type=float, default=1.0, help="window size relative to the three points' box")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--json", type=Path, help="also write every row here")
    args = ap.parse_args()
    rows = []
    engines = [("this", ROOT)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
    for name in args.cases.split(","):
        for rep in range(args.repeat):
            for label, checkout in engines if rep % 2 == 0 else engines[::-1]:  # interleaved
                r = _child(checkout, name, args.scale, args.timeout)
                r["engine"] = label
                rows.append(r)
                regions = r.get("regions")
                print(
                    f"{name:9s} {label:8s} regions {regions if regions is not None else '-':>8} "
                    f"sub-windows {r.get('pieces') or '-':>3} chunks {r.get('chunks') or '-':>3} "
                    f"wall {r.get('wall_s', float('nan')):8.1f} s  CPU {r.get('cpu_s', float('nan')):8.1f} s  "
                    f"peak RSS {r.get('peak_rss_mb', float('nan')):8.0f} MB" + (f"  stopped: {r['stopped']}" if r.get("stopped") else ""),
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
