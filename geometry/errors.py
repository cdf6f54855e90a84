"""One exception type per kind of bad input, all under :class:`SplineAtlasError`.

Every error carries a one-line message that says what is wrong and what to do;
the CLI prints ``str(error)`` and exits non-zero, the app shows it in a dialog.
"""

from __future__ import annotations


class SplineAtlasError(Exception):
    """Base class: a problem with the user's input, explained in one line."""

    exit_code = 2


class InputFileError(SplineAtlasError):
    """A file is missing, empty, truncated or not of the expected format."""


class UnsafePickleError(SplineAtlasError):
    """A checkpoint needs full unpickling, which can execute arbitrary code."""


class ArchitectureError(SplineAtlasError):
    """An architecture spec is invalid, or weights do not match it."""


class NonFiniteWeightsError(SplineAtlasError):
    """A checkpoint holds NaN or Inf values."""


class NotPiecewiseAffineError(SplineAtlasError):
    """An exact-geometry tool was asked for on a network with a smooth layer."""


class RunError(SplineAtlasError):
    """A run is inconsistent: gaps, mixed architectures, bad manifest."""


class DatasetError(SplineAtlasError):
    """A dataset is missing, malformed or does not fit the network."""


class BudgetExceededError(SplineAtlasError):
    """A computation would exceed its memory/size budget."""


class CancelledError(SplineAtlasError):
    """Long work was cancelled by the user."""
