"""Exact tessellation of 2D/3D slices of piecewise-affine networks (layer-wise subdivision).

Entry points (see :mod:`geometry.tessellation.engine`):
  ``tessellate(network, slice, domain=None, depth=None, device=None, ...) -> Tessellation2D | Tessellation3D``
  ``tessellate_all_depths(network, slice, domain=None, ...) -> list`` (one result per depth 1..L, one pass)
Result types: :class:`Tessellation2D`, :class:`Tessellation3D` (see :mod:`geometry.tessellation.types`).
"""

from geometry.tessellation.engine import (
    DEFAULT_MAX_REGIONS,
    default_max_regions,
    has_slope_norms,
    region_slope_norms,
    tessellate,
    tessellate_all_depths,
    with_slope_norms,
)
from geometry.tessellation.prepare import domain_box3, domain_polygon
from geometry.tessellation.export import tessellation_to_json
from geometry.tessellation.types import LayerCodes, LayerSummary, Tessellation, Tessellation2D, Tessellation3D, pack_pattern, unpack_code

__all__ = [
    "DEFAULT_MAX_REGIONS",
    "default_max_regions",
    "LayerCodes",
    "LayerSummary",
    "Tessellation",
    "Tessellation2D",
    "Tessellation3D",
    "domain_box3",
    "domain_polygon",
    "has_slope_norms",
    "pack_pattern",
    "region_slope_norms",
    "tessellate",
    "tessellate_all_depths",
    "tessellation_to_json",
    "unpack_code",
    "with_slope_norms",
]
