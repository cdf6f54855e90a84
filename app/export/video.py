"""Videos: MP4 (H.264 through imageio-ffmpeg's bundled ffmpeg, no system ffmpeg) and GIF (Pillow).

:func:`write_video` takes a frame count and a ``frame(i) -> (H, W, 3) uint8`` function, writes to a
temporary file beside the target and renames it only when every frame is written, so a cancelled or
failed export never leaves a partial file. :mod:`app.export.sweeps` builds the frame functions
(epoch sweep, layer sweep, path animation) on the figure renderers of :mod:`app.render`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable

import numpy as np

from geometry.errors import CancelledError, SplineAtlasError
from geometry.safe_io import atomic_output

Progress = Callable[[float, str], None] | None
Cancel = Callable[[], bool] | None

VIDEO_FORMATS = (".mp4", ".gif")


def check_video_size(width: int, height: int, suffix: str) -> None:
    """H.264 with yuv420p (what players accept) needs even sizes; every format needs >= 16 px."""
    if width < 16 or height < 16 or width > 8192 or height > 8192:
        raise SplineAtlasError(f"video size {width}x{height} is out of range (16..8192 pixels).")
    if suffix == ".mp4" and (width % 2 or height % 2):
        raise SplineAtlasError(f"MP4 (H.264) needs an even width and height; got {width}x{height}.")


def write_video(
    path: str | Path, n_frames: int, frame: Callable[[int], np.ndarray], fps: float = 8.0, progress: Progress = None, cancel: Cancel = None, quality: int = 8
) -> Path:
    """Write ``n_frames`` frames ``frame(i)`` ((H, W, 3) uint8, all the same size) to ``path`` (.mp4/.gif).

    fps: frames per second; quality: H.264 quality 0..10 (imageio's scale). Raises CancelledError when
    ``cancel()`` becomes true (the temporary file is deleted), SplineAtlasError on bad arguments.
    """
    import imageio.v2 as imageio

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in VIDEO_FORMATS:
        raise SplineAtlasError(f"video format {suffix or '(none)'} is not supported; use .mp4 or .gif.")
    if n_frames < 1:
        raise SplineAtlasError("a video needs at least one frame.")
    if not 0.1 <= fps <= 120:
        raise SplineAtlasError(f"frame rate {fps} is out of range (0.1..120 fps).")
    with atomic_output(path) as tmp:
        writer = None
        try:
            size = None
            for i in range(n_frames):
                if cancel is not None and cancel():
                    raise CancelledError(f"video export cancelled at frame {i + 1}/{n_frames}; nothing was written.")
                img = np.ascontiguousarray(frame(i), dtype=np.uint8)
                if img.ndim != 3 or img.shape[2] != 3:
                    raise SplineAtlasError(f"frame {i} has shape {img.shape}; expected (H, W, 3).")
                if size is None:
                    size = img.shape[:2]
                    check_video_size(size[1], size[0], suffix)
                    if suffix == ".mp4":
                        writer = imageio.get_writer(
                            str(tmp),
                            format="FFMPEG",
                            mode="I",
                            fps=fps,
                            codec="libx264",
                            quality=quality,
                            pixelformat="yuv420p",
                            macro_block_size=1,
                            ffmpeg_log_level="error",
                        )
                    else:
                        writer = imageio.get_writer(str(tmp), format="GIF", mode="I", duration=1000.0 / fps, loop=0)
                elif img.shape[:2] != size:
                    raise SplineAtlasError(f"frame {i} is {img.shape[1]}x{img.shape[0]}, the first was {size[1]}x{size[0]}.")
                writer.append_data(img)
                if progress is not None:
                    progress((i + 1) / n_frames, f"frame {i + 1}/{n_frames}")
        except BaseException:
            if writer is not None:  # stop ffmpeg before the temporary is removed
                with contextlib.suppress(Exception):
                    writer.close()
            raise
        writer.close()
    return path


def read_video(path: str | Path) -> list[np.ndarray]:
    """All frames of an MP4/GIF as (H, W, 3) uint8 arrays (for tests and previews)."""
    import imageio.v2 as imageio

    path = Path(path)
    fmt = "FFMPEG" if path.suffix.lower() == ".mp4" else "GIF"
    reader = imageio.get_reader(str(path), format=fmt)
    try:
        return [np.asarray(f)[..., :3] for f in reader]
    finally:
        reader.close()


__all__ = ["VIDEO_FORMATS", "check_video_size", "read_video", "write_video"]
