"""ONNX's narrow integer types (int8, int16, uint8, uint16, uint32), computed exactly in a
wider *container* dtype nncompile has: int32 for the 8- and 16-bit types, int64 for
uint32. Every converted value of a narrow type is wrapped back into the type's range
(ONNX integer arithmetic wraps), so +, -, *, negation, shifts, bitwise ops, sums and
casts between integer types give exactly ONNX's values; division, comparisons, min/max
and movement ops are exact on the container as they are. Known (folded) arrays keep
their real dtype; graph inputs are widened on entry and eager results come back in the
container dtype (``to_onnx_dtypes`` casts them back, exactly)."""

from __future__ import annotations

from typing import Any

import numpy as np

import nncompile as nc

from ..errors import DTypeError

CONTAINERS: dict[np.dtype, np.dtype] = {
    np.dtype(np.int8): np.dtype(np.int32),
    np.dtype(np.int16): np.dtype(np.int32),
    np.dtype(np.uint8): np.dtype(np.int32),
    np.dtype(np.uint16): np.dtype(np.int32),
    np.dtype(np.uint32): np.dtype(np.int64),
}

# ops whose integer results are always within their inputs' range (they move, select or
# compare values): no wrap is needed after them
RANGE_PRESERVING = frozenset(
    {
        "Identity",
        "Reshape",
        "Flatten",
        "Squeeze",
        "Unsqueeze",
        "Transpose",
        "Concat",
        "Split",
        "Slice",
        "Gather",
        "GatherElements",
        "GatherND",
        "Expand",
        "Tile",
        "Where",
        "Max",
        "Min",
        "ReduceMax",
        "ReduceMin",
        "MaxPool",
        "TopK",
        "Clip",
    }
)


def is_narrow(dtype: Any) -> bool:
    return dtype is not None and np.dtype(dtype) in CONTAINERS


def container_of(dtype: Any) -> np.dtype:
    """The dtype a value of ONNX dtype ``dtype`` is computed in."""
    d = np.dtype(dtype)
    return CONTAINERS.get(d, d)


def widen(a: np.ndarray) -> np.ndarray:
    """A known narrow array in its container dtype (exact)."""
    return a.astype(CONTAINERS[a.dtype]) if a.dtype in CONTAINERS else a


def in_range(a: np.ndarray, narrow: np.dtype) -> bool:
    info = np.iinfo(narrow)
    return a.size == 0 or bool(a.min() >= info.min and a.max() <= info.max)


def wrap(x: Any, narrow: np.dtype) -> Any:
    """Container value ``x`` reduced to ``narrow``'s range modulo 2**bits (ONNX's wrapping
    integer arithmetic), with nc's bitwise ops so it traces and compiles."""
    narrow = np.dtype(narrow)
    bits = 8 * narrow.itemsize
    container = container_of(narrow)
    mask = np.asarray((1 << bits) - 1, container)
    if narrow.kind == "u":
        return nc.bitwise_and(x, mask)
    half = np.asarray(1 << (bits - 1), container)
    return nc.subtract(nc.bitwise_and(nc.add(x, half), mask), half)


def wrap_array(a: np.ndarray, narrow: np.dtype) -> np.ndarray:
    """A known container array as an array of ``narrow`` (its value modulo 2**bits)."""
    return np.asarray(a).astype(np.int64).astype(narrow)


def to_onnx_dtypes(outputs: Any, f: Any) -> tuple[np.ndarray, ...]:
    """The outputs of ``f`` (an ``OnnxFunction``, eager or compiled: one value or a
    tuple) as NumPy arrays, those of a narrow ONNX type cast back from their container
    dtype to it (exact: they hold wrapped values). Other outputs keep their dtype."""
    outs = outputs if isinstance(outputs, tuple) else (outputs,)
    dtypes = f.output_dtypes
    if len(outs) != len(dtypes):
        raise DTypeError(f"to_onnx_dtypes: {len(outs)} outputs given, the model has {len(dtypes)}")
    result = []
    for out, want in zip(outs, dtypes, strict=True):
        a = np.asarray(out.numpy() if hasattr(out, "numpy") else out)
        if is_narrow(want) and a.dtype == container_of(want):
            a = a.astype(want)
        result.append(a)
    return tuple(result)


def to_containers(*inputs: Any) -> tuple[Any, ...]:
    """Inputs for a compiled ``OnnxFunction``: narrow NumPy arrays widened to their
    container dtype (nc.compile traces only the dtypes nncompile computes in); anything
    else unchanged."""
    return tuple(
        widen(np.asarray(v)) if isinstance(v, (np.ndarray, np.generic)) else v for v in inputs
    )


def value_dtypes(model: Any) -> dict[str, np.dtype]:
    """ONNX's element type of every value it can infer (graph inputs, outputs, node
    outputs, initializers, at any subgraph depth), as NumPy dtypes. Shape inference is
    lenient; where it fails the model's own declarations are used."""
    import onnx

    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:  # noqa: BLE001  (inference rejects some valid models: declared types only)
        inferred = model
    found: dict[str, np.dtype] = {}
    _collect(inferred.graph, found, onnx)
    return found


def _collect(graph: Any, found: dict[str, np.dtype], onnx: Any) -> None:
    for t in graph.initializer:
        _add(found, t.name, t.data_type, onnx)
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        if vi.type.HasField("tensor_type"):
            _add(found, vi.name, vi.type.tensor_type.elem_type, onnx)
    for node in graph.node:
        for a in node.attribute:
            for g in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                _collect(g, found, onnx)


def _add(found: dict[str, np.dtype], name: str, elem_type: int, onnx: Any) -> None:
    if not elem_type:
        return
    try:
        found.setdefault(name, np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)))
    except (KeyError, TypeError, ValueError):
        pass
