"""ONNX tensors as NumPy arrays, checked before anything is allocated: a declared shape
must match the data the file really holds, so a hostile file cannot make the importer
allocate more than its own size."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import SerializationError
from .dependency import require_onnx
from .errors import UnsupportedError

# dtypes nncompile computes in; others may appear in constants that are folded away
COMPUTE_DTYPES = (np.float32, np.float64, np.int32, np.int64, np.bool_)

# the typed repeated field each TensorProto data type stores its elements in (when the
# data is not in raw_data), and how many numbers one element takes there
_FIELDS = {
    "FLOAT": ("float_data", 1),
    "DOUBLE": ("double_data", 1),
    "INT64": ("int64_data", 1),
    "UINT64": ("uint64_data", 1),
    "UINT32": ("uint64_data", 1),
    "COMPLEX64": ("float_data", 2),
    "COMPLEX128": ("double_data", 2),
    "STRING": ("string_data", 1),
}


def numpy_dtype(elem_type: int, what: str) -> np.dtype:
    onnx = require_onnx()
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, TypeError, ValueError) as e:
        raise UnsupportedError(f"{what}: ONNX element type {elem_type} is not supported") from e


def tensor_to_array(t: Any, what: str) -> np.ndarray:
    """A TensorProto's value, after checking that its data holds exactly its shape."""
    onnx = require_onnx()
    name = f"{what} {t.name!r}" if t.name else what
    if t.data_location == onnx.TensorProto.EXTERNAL:
        raise UnsupportedError(
            f"{name}: data stored outside the model file; load the model from its path "
            "so onnx can read the external data"
        )
    dims = [int(d) for d in t.dims]
    if any(d < 0 for d in dims):
        raise SerializationError(f"{name}: negative dimension in shape {dims}")
    count = math.prod(dims)
    type_name = onnx.TensorProto.DataType.Name(t.data_type)
    if type_name in ("UNDEFINED", "STRING") or t.data_type == 0:
        raise UnsupportedError(f"{name}: {type_name.lower()} tensors are not supported")
    dtype = numpy_dtype(t.data_type, name)
    if t.HasField("raw_data") or (count and not _typed_count(t, type_name)):
        # 4-bit types pack two elements per byte
        bits = 4 if type_name in ("INT4", "UINT4", "FLOAT4E2M1") else 8 * dtype.itemsize
        want = (count * bits + 7) // 8
        if len(t.raw_data) != want:
            raise SerializationError(
                f"{name}: shape {dims} ({type_name.lower()}) needs {want} bytes of data, "
                f"the file holds {len(t.raw_data)}"
            )
    else:
        field, per = _FIELDS.get(type_name, ("int32_data", 1))
        have = len(getattr(t, field))
        if have != count * per:
            raise SerializationError(
                f"{name}: shape {dims} needs {count * per} values, the file holds {have}"
            )
    try:
        return np.asarray(onnx.numpy_helper.to_array(t))
    except Exception as e:  # noqa: BLE001  (onnx raises assorted types on bad tensors)
        raise SerializationError(f"{name}: cannot read the tensor: {e}") from e


def _typed_count(t: Any, type_name: str) -> int:
    field, _ = _FIELDS.get(type_name, ("int32_data", 1))
    return len(getattr(t, field))


def compute_array(a: np.ndarray, what: str) -> np.ndarray:
    """``a`` if nncompile computes in its dtype. Other dtypes (float16, uint8, ...) are
    unsupported rather than widened: widening would change overflow and rounding."""
    if a.dtype in COMPUTE_DTYPES:
        return a
    raise UnsupportedError(
        f"{what}: dtype {a.dtype} is not supported (nncompile computes in float32, "
        "float64, int32, int64 and bool)"
    )
