"""nc.Tensor: a concrete NumPy array (eager) or a value in a graph being traced."""

from __future__ import annotations

from typing import Any

import numpy as np

from .ir import dtypes as dt
from .ir.errors import DTypeError, TraceError
from .ir.graph import Value
from .ir.symbolic import Dim
from .ir.types import TensorType
from .source_location import user_location


class Tensor:
    """Eager tensors wrap an array and compute immediately; traced tensors stand for a
    graph value. The same operators and methods work on both."""

    __slots__ = ("_array", "_value", "_trace", "_type", "__weakref__")
    __array_priority__ = 1000

    def __init__(self, data: Any, dtype: Any = None):
        t = as_tensor(data, dtype)
        if t._trace is not None:
            raise TraceError("nc.Tensor(traced) is not needed: traced values are Tensors")
        self._array, self._value, self._trace, self._type = t._array, None, None, t._type

    @classmethod
    def _concrete(cls, array: np.ndarray) -> Tensor:
        t = object.__new__(cls)
        t._array, t._value, t._trace = array, None, None
        t._type = TensorType(array.shape, dt.dtype(array.dtype))
        return t

    @classmethod
    def _symbolic(cls, value: Value, trace: Any) -> Tensor:
        t = object.__new__(cls)
        t._array, t._value, t._trace, t._type = None, value, trace, value.type
        return t

    # ---- metadata ------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        return self._type.shape

    @property
    def dtype(self) -> np.dtype:
        return self._type.dtype.np

    @property
    def ndim(self) -> int:
        return self._type.rank

    @property
    def size(self) -> int:
        return self._type.size

    @property
    def is_traced(self) -> bool:
        return self._trace is not None

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    # ---- conversion to NumPy (eager only) ------------------------------------------------

    def _require_concrete(self, what: str) -> np.ndarray:
        if self._trace is not None:
            where = user_location()
            if not self._trace.active:
                message = (
                    f"{what} was called on a traced tensor {self._type} that escaped from a "
                    "finished trace (stored in a global or closure?); return it from the "
                    "traced function instead"
                )
            else:
                message = (
                    f"{what} needs the value of a traced tensor {self._type}, which is "
                    f"unknown while tracing: {_CONCRETE_HINTS.get(what, _ARRAY_HINT)}"
                )
            raise TraceError(message + (f"\n  at {where}" if where else ""))
        return self._array

    def numpy(self) -> np.ndarray:
        return self._require_concrete("numpy()")

    # NumPy functions and ufuncs on Tensors run their nc equivalents (numpy_interop.py)
    def __array_function__(self, func: Any, types: Any, args: tuple, kwargs: dict) -> Any:
        from .numpy_interop import array_function

        return array_function(func, args, kwargs)

    def __array_ufunc__(self, ufunc: np.ufunc, method: str, *inputs: Any, **kwargs: Any) -> Any:
        from .numpy_interop import array_ufunc

        return array_ufunc(ufunc, method, inputs, kwargs)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        a = self._require_concrete("np.asarray()")
        if dtype is not None and np.dtype(dtype) != a.dtype:
            return a.astype(dtype)
        return a.copy() if copy else a

    def item(self) -> Any:
        return self._require_concrete("item()").item()

    def tolist(self) -> Any:
        return self._require_concrete("tolist()").tolist()

    def __bool__(self) -> bool:
        return bool(self._require_concrete("bool()"))

    def __float__(self) -> float:
        return float(self._require_concrete("float()"))

    def __int__(self) -> int:
        return int(self._require_concrete("int()"))

    def __index__(self) -> int:
        a = self._require_concrete("index()")
        if a.dtype.kind not in "iu" or a.ndim:
            raise TypeError("only 0-d integer tensors can be used as an index")
        return int(a)

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        if self._trace is not None:
            return f"Tensor(traced %{self._value.name}: {self._type})"
        body = np.array2string(self._array, separator=", ", prefix="Tensor(")
        return f"Tensor({body}, dtype={self._type.dtype})"

    __hash__ = object.__hash__  # __eq__ is elementwise, as in NumPy

    # ---- operators -----------------------------------------------------------------------

    def __add__(self, o):
        return ops.add(self, o)

    def __radd__(self, o):
        return ops.add(o, self)

    def __sub__(self, o):
        return ops.subtract(self, o)

    def __rsub__(self, o):
        return ops.subtract(o, self)

    def __mul__(self, o):
        return ops.multiply(self, o)

    def __rmul__(self, o):
        return ops.multiply(o, self)

    def __truediv__(self, o):
        return ops.divide(self, o)

    def __rtruediv__(self, o):
        return ops.divide(o, self)

    def __matmul__(self, o):
        return ops.matmul(self, o)

    def __rmatmul__(self, o):
        return ops.matmul(o, self)

    def __pow__(self, o):
        return ops.power(self, o)

    def __rpow__(self, o):
        return ops.power(o, self)

    def __neg__(self):
        return ops.negative(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return ops.abs(self)

    # NumPy's meaning: logical on bools, bitwise on integers, an error on floats.
    def __invert__(self):
        return ops.bitwise_not(self)

    def __and__(self, o):
        return ops.bitwise_and(self, o)

    def __rand__(self, o):
        return ops.bitwise_and(o, self)

    def __or__(self, o):
        return ops.bitwise_or(self, o)

    def __ror__(self, o):
        return ops.bitwise_or(o, self)

    def __xor__(self, o):
        return ops.bitwise_xor(self, o)

    def __rxor__(self, o):
        return ops.bitwise_xor(o, self)

    def __eq__(self, o):
        return ops.equal(self, o)  # type: ignore[override]

    def __ne__(self, o):
        return ops.not_equal(self, o)  # type: ignore[override]

    def __lt__(self, o):
        return ops.less(self, o)

    def __le__(self, o):
        return ops.less_equal(self, o)

    def __gt__(self, o):
        return ops.greater(self, o)

    def __ge__(self, o):
        return ops.greater_equal(self, o)

    def __getitem__(self, index: Any) -> Tensor:
        from .indexing import getitem

        return getitem(self, index)

    # ---- methods -------------------------------------------------------------------------

    @property
    def T(self) -> Tensor:
        return ops.transpose(self)

    def reshape(self, *shape: Any) -> Tensor:
        return ops.reshape(
            self, shape[0] if len(shape) == 1 and not isinstance(shape[0], int) else shape
        )

    def transpose(self, *axes: Any) -> Tensor:
        if len(axes) == 1 and not isinstance(axes[0], int):
            axes = axes[0]
        return ops.transpose(self, axes or None)

    def flatten(self) -> Tensor:
        return ops.reshape(self, (-1,))

    def astype(self, dtype: Any) -> Tensor:
        return ops.astype(self, dtype)

    def sum(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return ops.sum(self, axis, keepdims)

    def mean(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return ops.mean(self, axis, keepdims)

    def max(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return ops.max(self, axis, keepdims)

    def min(self, axis: Any = None, keepdims: bool = False) -> Tensor:
        return ops.min(self, axis, keepdims)

    def argmax(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        return ops.argmax(self, axis, keepdims)

    def argmin(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        return ops.argmin(self, axis, keepdims)


_ARRAY_HINT = (
    "compute with nc ops (NumPy functions with an nc equivalent, such as np.sum, np.dot "
    "or np.concatenate, run it), or return the tensor from the traced function"
)
_NUMBER_HINT = "a Python number cannot hold it; keep computing with nc ops"
_CONCRETE_HINTS = {
    "bool()": "use nc.where instead of Python `if` on tensor values",
    "float()": _NUMBER_HINT,
    "int()": _NUMBER_HINT,
    "item()": _NUMBER_HINT,
    "index()": "use nc.take(x, indices) with the tensor as the indices",
}


def _default_dtype_for_python_data(a: np.ndarray) -> np.ndarray:
    # Python floats become float32, the default float of a DL framework (as in PyTorch);
    # NumPy arrays keep their dtype.
    return a.astype(np.float32) if a.dtype == np.float64 else a


def as_tensor(x: Any, dtype: Any = None) -> Tensor:
    """Tensor from a Tensor, a NumPy array or scalar, or Python data (lists, numbers)."""
    if isinstance(x, Tensor):
        return x if dtype is None else ops.astype(x, dtype)
    if isinstance(x, (np.ndarray, np.generic)):
        a = np.asarray(x)
    elif type(x) is Dim:  # a size that depends on the symbolic batch size
        return ops.batch_size(x, dt.int64 if dtype is None else dtype)
    else:
        try:
            a = np.asarray(x)
        except (ValueError, TypeError) as e:
            raise DTypeError(f"cannot make a tensor from {type(x).__name__}: {e}") from None
        if a.dtype == object:
            raise DTypeError(f"cannot make a tensor from {type(x).__name__} {x!r}")
        if dtype is None:
            a = _default_dtype_for_python_data(a)
    if dtype is not None:
        a = a.astype(dt.dtype(dtype).np)
    dt.dtype(a.dtype)  # raise DTypeError for unsupported dtypes (float16, uint8, ...)
    return Tensor._concrete(a)


from . import ops  # noqa: E402  (ops imports Tensor; bound here to break the cycle)
