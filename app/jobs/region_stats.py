"""The Regions tab's statistics, Qt-free: the same sampling and box as ``splineatlas region-stats``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geometry.errors import SplineAtlasError

from .bundle import Cancel, Progress, RunBundle, check_cancel
from .inspect import region_box

REGION_SETS = ("train", "test", "adversarial")  # geometry.regions.REGION_SETS; importing it here would load cvxpy


@dataclass(frozen=True)
class RegionStatsResult:
    """What the Regions tab shows: ``stats`` (geometry.regions.RegionStats) for the points of ``sets`` at
    checkpoint ``epoch_index`` (epoch ``epoch``); ``n`` points per set; ``box`` the Chebyshev LP's box;
    ``active``: whether active bits were computed (else their count is -1)."""

    stats: object
    epoch_index: int
    epoch: int
    sets: tuple[str, ...]
    n: int
    box: tuple
    active: bool
    seed: int


def region_stat_sets(
    bundle: RunBundle, epoch_index: int, n: int, sets=REGION_SETS, seed: int = 0, overshoot: float = 0.02, cancel: Cancel = None
) -> tuple[dict[str, np.ndarray], tuple]:
    """The point sets and box of ``splineatlas region-stats`` (same sampling and box, so the numbers agree):
    ``n`` random train and test points (fixed ``seed``; test drawn first), DeepFool(test) with ``overshoot``
    for "adversarial"; box = value range of the training data and all set points, 10% margin."""
    ds = bundle.dataset
    if ds is None:
        raise SplineAtlasError("region statistics need the run's dataset; this run names none.")
    from geometry.regions import sample_region_sets

    out = sample_region_sets(bundle.network(epoch_index), ds, sets, n, seed=seed, overshoot=overshoot, cancel=cancel)
    return out, region_box(bundle, list(out.values()))


def region_stats(
    bundle: RunBundle,
    epoch_index: int,
    n: int,
    sets=REGION_SETS,
    active: bool = True,
    seed: int = 0,
    overshoot: float = 0.02,
    progress: Progress = None,
    cancel: Cancel = None,
) -> RegionStatsResult:
    """Chebyshev radius, active-bit count and boundary distance of the regions of train / test /
    DeepFool-adversarial points at one checkpoint (``geometry.regions.region_stats``; see
    :func:`region_stat_sets`). Active bits cost hundreds of LPs per point on image inputs."""
    from geometry.regions import check_supported
    from geometry.regions import region_stats as engine_region_stats

    net = bundle.network(epoch_index)
    check_supported(net)
    if progress:
        progress(0.0, "sampling the points" + (" and running DeepFool" if "adversarial" in sets else ""))
    point_sets, box = region_stat_sets(bundle, epoch_index, n, sets, seed, overshoot, cancel)
    check_cancel(cancel, "region statistics")
    inner = None if progress is None else (lambda f, m: progress(0.05 + 0.95 * f, m))
    st = engine_region_stats(net, point_sets, box, active=active, progress=inner, cancel=cancel)
    i = epoch_index % len(bundle.run)
    return RegionStatsResult(st, i, int(bundle.epochs[i]), tuple(point_sets), int(n), box, bool(active), int(seed))
