"""Typed schemas (pydantic) for every JSON document Spline Atlas reads: architecture specs, run
manifests and dataset references. Session files have theirs in ``app.model.session``.

The models check types (no strings for ints, no bools for numbers), ranges and allowed keys, and
:func:`validate_document` turns pydantic's report into one line naming the file, the field and the
fix. The validated documents stay plain dicts: the rest of the code reads them as before.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError

from geometry.errors import SplineAtlasError
from geometry.safe_io import printable

MAX_WIDTH = 100_000_000  # any one size (features, channels)
MAX_CLASSES = 100_000
MAX_SAMPLES = 10_000_000  # generated dataset size
MAX_CHECKPOINTS = 100_000
MAX_NAME = 200


def _finite(v: float) -> float:
    if not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


def _printable_text(v: str) -> str:
    if printable(v, 10_000) != v:
        raise ValueError("must not contain control characters")
    return v


PosInt = Annotated[StrictInt, Field(ge=1, le=MAX_WIDTH)]
NonNegInt = Annotated[StrictInt, Field(ge=0, le=MAX_WIDTH)]
Finite = Annotated[StrictFloat, AfterValidator(_finite)]
Text = Annotated[StrictStr, Field(max_length=MAX_NAME), AfterValidator(_printable_text)]
Pair = Union[PosInt, tuple[PosInt, PosInt]]
NonNegPair = Union[NonNegInt, tuple[NonNegInt, NonNegInt]]
One = Union[PosInt, tuple[PosInt]]
NonNegOne = Union[NonNegInt, tuple[NonNegInt]]


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Linear(_Entry):
    type: Literal["linear"]
    in_features: PosInt
    out_features: PosInt
    bias: StrictBool = True


class _Conv(_Entry):
    """What every convolution entry has; the subclasses add the type and their spatial settings."""

    in_channels: PosInt
    out_channels: PosInt
    groups: PosInt = 1
    bias: StrictBool = True


class Conv2d(_Conv):
    type: Literal["conv2d"]
    kernel_size: Pair
    stride: Pair = 1
    padding: NonNegPair = 0
    dilation: Pair = 1


class Conv1d(_Conv):
    type: Literal["conv1d"]
    kernel_size: One
    stride: One = 1
    padding: NonNegOne = 0
    dilation: One = 1


class ConvTranspose2d(_Conv):
    type: Literal["conv_transpose2d"]
    kernel_size: Pair
    stride: Pair = 1
    padding: NonNegPair = 0
    output_padding: NonNegPair = 0
    dilation: Pair = 1


class ZeroPad2d(_Entry):
    type: Literal["zeropad2d"]
    padding: tuple[NonNegInt, NonNegInt, NonNegInt, NonNegInt]


class Scale(_Entry):
    type: Literal["scale"]
    factor: Annotated[Finite, Field(ge=-1e12, le=1e12)]


class BatchNorm(_Entry):
    type: Literal["batchnorm1d", "batchnorm2d"]
    num_features: PosInt
    eps: Annotated[Finite, Field(gt=0, le=1)] = 1e-5
    affine: StrictBool = True


class MaxPool(_Entry):
    type: Literal["maxpool2d"]
    kernel_size: Pair
    stride: Pair | None = None
    padding: NonNegPair = 0
    dilation: Pair = 1
    ceil_mode: StrictBool = False


class AvgPool(_Entry):
    type: Literal["avgpool2d"]
    kernel_size: Pair
    stride: Pair | None = None
    padding: NonNegPair = 0
    ceil_mode: StrictBool = False
    count_include_pad: StrictBool = True


class AdaptivePool(_Entry):
    type: Literal["adaptive_avgpool2d"]
    output_size: Pair


class LeakyReLU(_Entry):
    type: Literal["leaky_relu"]
    negative_slope: Annotated[Finite, Field(ge=-1e6, le=1e6)] = 0.01


class Plain(_Entry):
    type: Literal["flatten", "identity", "relu", "abs", "gelu", "sigmoid", "tanh", "softplus", "elu", "silu", "softmax", "log_softmax"]


class Residual(_Entry):
    type: Literal["residual"]
    body: Annotated[list[Layer], Field(min_length=1, max_length=10_000)]
    shortcut: Annotated[list[Layer], Field(min_length=1, max_length=10_000)] | None = None


class Concat(_Entry):
    type: Literal["concat"]
    branches: Annotated[list[Annotated[list[Layer], Field(max_length=10_000)]], Field(min_length=2, max_length=1_000)]


Layer = Annotated[
    Union[Linear, Conv1d, Conv2d, ConvTranspose2d, ZeroPad2d, Scale, BatchNorm, MaxPool, AvgPool, AdaptivePool, LeakyReLU, Plain, Residual, Concat],
    Field(discriminator="type"),
]
Residual.model_rebuild()
Concat.model_rebuild()


class ArchitectureSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: Literal["splineatlas-arch/1"] = "splineatlas-arch/1"
    name: Text | None = None
    input_shape: Annotated[list[PosInt], Field(min_length=1, max_length=4)]
    layers: Annotated[list[Layer], Field(min_length=1, max_length=10_000)]
    num_classes: Annotated[StrictInt, Field(ge=1, le=MAX_CLASSES)] | None = None
    output_dim: Annotated[StrictInt, Field(ge=1, le=MAX_WIDTH)] | None = None
    dropped_output_transform: Literal["softmax", "log_softmax"] | None = None


class BuiltinDataset(BaseModel):
    model_config = ConfigDict(extra="forbid")
    builtin: Literal["moons", "circles", "spirals", "star", "digits", "paraboloid"]
    n: Annotated[StrictInt, Field(ge=1, le=MAX_SAMPLES)] = 1000
    seed: Annotated[StrictInt, Field(ge=0, le=2**32 - 1)] = 0
    test_fraction: Annotated[Finite, Field(ge=0, lt=1)] = 0.2
    noise: Annotated[Finite, Field(ge=0, le=100)] | None = None
    arms: Annotated[StrictInt, Field(ge=1, le=1000)] | None = None
    turns: Annotated[Finite, Field(gt=0, le=100)] | None = None
    points: Annotated[StrictInt, Field(ge=1, le=1000)] | None = None
    factor: Annotated[Finite, Field(gt=0, lt=1)] | None = None


class NpzDataset(BaseModel):
    model_config = ConfigDict(extra="forbid")
    npz: Annotated[StrictStr, Field(min_length=1, max_length=4096)]
    seed: Annotated[StrictInt, Field(ge=0, le=2**32 - 1)] = 0
    test_fraction: Annotated[Finite, Field(ge=0, lt=1)] = 0.2


DatasetRef = Union[BuiltinDataset, NpzDataset]


class CheckpointEntry(BaseModel):
    model_config = ConfigDict(extra="allow")  # recorded metrics (train_accuracy, loss, ...)
    path: Annotated[StrictStr, Field(min_length=1, max_length=4096)]
    epoch: Annotated[StrictInt, Field(ge=0, le=10**15)] | None = None
    step: Annotated[StrictInt, Field(ge=0, le=10**15)] | None = None


MAX_CHANNELS = 1 << 20  # per-feature statistics of a table may be long


class PreprocessingSpec(BaseModel):
    """Resize [H, W] then (x - mean) / std per channel: geometry.networks.preprocessing."""

    model_config = ConfigDict(extra="forbid")
    mean: Annotated[list[Finite], Field(min_length=1, max_length=MAX_CHANNELS)] | None = None
    std: Annotated[list[Annotated[Finite, Field(gt=0)]], Field(min_length=1, max_length=MAX_CHANNELS)] | None = None
    resize: Annotated[list[Annotated[StrictInt, Field(ge=1, le=4096)]], Field(min_length=2, max_length=2)] | None = None


class RunManifest(BaseModel):
    model_config = ConfigDict(extra="allow")  # e.g. "training": the recorded hyper-parameters
    format: Literal["splineatlas-run/1"] = "splineatlas-run/1"
    name: Text | None = None
    architecture: Annotated[StrictStr, Field(min_length=1, max_length=4096)] | dict | None = None
    checkpoints: Annotated[list[CheckpointEntry], Field(max_length=MAX_CHECKPOINTS)]
    dataset: DatasetRef | None = None
    class_names: Annotated[list[Text], Field(max_length=MAX_CLASSES)] | None = None
    task: Literal["classify", "regress", "generate"] = "classify"
    latent_dim: Annotated[StrictInt, Field(ge=1, le=3)] | None = None  # a generator's latent inputs
    # a generator whose outputs are images: [channels, height, width] of each output vector
    output_shape: Annotated[list[Annotated[StrictInt, Field(ge=1, le=4096)]], Field(min_length=3, max_length=3)] | None = None
    preprocessing: PreprocessingSpec | None = None


# Parts of pydantic's error locations that name a union member or a type, not a field: layer type tags,
# model names, and bare type names (anything else that is not a plain identifier is a type descriptor).
_LAYER_TYPES = frozenset(t for m in Layer.__origin__.__args__ for t in m.model_fields["type"].annotation.__args__)
_UNION_TAGS = _LAYER_TYPES | {"str", "int", "float", "bool"} | {BuiltinDataset.__name__, NpzDataset.__name__}


def _where(loc: tuple) -> str:
    """A pydantic error location as the field a user would write: ``layers[0].in_features``."""
    parts = []
    for i, p in enumerate(loc):
        if isinstance(p, int):
            parts.append(f"[{p}]")
        elif str(p).isidentifier() and (p not in _UNION_TAGS or i == len(loc) - 1):  # a tag is never the last part
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or "(top level)"


def validate_document(model: type[BaseModel], data: object, what: str, error: type[SplineAtlasError], hint: str = "README: 'Opening networks'") -> BaseModel:
    """``model`` validated from ``data``; any problem is one ``error`` naming ``what``, the field and the fix."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field = _where(tuple(first.get("loc", ())))
        msg = first.get("msg", "is invalid")
        got = first.get("input")
        shown = "" if isinstance(got, (dict, list)) else f" (got {printable(repr(got), 40)})"
        more = len(exc.errors()) - 1
        tail = f"; {more} more problem{'s' if more > 1 else ''}" if more > 0 else ""
        raise error(f"{what}: field {printable(field, 100)}: {printable(msg, 140)}{shown}{tail}; fix that field ({hint}).") from None
    except RecursionError:
        raise error(f"{what} is nested too deeply.") from None
