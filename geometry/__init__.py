"""Spline Atlas engine: pure torch/numpy/scipy/cvxpy functions over networks, slices and runs (no Qt).

The public entry points are re-exported here and imported on first use, so ``import geometry`` stays
cheap: ``geometry.tessellate(network, slice_, domain)``, ``geometry.open_run(path)``, ... (``__init__.pyi``
names them for type checkers). Each lives in a module with one job, grouped in wings by domain:

  networks/      specs, schemas, the Network, checkpoints, runs, datasets, training, devices
  tessellation/  exact 2D/3D tessellations of slices and their meshes
  regions/       full-input-space region geometry (H-representations, LPs, QPs, traversal)
  boundary/      DeepFool, cross-sections, curvature, detection, boundary angles, region paths
  foliation/     the local data matrix and its leaf paths
  slices, power_diagram, local_complexity, dynamics, cache, safe_io, errors   (shared, at the top)
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "errors": [
        "SplineAtlasError",
        "InputFileError",
        "UnsafePickleError",
        "ArchitectureError",
        "NonFiniteWeightsError",
        "NotPiecewiseAffineError",
        "RunError",
        "DatasetError",
        "BudgetExceededError",
        "CancelledError",
    ],
    "networks.network": ["Network", "ForwardTrace", "LayerInfo"],
    "networks.spec": ["mlp_spec", "digits_cnn_spec", "validate_spec", "spec_from_module", "load_spec_file"],
    "networks.checkpoints": ["load_checkpoint", "save_checkpoint", "read_checkpoint"],
    "networks.runs": ["Run", "open_run"],
    "networks.datasets": ["Dataset", "builtin_dataset", "load_npz"],
    "slices": ["Slice", "box_domain"],
    "networks.device": ["resolve_device"],
    "networks.training": ["train_run", "accuracy"],
    "tessellation": ["tessellate", "tessellate_all_depths", "Tessellation2D", "Tessellation3D"],
    "power_diagram": ["centroids", "boundary_distances", "slice_power_diagram", "layer_affine"],
    "boundary.deepfool": ["deepfool", "DeepFoolResult"],
    "boundary.cross_sections": ["cross_sections"],
    "boundary.boundary_angles": ["boundary_angles"],
    "boundary.curvature": ["principal_curvatures"],
    "boundary.detection": ["detect_perturbed", "calibrate_threshold", "detection_rates"],
    "foliation.local_data_matrix": ["local_data_matrix", "log_prob_jacobian"],
    "foliation.leaf_paths": ["horizontal_paths", "normal_paths", "LeafPaths"],
    "boundary.region_paths": ["find_region_path", "convex_combination_probability"],
    "local_complexity": ["local_complexity", "square_region_counts"],
    "dynamics": ["run_dynamics"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'geometry' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"geometry.{_WHERE[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
