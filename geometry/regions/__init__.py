"""Region toolbox in the full input space (Liu et al. "Integrating geometries of ReLU feedforward
neural networks"; Sattelberg et al. "Locally linear attributes of ReLU neural networks").

Patterns, H-representations (eq. 5), active bits (eq. 6, exact and fast), neighbours, Chebyshev
centres (LP 8), boundary distances, minimal in-region decision-changing perturbations (QP), traversal
enumeration (Algorithm 1), whole-plane bounded/unbounded counts of a 2D slice, exact line walks (and their bisection, Algorithm 2), region statistics
and the dual space of region affine maps. LPs: HiGHS (highspy, scipy for one-off LPs); QPs: CLARABEL (called directly, cvxpy fallback).
"""

from geometry.regions.affine import (
    HRep,
    RegionMaps,
    boundary_distance,
    check_supported,
    hamming,
    hrep_at,
    hreps_from_patterns,
    layer_offsets,
    pairwise_hamming,
    patterns_of,
    region_maps,
)
from geometry.regions.dual import DualMapping, DualMotion, GridDual, cluster_accuracy, dual_over_epochs, dual_points, grid_dual, map_between
from geometry.regions.linewalk import Bisection, LineWalk, bisection_walk, line_walk
from geometry.regions.lp import ActiveBits, Chebyshev, Neighbours, active_bits, as_box, chebyshev, neighbours
from geometry.regions.qp import RegionPerturbation, min_region_perturbation
from geometry.regions.stats import (
    REGION_SETS,
    PairDistances,
    RegionReport,
    RegionStats,
    data_box,
    describe_region,
    hamming_at_distance,
    nearest_neighbour_agreement,
    pair_distances,
    region_stats,
    sample_region_sets,
    walk_counts,
)
from geometry.regions.traversal import Enumeration, enumerate_regions
from geometry.regions.plane import PlaneCount, count_plane_regions, recession_network

__all__ = [
    "PlaneCount",
    "count_plane_regions",
    "recession_network",
    "HRep",
    "RegionMaps",
    "boundary_distance",
    "check_supported",
    "hamming",
    "hrep_at",
    "hreps_from_patterns",
    "layer_offsets",
    "pairwise_hamming",
    "patterns_of",
    "region_maps",
    "DualMapping",
    "DualMotion",
    "GridDual",
    "cluster_accuracy",
    "dual_over_epochs",
    "dual_points",
    "grid_dual",
    "map_between",
    "Bisection",
    "LineWalk",
    "bisection_walk",
    "line_walk",
    "ActiveBits",
    "Chebyshev",
    "Neighbours",
    "active_bits",
    "as_box",
    "chebyshev",
    "neighbours",
    "RegionPerturbation",
    "min_region_perturbation",
    "PairDistances",
    "pair_distances",
    "RegionReport",
    "RegionStats",
    "describe_region",
    "hamming_at_distance",
    "nearest_neighbour_agreement",
    "region_stats",
    "walk_counts",
    "REGION_SETS",
    "data_box",
    "sample_region_sets",
    "Enumeration",
    "enumerate_regions",
]
