"""Benchmark of the 3D view: mesh building and frames per second for 10^3..10^5 faces.

    xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/python bench/render3d.py [--sizes 1000 10000 100000]
                                                                           [--frames 30] [--engine]

Scenes: a grid of n^3 box cells (6 faces each, every interior face twice, once per cell, as in an exact
tessellation) with the 3D view's defaults (translucent class-coloured faces, outlines, an opaque curved
"boundary" surface); with ``--engine`` (and the 3D engine present) also real tessellations of MLPs.
Columns: faces, triangles, scene build (mesh3d + colours, s), upload (s), frames per second while the
turntable camera rotates (on-screen draws, glFinish after each), and render() to an image (FBO + readback).
The naive approach in the same run: one vispy Mesh per cell (what a per-polyhedron implementation does)
and a per-face Python loop for the triangulation; only up to 10^4 faces (beyond that it is too slow).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geometry import mesh3d  # noqa: E402
from geometry.slices import Slice  # noqa: E402
from geometry.tessellation.types import LayerSummary, Tessellation3D  # noqa: E402


def grid_tessellation(n: int) -> Tessellation3D:
    """n^3 cubes tiling [-1, 1]^3 as a Tessellation3D (outward face loops), a 'class' by a curved surface."""
    g = np.linspace(-1, 1, n + 1)
    i, j, k = np.meshgrid(np.arange(n), np.arange(n), np.arange(n), indexing="ij")
    lo = np.stack([g[i.ravel()], g[j.ravel()], g[k.ravel()]], 1)
    h = 2.0 / n
    R = lo.shape[0]
    corner = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], float)
    V = (lo[:, None, :] + h * corner[None]).reshape(-1, 3)
    loops = np.array([[0, 3, 2, 1], [4, 5, 6, 7], [0, 1, 5, 4], [2, 3, 7, 6], [1, 2, 6, 5], [0, 4, 7, 3]])
    fi = (loops[None] + 8 * np.arange(R)[:, None, None]).reshape(-1)
    c = lo + h / 2
    f = c[:, 2] - 0.4 * np.sin(2.5 * c[:, 0]) * np.cos(2.0 * c[:, 1])
    cls = (f > 0).astype(np.int64)
    # a boundary polygon (square) per cell the surface crosses, at its centre height: a stepped "surface"
    cross = np.abs(f) < h
    rc = np.flatnonzero(cross)
    sq = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], float)
    bv = (
        np.concatenate([np.column_stack([lo[r, 0] + h * sq[:, 0], lo[r, 1] + h * sq[:, 1], np.full(4, c[r, 2] - f[r])]) for r in rc])
        if len(rc)
        else np.zeros((0, 3))
    )
    layer = np.tile(np.array([-1, 0, 1, 1, 0, 0]), R).astype(np.int16)
    return Tessellation3D(
        slice=Slice.input_plane(3),
        domain=np.array([-1.0, 1, -1, 1, -1, 1]),
        depth=2,
        layers=(LayerSummary(0, "relu", 8), LayerSummary(1, "relu", 8)),
        vertices=V,
        vertex_offsets=np.arange(R + 1, dtype=np.int64) * 8,
        face_indices=fi.astype(np.int64),
        face_offsets=np.arange(6 * R + 1, dtype=np.int64) * 4,
        cell_face_offsets=np.arange(R + 1, dtype=np.int64) * 6,
        face_layer=layer,
        codes=(np.zeros((R, 1), np.uint8), np.zeros((R, 1), np.uint8)),
        parent=np.arange(R),
        classes=cls,
        class_mixed=cross,
        slope_norm=np.abs(f),
        boundary_vertices=bv,
        boundary_offsets=np.arange(len(rc) + 1, dtype=np.int64) * 4,
        boundary_classes=np.tile([0, 1], (len(rc), 1)),
        boundary_region=rc.astype(np.int64),
        num_classes=2,
    )


def naive_triangulate(t) -> np.ndarray:
    out = []
    for f in range(t.face_offsets.shape[0] - 1):
        loop = t.face_indices[t.face_offsets[f] : t.face_offsets[f + 1]]
        for q in range(1, len(loop) - 1):
            out.append((loop[0], loop[q], loop[q + 1]))
    return np.array(out)


def fps(app, canvas, frames: int) -> float:
    cam = canvas.turntable
    canvas.canvas.update()
    app.processEvents()
    canvas.canvas.context.finish()
    t0 = time.perf_counter()
    for _ in range(frames):
        cam.azimuth = cam.azimuth + 3.0
        canvas.canvas.native.repaint()
        canvas.canvas.context.finish()
    return frames / (time.perf_counter() - t0)


def render_fps(canvas, frames: int) -> float:
    t0 = time.perf_counter()
    for _ in range(frames):
        canvas.turntable.azimuth = canvas.turntable.azimuth + 3.0
        canvas.render_image()
    return frames / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 100000])
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--size", type=int, nargs=2, default=(1000, 750))
    ap.add_argument("--engine", action="store_true", help="also real MLP tessellations (needs the 3D engine)")
    args = ap.parse_args()

    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([sys.argv[0]])
    if QGuiApplication.platformName() in ("offscreen", "minimal"):
        print("needs OpenGL: run under xvfb-run -a", file=sys.stderr)
        return 2
    from app.jobs import scene3d as jobs3d
    from app.render import palette
    from app.qt.view3d import Canvas3D
    from app.model.view3d import View3DSettings

    canvas = Canvas3D()
    canvas.resize(*args.size)
    canvas.show()
    app.processEvents()
    import vispy.gloo.gl as gl

    renderer = gl.glGetParameter(gl.GL_RENDERER)
    print(f"# renderer: {renderer}; window {args.size[0]}x{args.size[1]}; {args.frames} frames per size")
    print(f"{'scene':>22} {'faces':>8} {'triangles':>9} {'build s':>8} {'upload s':>8} {'fps':>7} {'render() fps':>12}")
    scenes = []
    for target in args.sizes:
        n = max(2, int(round((target / 6) ** (1 / 3))))
        scenes.append((f"grid {n}^3 cells", grid_tessellation(n)))
    if args.engine:
        import torch

        from geometry.networks.network import Network
        from geometry.networks.spec import mlp_spec
        from geometry.tessellation import tessellate_all_depths

        for widths in ([3, 16, 16, 3], [3, 32, 32, 3], [3, 64, 64, 3]):
            torch.manual_seed(0)
            net = Network(mlp_spec(widths)).eval()
            t0 = time.perf_counter()
            tb = tessellate_all_depths(net, Slice.input_plane(3), np.array([-1.0, 1, -1, 1, -1, 1]), max_regions=400_000)
            print(f"# engine {'-'.join(map(str, widths))}: {tb[-1].num_regions} cells in {time.perf_counter() - t0:.2f} s")
            scenes.append(("mlp " + "-".join(map(str, widths)), tb[-1]))
    settings = View3DSettings()
    for name, t in scenes:
        t0 = time.perf_counter()
        sc = jobs3d.scene_arrays([t], 1, "class", settings, t.domain)
        build = time.perf_counter() - t0
        canvas.set_box(t.domain)
        t0 = time.perf_counter()
        canvas.show_scene(sc)
        canvas.canvas.native.repaint()
        canvas.canvas.context.finish()
        upload = time.perf_counter() - t0
        f = fps(app, canvas, args.frames)
        r = render_fps(canvas, max(3, args.frames // 3))
        print(f"{name:>22} {sc.counts['faces_shown']:>8} {sc.counts['triangles']:>9} {build:>8.3f} {upload:>8.3f} {f:>7.1f} {r:>12.1f}", flush=True)

    # naive: one Mesh visual per cell and a Python-loop triangulation
    from vispy import scene as vscene

    print("# naive: one vispy Mesh per cell, per-face Python triangulation")
    print(f"{'scene':>22} {'faces':>8} {'cells':>8} {'loop tri s':>10} {'vect tri s':>10} {'build s':>8} {'fps':>7}")
    for name, t in scenes:
        F = t.face_offsets.shape[0] - 1
        if F > 12_000:
            print(f"{name:>22} {F:>8} {t.num_regions:>8}   (skipped: too slow)")
            continue
        t0 = time.perf_counter()
        naive_triangulate(t)
        loop_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        mesh3d.triangulate_faces(t.face_indices, t.face_offsets)
        vect_s = time.perf_counter() - t0
        canvas.set_faces(None, None, None)
        canvas.set_boundary(None, None)
        t0 = time.perf_counter()
        visuals = []
        cls = np.asarray(t.classes)
        for r in range(t.num_regions):
            v, faces = t.polyhedron(r)
            tris = np.array([(f[0], f[q], f[q + 1]) for f in faces for q in range(1, len(f) - 1)])
            m = vscene.visuals.Mesh(
                vertices=v.astype(np.float32),
                faces=tris.astype(np.uint32),
                color=tuple(palette.hex_rgba(palette.CLASS_COLORS[cls[r] % 12], 0.12)),
                parent=canvas.view.scene,
            )
            m.set_gl_state("translucent", depth_test=True, depth_mask=False, cull_face=False)
            visuals.append(m)
        canvas.canvas.native.repaint()
        canvas.canvas.context.finish()
        build = time.perf_counter() - t0
        f = fps(app, canvas, max(3, args.frames // 3))
        print(f"{name:>22} {F:>8} {t.num_regions:>8} {loop_s:>10.3f} {vect_s:>10.4f} {build:>8.2f} {f:>7.1f}", flush=True)
        for m in visuals:
            m.parent = None
    return 0


if __name__ == "__main__":
    sys.exit(main())
