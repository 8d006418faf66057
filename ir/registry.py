"""The op registry: every op is defined once, here, by name.

An ``OpDef`` holds an op's arity, its attribute schema and its type/shape inference.
Other phases (the NumPy reference, VJP rules, backend lowerings) are tables keyed by
the same names; tests walk this registry to find ops a phase forgot.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import dtypes as dt
from .errors import AttributeError_, DTypeError, GraphError, ShapeError
from .symbolic import Dim
from .types import TensorType

REQUIRED = object()  # sentinel default: the attribute must be given

ATTR_KINDS = ("int", "ints", "float", "bool", "str", "dtype", "array", "optional_int")

InferFn = Callable[[list[TensorType], dict[str, Any]], list[TensorType]]


@dataclass(frozen=True)
class AttrSpec:
    kind: str
    default: Any = REQUIRED
    choices: tuple[str, ...] | None = None  # for kind "str"


@dataclass(frozen=True)
class OpDef:
    name: str
    infer: InferFn
    num_inputs: int | tuple[int, int | None]  # exact count, or (min, max or None)
    attrs: Mapping[str, AttrSpec] = field(default_factory=dict)
    # The one classification of ops, read by fusion, simplify and roofline (see CATEGORIES).
    category: str = "elementwise"
    doc: str = ""

    def check_arity(self, n: int) -> None:
        if isinstance(self.num_inputs, int):
            ok, want = n == self.num_inputs, str(self.num_inputs)
        else:
            lo, hi = self.num_inputs
            ok = n >= lo and (hi is None or n <= hi)
            want = f"at least {lo}" if hi is None else f"{lo} to {hi}"
        if not ok:
            raise GraphError(f"{self.name}: expects {want} inputs, got {n}")

    def normalize_attrs(self, attrs: Mapping[str, Any]) -> dict[str, Any]:
        """Check attributes against the schema, fill defaults, canonicalize values."""
        unknown = set(attrs) - set(self.attrs)
        if unknown:
            raise AttributeError_(f"{self.name}: unknown attribute(s) {sorted(unknown)}")
        out: dict[str, Any] = {}
        for name, spec in self.attrs.items():
            if name in attrs:
                out[name] = _coerce_attr(self.name, name, spec, attrs[name])
            elif spec.default is REQUIRED:
                raise AttributeError_(f"{self.name}: missing required attribute {name!r}")
            else:
                out[name] = spec.default
        return out

    def infer_types(self, types: list[TensorType], attrs: dict[str, Any]) -> list[TensorType]:
        self.check_arity(len(types))
        return self.infer(types, attrs)


def _coerce_attr(op: str, name: str, spec: AttrSpec, v: Any) -> Any:
    def bad(expected: str) -> AttributeError_:
        return AttributeError_(f"{op}: attribute {name!r} must be {expected}, got {v!r}")

    def is_int(x: Any) -> bool:
        return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))

    k = spec.kind
    if k == "int":
        if not is_int(v):
            raise bad("an int")
        return int(v)
    if k == "optional_int":
        if v is None:
            return None
        if not is_int(v):
            raise bad("an int or null")
        return int(v)
    if k == "ints":  # (a shape may hold the symbolic batch size, ir/symbolic.py)
        if not isinstance(v, (tuple, list)) or not all(is_int(x) or type(x) is Dim for x in v):
            raise bad("a list of ints")
        return tuple(x if type(x) is Dim else int(x) for x in v)
    if k == "float":
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.number)):
            raise bad("a number")
        return float(v)
    if k == "bool":
        if not isinstance(v, (bool, np.bool_)):
            raise bad("a bool")
        return bool(v)
    if k == "str":
        if not isinstance(v, str) or (spec.choices is not None and v not in spec.choices):
            raise bad(f"one of {list(spec.choices)}" if spec.choices else "a string")
        return v
    if k == "dtype":
        if v is None:
            raise bad("a dtype")
        try:
            return dt.dtype(v) if not isinstance(v, str) else dt.from_name(v)
        except DTypeError as e:
            raise bad("a dtype") from e
    if k == "array":
        if not isinstance(v, np.ndarray):
            raise bad("a NumPy array")
        dt.dtype(v.dtype)  # supported dtype or DTypeError
        return v
    raise AssertionError(f"unknown attribute kind {k}")


# elementwise: each output element needs the same element of each (broadcast) input;
# movement: a few input elements at computed indices; reduction; contraction: tiled kernels
# (matmul, convolutions, pooling); scatter: outputs written at data-dependent places;
# source: no data inputs (constants, random numbers).
CATEGORIES = ("elementwise", "movement", "reduction", "contraction", "scatter", "source")

_REGISTRY: dict[str, OpDef] = {}


def register_op(opdef: OpDef) -> OpDef:
    if opdef.name in _REGISTRY:
        raise AssertionError(f"op {opdef.name!r} registered twice")
    for spec in opdef.attrs.values():
        assert spec.kind in ATTR_KINDS, spec
    assert opdef.category in CATEGORIES, opdef
    _REGISTRY[opdef.name] = opdef
    return opdef


def get_op(name: str) -> OpDef:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise GraphError(f"unknown op {name!r}") from None


def has_op(name: str) -> bool:
    return name in _REGISTRY


def all_ops() -> dict[str, OpDef]:
    return dict(_REGISTRY)


# ---- helpers shared by the inference functions -------------------------------------


def broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether ``shape`` broadcasts to ``target`` itself (unidirectionally, as NumPy's
    broadcast_to: the result keeps ``target``'s shape)."""
    try:
        return broadcast_shapes(tuple(shape), tuple(target)) == tuple(target)
    except ShapeError:
        return False


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """NumPy / ONNX multidirectional broadcasting; raises ShapeError."""
    rank = max((len(s) for s in shapes), default=0)
    out = []
    for i in range(rank):
        dims = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0}
        dims.discard(1)
        if len(dims) > 1:
            raise ShapeError(
                f"shapes {' and '.join(str(tuple(s)) for s in shapes)} do not broadcast"
            )
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def normalize_axis(axis: int, rank: int) -> int:
    """Map a possibly negative axis into [0, rank); a 0-d tensor has no axes."""
    if not -rank <= axis < rank:
        raise ShapeError(f"axis {axis} is out of range for rank {rank}")
    return axis % rank


def require_same_dtype(types: list[TensorType]) -> dt.DType:
    d = types[0].dtype
    if any(t.dtype != d for t in types):
        raise DTypeError("operands must share one dtype")
    return d


def require_kind(t: TensorType, kinds: str, what: str = "operand") -> None:
    """kinds: 'float', 'numeric', 'int', 'bool' or 'any'."""
    ok = {
        "float": t.dtype.is_float,
        "numeric": t.dtype.is_numeric,
        "int": t.dtype.is_int,
        "bool": t.dtype.is_bool,
        "any": True,
    }[kinds]
    if not ok:
        raise DTypeError(f"{what} must be {kinds}, got {t.dtype}")
