"""Figure and video export: sizes, frame counts, one vector polygon per region, frames equal the figure
renderer's picture, no partial file on cancel or error, the headless CLI."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest
import torch

from geometry.networks.datasets import builtin_dataset
from geometry.errors import CancelledError, SplineAtlasError
from geometry.networks.spec import mlp_spec
from geometry.networks.training import train_run

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A 2-12-12-3 spirals run with 3 checkpoints and a 64-10-10 digits run (image data), both tiny."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("runs")
    sp = builtin_dataset("spirals", n=150, seed=0, arms=3)
    train_run(sp, mlp_spec([2, 12, 12, 3]), root / "spirals", epochs=6, save_epochs=[0, 2, 6], lr=1e-2, batch_size=32, seed=0)
    dg = builtin_dataset("digits", seed=0)
    train_run(dg, mlp_spec([64, 10, 10]), root / "digits", epochs=2, save_epochs=[2], lr=1e-2, batch_size=128, seed=0)
    from app import jobs

    b = jobs.open_run_bundle(root / "spirals")
    sl, win = jobs.make_slice(b, jobs.default_slice_choice(b))
    return {"root": root, "bundle": b, "slice": sl, "window": win}


def _scene(tiny, epoch_index=-1, depth=None):
    from app.render.slice_figure import build_slice_scene

    return build_slice_scene(tiny["bundle"], epoch_index, tiny["slice"], tiny["window"], depth)


def test_png_has_requested_pixel_size(tiny, tmp_path):
    from app.render.slice_figure import FigureOptions, export_slice_figure

    sc = _scene(tiny)
    for w, h, dpi in ((640, 480, 100), (501, 377, 150)):
        out = export_slice_figure(sc, tmp_path / f"f{w}.png", FigureOptions(mode="slope", width=w, height=h, dpi=dpi))
        img = imageio.imread(out)
        assert img.shape[:2] == (h, w)
        assert img[..., :3].std() > 10  # not blank


@pytest.mark.parametrize("mode,depth", [("class", None), ("hash", 1), ("layer", 2), ("slope", 1)])
def test_svg_has_one_polygon_per_region(tiny, tmp_path, mode, depth):
    from app.render.slice_figure import FigureOptions, export_slice_figure

    sc = _scene(tiny, depth=depth)
    out = export_slice_figure(sc, tmp_path / "f.svg", FigureOptions(mode=mode, width=600, height=500, dpi=100))
    root = ET.parse(out).getroot()
    groups = {g.get("id"): g for g in root.iter(f"{SVG}g") if g.get("id")}
    tiles = groups["tiles"]
    n_paths = len(list(tiles.iter(f"{SVG}path")))
    expected = sc.full.num_regions if mode == "slope" else sc.current.num_regions  # slope lives on full-depth tiles
    assert n_paths == expected
    assert "decision-boundary" in groups and len(sc.full.boundary_segments) > 0
    text = out.read_text()
    assert "x₁" in text and "x₂" in text  # axis labels as text
    if mode == "slope":
        assert "spectral norm" in text  # colour bar label


def test_pdf_has_requested_physical_size(tiny, tmp_path):
    from app.render.slice_figure import FigureOptions, export_slice_figure

    out = export_slice_figure(_scene(tiny), tmp_path / "f.pdf", FigureOptions(width=720, height=540, dpi=120))
    data = out.read_bytes()
    assert data.startswith(b"%PDF")
    box = [float(v) for v in re.search(rb"/MediaBox \[\s*([\d.\s]+)\]", data).group(1).split()]
    assert abs(box[2] - 720 / 120 * 72) < 0.5 and abs(box[3] - 540 / 120 * 72) < 0.5


def test_epoch_video_frames_equal_the_figure_of_each_epoch(tiny, tmp_path):
    from app.export.sweeps import epoch_sweep_frames, export_video
    from app.export.video import read_video
    from app.render.slice_figure import FigureOptions, figure_to_rgb, render_slice

    opt = FigureOptions(width=480, height=400, dpi=80)
    n, frame = epoch_sweep_frames(tiny["bundle"], tiny["slice"], tiny["window"], options=opt)
    assert n == 3
    out = export_video(tmp_path / "e.mp4", (n, frame), fps=5)
    frames = read_video(out)
    assert len(frames) == 3 and frames[0].shape == (400, 480, 3)
    for k in (0, 2):
        direct = figure_to_rgb(render_slice(_scene(tiny, k), opt))  # what File > Export draws for epoch k
        assert np.array_equal(frame(k), direct)
        assert np.abs(frames[k].astype(float) - direct).mean() < 4.0  # H.264 is lossy, but close
    assert np.abs(frames[0].astype(float) - frames[2]).mean() > 1.0  # the epochs differ


def test_layer_sweep_gif_frames_and_timing(tiny, tmp_path):
    from PIL import Image

    from app.export.sweeps import export_video, layer_sweep_frames
    from app.render.slice_figure import FigureOptions

    frames = layer_sweep_frames(tiny["bundle"], -1, tiny["slice"], tiny["window"], FigureOptions(mode="layer", width=320, height=300, dpi=60))
    out = export_video(tmp_path / "l.gif", frames, fps=2)
    im = Image.open(out)
    assert im.n_frames == tiny["bundle"].depth == 2
    assert im.size == (320, 300)
    assert im.info["duration"] == 500


def test_path_animation_with_images(tiny, tmp_path):
    from app import jobs
    from app.export.sweeps import export_video, path_animation_frames, trace_path
    from app.export.video import read_video
    from app.render.slice_figure import FigureOptions

    b = jobs.open_run_bundle(tiny["root"] / "digits")
    sl, win = jobs.make_slice(b, jobs.default_slice_choice(b))
    X, _ = b.points()
    from app.jobs.paths import SEGMENT_SAMPLES

    pd = trace_path(b, -1, "segment", X[0], X[1])  # the window's segment: SEGMENT_SAMPLES forward passes
    assert pd.points.shape == (SEGMENT_SAMPLES, 64) and np.allclose(pd.probs.sum(1), 1)
    n, frame = path_animation_frames(b, -1, sl, win, pd, n_frames=6, options=FigureOptions(width=640, height=400, dpi=80))
    out = export_video(tmp_path / "p.mp4", (n, frame), fps=6)
    fr = read_video(out)
    assert len(fr) == 6 and fr[0].shape == (400, 640, 3)
    a, z = frame(0), frame(5)
    assert np.abs(a.astype(float) - z).mean() > 0.05  # the point, image and bars moved
    assert np.array_equal(frame(0), a)  # blitting is repeatable


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_no_partial_file_on_cancel_or_error(tmp_path):
    from app.export.video import write_video

    calls = {"n": 0}

    def frame(i):
        return np.full((32, 48, 3), 10 * i, np.uint8)

    def cancel():
        calls["n"] += 1
        return calls["n"] > 2

    for suffix in (".mp4", ".gif"):
        with pytest.raises(CancelledError):
            write_video(tmp_path / f"v{suffix}", 10, frame, cancel=cancel)
        calls["n"] = 0
    assert _files(tmp_path) == []

    def bad(i):
        if i == 3:
            raise RuntimeError("boom")
        return frame(i)

    (tmp_path / "old.mp4").write_bytes(b"previous export")
    with pytest.raises(RuntimeError):
        write_video(tmp_path / "old.mp4", 6, bad)
    assert _files(tmp_path) == ["old.mp4"] and (tmp_path / "old.mp4").read_bytes() == b"previous export"
    with pytest.raises(SplineAtlasError, match="even"):
        write_video(tmp_path / "odd.mp4", 2, lambda i: np.zeros((33, 48, 3), np.uint8))
    with pytest.raises(SplineAtlasError, match="same size|was"):
        write_video(tmp_path / "mix.gif", 2, lambda i: np.zeros((32 + 2 * i, 48, 3), np.uint8))
    assert _files(tmp_path) == ["old.mp4"]


def test_figure_export_error_leaves_nothing(tiny, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from app.render.slice_figure import FigureOptions, export_slice_figure

    def boom(self, *a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", boom)
    with pytest.raises(OSError):
        export_slice_figure(_scene(tiny), tmp_path / "x.png", FigureOptions(width=200, height=200, dpi=50))
    assert _files(tmp_path) == []
    with pytest.raises(SplineAtlasError):
        FigureOptions(mode="rainbow").check()


def test_cli_export_figure_and_video(tiny, tmp_path, capsys):
    from app.cli.main import main

    run = str(tiny["root"] / "spirals")
    assert (
        main(
            ["export-figure", run, "--epoch", "2", "--layer", "1", "--color", "hash", "--size", "500", "400", "--dpi", "100", "--out", str(tmp_path / "a.png")]
        )
        == 0
    )
    assert imageio.imread(tmp_path / "a.png").shape[:2] == (400, 500)
    assert (
        main(
            ["export-video", run, "--sweep", "epochs", "--epochs", "0:6", "--size", "320", "240", "--dpi", "60", "--fps", "3", "--out", str(tmp_path / "e.gif")]
        )
        == 0
    )
    assert len(imageio.mimread(tmp_path / "e.gif")) == 3
    assert (
        main(
            [
                "export-video",
                run,
                "--sweep",
                "path",
                "--path-kind",
                "segment",
                "--from",
                "0",
                "--to",
                "3",
                "--frames",
                "4",
                "--size",
                "480",
                "320",
                "--dpi",
                "60",
                "--out",
                str(tmp_path / "p.mp4"),
            ]
        )
        == 0
    )
    assert imageio.get_reader(tmp_path / "p.mp4").count_frames() == 4
    assert main(["export-figure", run, "--out", str(tmp_path / "a.bmp")]) == 2
    assert main(["export-figure", run, "--slice", "points:1,2", "--out", str(tmp_path / "b.png")]) == 2
    err = capsys.readouterr().err
    assert "png" in err and "exactly 3 training indices" in err
    assert _files(tmp_path) == ["a.png", "e.gif", "p.mp4"]


def test_epoch_ranges_of_the_video_sweep(tiny, tmp_path, capsys):
    """--epochs A:B every checkpoint in A..B; A:B:STEP the checkpoints nearest to A, A+STEP, ..., B (the
    tiny run holds epochs 0, 2, 6); a range with no checkpoint is one line."""
    from app.cli.main import main

    run = str(tiny["root"] / "spirals")
    for spec, frames in (("0:6:6", 2), ("1:6", 2), ("0:6:3", 3)):
        out = tmp_path / f"{spec.replace(':', '_')}.gif"
        assert main(["export-video", run, "--sweep", "epochs", "--epochs", spec, "--size", "200", "160", "--out", str(out)]) == 0
        assert len(imageio.mimread(out)) == frames, spec
    assert main(["export-video", run, "--sweep", "epochs", "--epochs", "10:20", "--out", str(tmp_path / "x.gif")]) == 2
    assert "no checkpoint between epochs 10 and 20" in capsys.readouterr().err
    assert main(["export-video", run, "--sweep", "epochs", "--epochs", "0:6:0", "--out", str(tmp_path / "x.gif")]) == 2
    assert not (tmp_path / "x.gif").exists()


def test_3d_turntable_video(tmp_path):
    """Needs OpenGL (pytest-xvfb or a display): frames of the requested size, and the view turns."""
    import os

    if not os.environ.get("DISPLAY"):
        pytest.skip("no display: the 3D turntable needs OpenGL (run under Xvfb)")
    pytest.importorskip("vispy")
    from app.qt.view3d import opengl_available

    ok, why = opengl_available()
    if not ok:
        pytest.skip(f"no OpenGL: {why}")
    torch.manual_seed(0)
    ds = builtin_dataset("digits", seed=0)
    train_run(ds, mlp_spec([64, 6, 6, 10]), tmp_path / "r", epochs=1, save_epochs=[1], lr=1e-2, batch_size=256, seed=0)
    from app import jobs
    from app.export.sweeps import export_video
    from app.export.video import read_video
    from app.qt.turntable import turntable_frames

    b = jobs.open_run_bundle(tmp_path / "r")
    try:
        n, frame = turntable_frames(b, size=(320, 240), n_frames=4)
    except SplineAtlasError as exc:
        if "OpenGL" in str(exc):
            pytest.skip(str(exc))
        raise
    out = export_video(tmp_path / "t.mp4", (n, frame), fps=4)
    fr = read_video(out)
    assert len(fr) == 4 and fr[0].shape == (240, 320, 3)
    assert np.abs(fr[0].astype(float) - fr[1]).mean() > 1.0


def test_path_figure_png_and_svg(tiny, tmp_path):
    from app import jobs
    from app.export.sweeps import trace_path
    from app.render.path_figure import render_path_figure
    from app.render.slice_figure import FigureOptions, build_slice_scene, save_figure

    b = jobs.open_run_bundle(tiny["root"] / "digits")
    sl, win = jobs.make_slice(b, jobs.default_slice_choice(b))
    X, _ = b.points()
    pd = trace_path(b, -1, "segment", X[0], X[1])
    scene = build_slice_scene(b, -1, sl, win)
    opt = FigureOptions(width=900, height=600, dpi=100)
    fig = render_path_figure(scene, sl, pd.points, pd.probs, pd.label, b.class_names, b.image_shape, n_images=5, options=opt)
    assert len(fig.axes) == 2 + 5  # slice, probabilities, 5 images
    png = save_figure(fig, tmp_path / "p.png", 100)
    assert imageio.imread(png).shape[:2] == (600, 900)
    svg = save_figure(fig, tmp_path / "p.svg", 100)
    root = ET.parse(svg).getroot()
    assert any(g.get("id") == "path" for g in root.iter(f"{SVG}g"))
    assert len(list(next(g for g in root.iter(f"{SVG}g") if g.get("id") == "tiles").iter(f"{SVG}path"))) == scene.full.num_regions


def _titles_inside(fig) -> list[str]:
    """The titles of ``fig`` (after drawing) that run past its left or right edge."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    texts = [ax.title for ax in fig.axes] + ([fig._suptitle] if fig._suptitle is not None else [])
    width = fig.bbox.width
    return [t.get_text() for t in texts if t.get_text() and not (-1 <= t.get_window_extent(r).x0 and t.get_window_extent(r).x1 <= width + 1)]


def test_titles_fit_small_path_figures_and_frames(tiny):
    """At 480x360 the slice's long title (run · epoch · layers · regions) used to run off the left edge of
    the path figure and of the path video's frames; it now breaks into lines that fit."""
    from app import jobs
    from app.export.sweeps import path_animation_frames, trace_path
    from app.render.path_figure import render_path_figure
    from app.render.slice_figure import FigureOptions, build_slice_scene

    b = jobs.open_run_bundle(tiny["root"] / "digits")
    sl, win = jobs.make_slice(b, jobs.default_slice_choice(b))
    X, _ = b.points()
    pd = trace_path(b, -1, "segment", X[0], X[1])
    scene = build_slice_scene(b, -1, sl, win)
    scene = replace(scene, title=scene.title + " · a very long run name for a small frame")
    from app.render.style import fit_dpi

    opt = FigureOptions(width=480, height=360, dpi=fit_dpi(480, 360))  # the CLI's and the dialog's default dpi
    for mode in ("class", "slope"):
        fig = render_path_figure(scene, sl, pd.points, pd.probs, pd.label, b.class_names, b.image_shape, n_images=4, options=replace(opt, mode=mode))
        assert _titles_inside(fig) == []
    _, frame = path_animation_frames(b, -1, sl, win, pd, n_frames=2, options=opt)
    frame(0)
    assert frame.figure is not None and _titles_inside(frame.figure) == []
