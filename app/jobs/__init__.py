"""Qt-free engine calls that every face runs: the window (in worker threads, with ``progress(fraction,
message)`` and ``cancel() -> bool``), the CLI commands and the exports. One concern per module:

bundle       open a run for viewing (``RunBundle``)
slicing      the one slice vocabulary: choose, spell, build and frame 2D/3D slices
tessellate   exact tessellations of a window, cached
inspect      the preview class map, the inspector's point report, the region box and region geometry
paths        the one path tracer (leaf, region, segment) and its step rule
region_stats the Regions tab's statistics
scene3d      what the 3D tab draws

The names below are the ones the window and the CLI use; import the modules for the rest.
"""

from .bundle import Cancel, Progress, RunBundle, check_cancel, open_run_bundle
from .inspect import ClassMap, PointReport, class_map, inspect_point, pattern_hash, region_box, region_geometry
from .paths import PathResult, PathTrace, compute_path, compute_paths, trace_paths
from .region_stats import REGION_SETS, RegionStatsResult, region_stat_sets, region_stats
from .slicing import default_slice_choice, format_slice_choice, make_slice, parse_slice_choice, square_window
from .tessellate import budget_note, cached_region_counts, slope_norm_of, tessellate_all, tessellate_every_epoch, tessellation_key

__all__ = [
    "REGION_SETS",
    "Cancel",
    "ClassMap",
    "PathResult",
    "PathTrace",
    "PointReport",
    "Progress",
    "RegionStatsResult",
    "RunBundle",
    "budget_note",
    "cached_region_counts",
    "check_cancel",
    "class_map",
    "compute_path",
    "compute_paths",
    "default_slice_choice",
    "format_slice_choice",
    "inspect_point",
    "make_slice",
    "open_run_bundle",
    "parse_slice_choice",
    "pattern_hash",
    "region_box",
    "region_geometry",
    "region_stat_sets",
    "region_stats",
    "square_window",
    "slope_norm_of",
    "tessellate_all",
    "tessellate_every_epoch",
    "tessellation_key",
    "trace_paths",
]
