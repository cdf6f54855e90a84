"""Benchmark: horizontal leaf-path steps per second, batched engine vs the one-path-at-a-time loop.

Nets: the digits CNN (bundled assets/runs/digits when present, else digits_cnn_spec with random
weights; D = 64) and the 28×28 MNIST CNN of Grementieri & Fioresi (conv 32, conv 64, max-pool,
9216→128→10; random weights; D = 784).
Engine: geometry.foliation.leaf_paths.horizontal_paths with N paths at once (all per-step diagnostics on: Tr G,
spectrum, rank, angle, activation-pattern changes; fixed steps α v/||v|| as the paper, stagnation
stop off; the rate counts the path-steps actually taken).
Reference ("naive"): the paper's published approach — one path at a time, for every step a full
torch.autograd.functional.jacobian of log_softmax (C backward passes at batch 1), projection
pinv(J) J (d − x), x += α v/||v||, and a host sync (.item()) per step.
"region-changing steps": the share of path-steps after which some activation pattern differs. The logit
Jacobian S is constant inside a linear region and the engine reuses it for the remaining steps
(geometry.foliation.local_data_matrix.IncrementalJacobian); on the MNIST CNN at α = 0.1 every step changes the
pattern (tens of conv/max-pool flips per step), so the reuse cannot pay there: it pays on paths that
oscillate inside one region after stalling (the paper's fixed-α steps) and at small step sizes.

    .venv/bin/python bench/paths.py [--device cpu|cuda] [--dtype float32|float64] [--threads N] [--quick]
                                    [--steps N] [--paths 1,16,256] [--nets digits,mnist] [--projection svd|gram]
                                    [--jacobian auto|backprop|jacrev|vjp|loop]
                                    [--clicks ROUNDS]

"seconds" is the measured wall time of the timed engine call (N paths, up to ``steps`` steps each);
path-steps/s = path-steps taken / seconds. --steps N times every engine case for N steps (the CPU
defaults are short: the 256-path MNIST case takes only 2).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from geometry.networks.device import resolve_device
from geometry.foliation.leaf_paths import horizontal_paths
from geometry.networks.network import Network
from geometry.networks.spec import digits_cnn_spec, validate_spec

ROOT = Path(__file__).resolve().parents[1]


def mnist_cnn_spec() -> dict:
    return validate_spec(
        {
            "input_shape": [1, 28, 28],
            "layers": [
                {"type": "conv2d", "in_channels": 1, "out_channels": 32, "kernel_size": 3},
                {"type": "relu"},
                {"type": "conv2d", "in_channels": 32, "out_channels": 64, "kernel_size": 3},
                {"type": "relu"},
                {"type": "maxpool2d", "kernel_size": 2},
                {"type": "flatten"},
                {"type": "linear", "in_features": 9216, "out_features": 128},
                {"type": "relu"},
                {"type": "linear", "in_features": 128, "out_features": 10},
            ],
        }
    )


def digits_net() -> tuple[str, Network]:
    run_dir = ROOT / "assets" / "runs" / "digits"
    if run_dir.exists():
        try:
            from geometry.networks.runs import open_run

            run = open_run(run_dir)
            return "digits CNN (bundled run)", run.network(len(run) - 1)
        except Exception:  # noqa: BLE001 - fall back to random weights
            pass
    torch.manual_seed(0)
    return "digits CNN (random)", Network(digits_cnn_spec())


def naive_steps_per_second(net: Network, dev, dtype, steps: int, alpha: float, seed: int = 0) -> float:
    """One path, one step at a time: full autograd Jacobian + pinv projection + host sync per step."""
    model = net.to_dtype_device(dtype, dev)
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, model.input_dim, generator=g).to(dev, dtype)
    d = torch.rand(1, model.input_dim, generator=g).to(dev, dtype)

    def f(z):
        return torch.log_softmax(model(z), 1)[0]

    for _ in range(2):  # warm-up
        torch.autograd.functional.jacobian(f, x)
    t0 = time.perf_counter()
    for _ in range(steps):
        J = torch.autograd.functional.jacobian(f, x).reshape(-1, model.input_dim)
        v = torch.linalg.pinv(J) @ (J @ (d - x)[0])
        x = x + alpha * v / v.norm()
        float((d - x).norm())  # host sync, as the reference does
    return steps / (time.perf_counter() - t0)


def engine_steps_per_second(
    net: Network, dev, dtype, n: int, steps: int, alpha: float, seed: int = 0, projection: str = "svd", jacobian: str = "auto"
) -> tuple[float, float, float]:
    """(path-steps/s, share of region-changing steps, measured wall seconds of the timed call)."""
    g = torch.Generator().manual_seed(seed)
    S = torch.rand(n, net.input_dim, generator=g, dtype=torch.float64).numpy()
    D = torch.rand(n, net.input_dim, generator=g, dtype=torch.float64).numpy()
    kw = dict(step_size=alpha, tol=0.0, stop_on_stagnation=False, clip_steps=False, dtype=dtype, device=dev, record_every=steps)
    kw.update(projection=projection, jacobian_method=jacobian)
    horizontal_paths(net, S[: min(n, 4)], D[: min(n, 4)], max_steps=1, **kw)  # warm-up
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    lp = horizontal_paths(net, S, D, max_steps=steps, **kw)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    taken = int(lp.num_steps.sum())
    changed = sum(int((lp.pattern_changes[i, : lp.num_steps[i]].sum(-1) > 0).sum()) for i in range(len(lp)))
    # path-steps actually taken (a stalled path stops early), and the fraction of them that changed the
    # activation pattern (a step inside one linear region could reuse the logit Jacobian S exactly)
    return taken / dt, changed / max(taken, 1), dt


CLICK_SETTINGS = (("full", torch.float64), ("lean", torch.float64), ("full", torch.float32), ("lean", torch.float32))


def click_rates(net: Network, dev, kind: str, reps: int, seed: int = 0) -> dict[tuple[str, torch.dtype], tuple[float, float, int]]:
    """A click in the window: one leaf path of ``kind`` with the window's step rule and budget
    (app.jobs.paths), traced with each (diagnostics, dtype) of CLICK_SETTINGS, the settings interleaved
    ``reps`` times. Returns per setting (median wall s, median CPU s, steps taken)."""
    from app.jobs.paths import DEFAULT_STEPS, leaf_step_sizes
    from geometry.foliation.leaf_paths import normal_paths, random_directions

    g = torch.Generator().manual_seed(seed)
    S = torch.rand(1, net.input_dim, generator=g, dtype=torch.float64).numpy()
    D = torch.rand(1, net.input_dim, generator=g, dtype=torch.float64).numpy()
    alpha = leaf_step_sizes(kind, S, D if kind == "horizontal" else None)
    W = random_directions(1, net.input_dim, seed)

    def trace(diag, dtype):
        kw = dict(step_size=alpha, record_every=1, dtype=dtype, device=dev, diagnostics=diag)
        if kind == "horizontal":
            return horizontal_paths(net, S, D, max_steps=DEFAULT_STEPS, **kw)
        return normal_paths(net, S, W, steps=DEFAULT_STEPS, **kw)

    times: dict = {k: ([], []) for k in CLICK_SETTINGS}
    steps: dict = {}
    for _ in range(reps + 1):  # the first round warms up
        for diag, dtype in CLICK_SETTINGS:
            w, c = time.perf_counter(), time.process_time()
            lp = trace(diag, dtype)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times[(diag, dtype)][0].append(time.perf_counter() - w)
            times[(diag, dtype)][1].append(time.process_time() - c)
            steps[(diag, dtype)] = int(lp.num_steps[0])
    return {k: (statistics.median(v[0][1:]), statistics.median(v[1][1:]), steps[k]) for k, v in times.items()}


def print_clicks(cases, dev, reps: int) -> None:
    print(f"one click (1 leaf path, the window's step rule and budget), median of {reps} interleaved rounds")
    print(f"{'net':<28} {'path':>10} {'diagnostics':>11} {'dtype':>8} {'steps':>6} {'wall s':>8} {'CPU s':>7} {'steps/s':>8} {'vs full float64':>16}")
    for name, net in cases:
        for kind in ("horizontal", "normal"):
            res = click_rates(net, dev, kind, reps)
            base = res[CLICK_SETTINGS[0]]
            for (diag, dtype), (wall, cpu, n) in res.items():
                rate, base_rate = n / wall, base[2] / base[0]
                cells = f"{n:>6} {wall:>8.3f} {cpu:>7.3f} {rate:>8.0f} {rate / base_rate:>15.2f}x"
                print(f"{name:<28} {kind:>10} {diag:>11} {str(dtype)[6:]:>8} {cells}", flush=True)


def _pick(table: dict[int, int], n: int) -> int:
    """Default step count for n paths: the entry of the largest tabulated count <= n."""
    return table[max([k for k in table if k <= n] or [min(table)])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default=None)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    ap.add_argument("--steps", type=int, default=None, help="steps per engine case (default: per-case, see the source)")
    ap.add_argument("--paths", default="1,16,256", help="comma list of simultaneous path counts")
    ap.add_argument("--nets", default="digits,mnist", help="comma list: digits, mnist")
    ap.add_argument("--projection", choices=["svd", "gram"], default="svd", help="row-space projection of the engine")
    ap.add_argument(
        "--jacobian",
        choices=["auto", "backprop", "jacrev", "vjp", "loop"],
        default="auto",
        help="the engine's Jacobian method (jacrev: torch.func.vmap(jacrev); auto: the explicit backprop sweep with reuse where it applies)",
    )
    ap.add_argument("--clicks", type=int, default=0, metavar="ROUNDS", help="also time one click in each diagnostics/dtype setting, ROUNDS interleaved rounds")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.steps is not None and args.steps < 1:
        ap.error("--steps must be at least 1")
    paths = [int(v) for v in args.paths.split(",") if v.strip()]
    nets = {v.strip() for v in args.nets.split(",") if v.strip()}
    if not paths or min(paths) < 1 or not nets or nets - {"digits", "mnist"}:
        ap.error("--paths needs positive integers; --nets a comma list of digits, mnist")
    dev = resolve_device(args.device)
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    big = dev.type == "cuda"
    cases = ([digits_net()] if "digits" in nets else []) + ([("MNIST CNN 28x28 (random)", Network(mnist_cnn_spec()))] if "mnist" in nets else [])
    print(f"device {dev}, dtype {args.dtype}, torch threads {torch.get_num_threads()}, projection {args.projection}, Jacobian {args.jacobian}")
    print(f"{'net':<28} {'paths':>6} {'steps':>6} {'seconds':>8} {'path-steps/s':>13} {'naive steps/s':>14} {'speed-up':>9} {'region-changing steps':>22}")
    for name, net in cases:
        mnist = "MNIST" in name
        alpha = 0.1
        naive_steps = (4 if mnist else 20) if args.quick else (10 if mnist else 60)
        naive = naive_steps_per_second(net, dev, dtype, naive_steps, alpha)
        for n in paths:
            if args.steps is not None:
                steps = args.steps
            elif big:
                steps = 1000 if n >= 256 else 200
            elif mnist:
                steps = _pick({1: 10, 16: 4, 256: 2} if not args.quick else {1: 3, 16: 2, 256: 1}, n)
            else:
                steps = _pick({1: 60, 16: 30, 256: 8} if not args.quick else {1: 10, 16: 5, 256: 2}, n)
            rate, changed, secs = engine_steps_per_second(net, dev, dtype, n, steps, alpha, projection=args.projection, jacobian=args.jacobian)
            print(f"{name:<28} {n:>6} {steps:>6} {secs:>8.2f} {rate:>13.1f} {naive:>14.1f} {rate / naive:>8.1f}x {100 * changed:>21.1f}%", flush=True)
    if args.clicks:
        print_clicks(cases, dev, args.clicks)


if __name__ == "__main__":
    main()
