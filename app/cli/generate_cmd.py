"""``splineatlas generate PATH --sampler prior|magnet|polarity [--rho R] --n N --out samples.npz``: samples
of a ReLU generator (2 latent inputs) from its exact latent tessellation: the latent prior (uniform on
the box), MaGNET (uniform on the learned manifold) or polarity sampling (latent density ∝ volume^ρ)."""

from __future__ import annotations

import argparse

import numpy as np

from geometry.errors import SplineAtlasError

from .common import add_trust_argument


def register(sub: argparse._SubParsersAction) -> None:
    from geometry.generative import SAMPLERS

    p = sub.add_parser("generate", help="sample a ReLU generator's manifold: latent prior, MaGNET (uniform on the manifold) or polarity sampling")
    p.add_argument("path", help="run.json, run folder or checkpoint of a generator with 2 latent inputs")
    p.add_argument("--sampler", default="magnet", help=f"one of {', '.join(SAMPLERS)} (default magnet)")
    p.add_argument(
        "--rho", type=float, default=-1.0, help="polarity exponent ρ: latent density ∝ volume change^ρ (default -1: the dense parts; 1 is MaGNET, 0 the prior)"
    )
    p.add_argument("--n", type=int, default=1000, help="samples (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--box", type=float, nargs=4, default=(-1.0, 1.0, -1.0, 1.0), metavar=("ZMIN1", "ZMAX1", "ZMIN2", "ZMAX2"), help="the latent box (default [-1, 1]²)"
    )
    p.add_argument("--epoch", type=int, default=None, help="epoch (default: the last checkpoint)")
    p.add_argument("--max-regions", type=int, default=None, help="region budget of the latent tessellation")
    p.add_argument(
        "--figure", metavar="FIG.png", help="also draw the latent tiles, the manifold (D = 3) and the output-density histograms of prior, MaGNET and polarity"
    )
    p.add_argument("--grid", type=int, default=8, metavar="N", help="a generator of images: the figure shows its pictures on an N x N latent grid (default 8)")
    p.add_argument("--out", required=True, metavar="OUT.npz", help="Z (n, 2) latent points, X (n, D) outputs, tile (n,), volume (n,) of each sample's tile")
    add_trust_argument(p)
    p.set_defaults(func=cmd_generate)


def _sampler_label(sampler: str, rho: float) -> str:
    return f"polarity (ρ = {rho:g})" if sampler == "polarity" else sampler


def cmd_generate(args) -> int:
    from geometry.generative import SAMPLERS, generate, manifold_tiles, output_density, sample_latent
    from geometry.networks.runs import open_run
    from geometry.safe_io import write_npz

    if args.sampler not in SAMPLERS:
        raise SplineAtlasError(f"--sampler {args.sampler!r}: give one of {', '.join(SAMPLERS)}.")
    box = tuple(args.box)
    if not (box[0] < box[1] and box[2] < box[3]):
        raise SplineAtlasError(f"--box {list(box)}: give ZMIN1 < ZMAX1 and ZMIN2 < ZMAX2.")
    run = open_run(args.path, trust_code=args.trust_code)
    index = run.exact_index(args.epoch) if args.epoch is not None else len(run) - 1
    net = run.network(index, at_level=False)
    tiles = manifold_tiles(net, box, args.max_regions)
    Z, which = sample_latent(tiles, args.n, args.sampler, args.rho, args.seed)
    X = generate(tiles, Z, which)
    write_npz(args.out, Z=Z, X=X, tile=which, volume=tiles.volume[which], sampler=args.sampler, rho=float(args.rho), box=np.array(box))
    label = _sampler_label(args.sampler, args.rho)
    if args.figure:
        from app.render.generator_figure import render_generator_figure
        from app.render.slice_figure import save_figure

        grid = None
        if run.output_shape is not None:
            from app.jobs.manifold3d import image_grid

            grid = image_grid(net, box, run.output_shape, args.grid)
        drawn = {label: (X, which, output_density(tiles, which, args.sampler, args.rho))}
        for other in SAMPLERS:  # the other samplers' densities beside it, same n and seed
            name = _sampler_label(other, args.rho)
            if name not in drawn:
                Zo, wo = sample_latent(tiles, args.n, other, args.rho, args.seed + 1)
                drawn[name] = (generate(tiles, Zo, wo), wo, output_density(tiles, wo, other, args.rho))
        save_figure(render_generator_figure(tiles, drawn, f"{run.name}, epoch {run.epochs[index]}: {label} samples", grid=grid), args.figure)
        print(f"wrote {args.figure}")
    v = tiles.volume
    print(
        f"{run.name}, epoch {run.epochs[index]}: {tiles.tess.num_regions} latent tiles, volume change {v.min():.3g}..{v.max():.3g}, "
        f"manifold area {tiles.output_area.sum():.4g}; {len(Z)} {label} samples in {len(np.unique(which))} tiles; wrote {args.out}"
    )
    return 0
