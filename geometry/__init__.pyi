"""Type-checker view of :mod:`geometry`: the lazily imported public names and where they live."""

from geometry.errors import (
    SplineAtlasError as SplineAtlasError,
    InputFileError as InputFileError,
    UnsafePickleError as UnsafePickleError,
    ArchitectureError as ArchitectureError,
    NonFiniteWeightsError as NonFiniteWeightsError,
    NotPiecewiseAffineError as NotPiecewiseAffineError,
    RunError as RunError,
    DatasetError as DatasetError,
    BudgetExceededError as BudgetExceededError,
    CancelledError as CancelledError,
)
from geometry.networks.network import (
    Network as Network,
    ForwardTrace as ForwardTrace,
    LayerInfo as LayerInfo,
)
from geometry.networks.spec import (
    mlp_spec as mlp_spec,
    digits_cnn_spec as digits_cnn_spec,
    validate_spec as validate_spec,
    spec_from_module as spec_from_module,
    load_spec_file as load_spec_file,
)
from geometry.networks.checkpoints import (
    load_checkpoint as load_checkpoint,
    save_checkpoint as save_checkpoint,
    read_checkpoint as read_checkpoint,
)
from geometry.networks.runs import (
    Run as Run,
    open_run as open_run,
)
from geometry.networks.datasets import (
    Dataset as Dataset,
    builtin_dataset as builtin_dataset,
    load_npz as load_npz,
)
from geometry.slices import (
    Slice as Slice,
    box_domain as box_domain,
)
from geometry.networks.device import (
    resolve_device as resolve_device,
)
from geometry.networks.training import (
    train_run as train_run,
    accuracy as accuracy,
)
from geometry.tessellation import (
    tessellate as tessellate,
    tessellate_all_depths as tessellate_all_depths,
    Tessellation2D as Tessellation2D,
    Tessellation3D as Tessellation3D,
)
from geometry.power_diagram import (
    centroids as centroids,
    boundary_distances as boundary_distances,
    slice_power_diagram as slice_power_diagram,
    layer_affine as layer_affine,
)
from geometry.boundary.deepfool import (
    deepfool as deepfool,
    DeepFoolResult as DeepFoolResult,
)
from geometry.boundary.cross_sections import (
    cross_sections as cross_sections,
)
from geometry.boundary.boundary_angles import (
    boundary_angles as boundary_angles,
)
from geometry.boundary.curvature import (
    principal_curvatures as principal_curvatures,
)
from geometry.boundary.detection import (
    detect_perturbed as detect_perturbed,
    calibrate_threshold as calibrate_threshold,
    detection_rates as detection_rates,
)
from geometry.foliation.local_data_matrix import (
    local_data_matrix as local_data_matrix,
    log_prob_jacobian as log_prob_jacobian,
)
from geometry.foliation.leaf_paths import (
    horizontal_paths as horizontal_paths,
    normal_paths as normal_paths,
    LeafPaths as LeafPaths,
)
from geometry.boundary.region_paths import (
    find_region_path as find_region_path,
    convex_combination_probability as convex_combination_probability,
)
from geometry.local_complexity import (
    local_complexity as local_complexity,
    square_region_counts as square_region_counts,
)
from geometry.dynamics import (
    run_dynamics as run_dynamics,
)

__all__: list[str]
