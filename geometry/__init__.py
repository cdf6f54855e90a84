"""Spline Atlas engine: pure torch/numpy/scipy/cvxpy functions over networks, slices and runs (no Qt).

The public entry points are re-exported here and imported on first use, so ``import geometry`` stays
cheap: ``geometry.tessellate(network, slice_, domain)``, ``geometry.open_run(path)``, ... Each lives
in a module with one job; see the README's "Python API" section for the map.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "errors": ["SplineAtlasError", "InputFileError", "UnsafePickleError", "ArchitectureError",
               "NonFiniteWeightsError", "NotPiecewiseAffineError", "RunError", "DatasetError",
               "BudgetExceededError", "CancelledError"],
    "network": ["Network", "ForwardTrace", "LayerInfo"],
    "spec": ["mlp_spec", "digits_cnn_spec", "validate_spec", "spec_from_module", "load_spec_file"],
    "checkpoints": ["load_checkpoint", "save_checkpoint", "read_checkpoint"],
    "runs": ["Run", "open_run"],
    "datasets": ["Dataset", "builtin_dataset", "load_npz"],
    "slices": ["Slice", "box_domain"],
    "device": ["resolve_device"],
    "training": ["train_run", "accuracy"],
    "tessellation": ["tessellate", "tessellate_all_depths", "Tessellation2D", "Tessellation3D"],
    "power_diagram": ["centroids", "boundary_distances", "slice_power_diagram", "layer_affine"],
    "deepfool": ["deepfool", "DeepFoolResult"],
    "cross_sections": ["cross_sections"],
    "boundary_angles": ["boundary_angles"],
    "curvature": ["principal_curvatures"],
    "detection": ["detect_perturbed", "calibrate_threshold", "detection_rates"],
    "local_data_matrix": ["local_data_matrix", "log_prob_jacobian"],
    "leaf_paths": ["horizontal_paths", "normal_paths", "LeafPaths"],
    "region_paths": ["find_region_path", "convex_combination_probability"],
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
