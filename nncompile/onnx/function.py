"""``OnnxFunction``: an imported model as a function of its graph inputs, pure in its
parameters (the float initializers), so nc.compile, nc.grad and the optimizers treat it
like any nc function."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, DTypeError, SerializationError, ShapeError
from ..tensor import Tensor, as_tensor
from ..tracing import trace, trace_stack
from .dependency import require_onnx
from .errors import UnsupportedError
from .executor import GraphRunner, ResultTooLarge
from .folding import NOT_FOLDED, has_subgraph
from .model_file import (
    check_declarations,
    default_opset,
    node_name,
    ordered_nodes,
    read_model,
)
from .narrow import container_of, in_range, is_narrow, value_dtypes, widen, wrap
from .registry import CONVERTERS
from .tensors import COMPUTE_DTYPES, numpy_dtype, tensor_to_array

PARAM_DTYPES = (np.float32, np.float64)


@dataclass(frozen=True)
class InputSpec:
    """A graph input: name, shape (ints; a str for a named dynamic size, None for an
    unnamed one) and ONNX dtype (a narrow integer type such as uint8 is passed as that
    dtype or as its container, int32 or int64: see nncompile/onnx/narrow.py)."""

    name: str
    shape: tuple[int | str | None, ...] | None
    dtype: np.dtype


class OnnxFunction:
    """``f(*inputs, **by_name)`` runs the model (eagerly on NumPy, or recorded when
    traced); ``f.apply(params, ...)`` does the same with other parameter values.

    Narrow integer types (int8, int16, uint8, uint16, uint32) are computed exactly in a
    container dtype (int32; int64 for uint32): inputs may be given in either, and results
    of those types come back as nc Tensors in the container dtype, holding the exact
    values. ``f.output_dtypes`` are ONNX's dtypes of the outputs;
    ``nc.onnx.to_onnx_dtypes(outputs, f)`` casts results back to them. A compiled ``f``
    takes container arrays (``nc.onnx.to_containers(*inputs)`` widens NumPy ones)."""

    def __init__(self, source: Any):
        onnx = require_onnx()
        self.model, size = read_model(source)
        graph = self.model.graph
        self.opset = default_opset(self.model)
        if self.model.functions:
            names = [f.name for f in self.model.functions]
            raise UnsupportedError(f"model-local functions are not supported: {names[:5]}")
        if graph.sparse_initializer:
            raise UnsupportedError("sparse initializers are not supported")
        check_declarations(graph)
        arrays = {t.name: tensor_to_array(t, "initializer") for t in graph.initializer}
        self.input_specs = [_spec(vi, onnx) for vi in graph.input if vi.name not in arrays]
        self.input_names = [s.name for s in self.input_specs]
        self.output_names = [o.name for o in graph.output]
        dtypes = value_dtypes(self.model)
        self.output_dtypes: tuple[np.dtype | None, ...] = tuple(
            dtypes.get(n) for n in self.output_names
        )
        known = set(arrays) | set(self.input_names)
        order = ordered_nodes(graph, known)
        trained = _data_initializers(order, arrays)
        self.params: dict[str, np.ndarray] = {
            k: a for k, a in arrays.items() if k in trained and a.dtype in PARAM_DTYPES
        }
        self._constants = {k: a for k, a in arrays.items() if k not in self.params}
        _check_converters(order, set(self._constants), self.opset)
        # inputs that give sizes (a Reshape's shape, a trip count): known values per call
        integers = {s.name for s in self.input_specs if s.dtype.kind in "iub"}
        self.size_inputs = sorted(_size_inputs(order, set(self.input_names), integers))
        self._runner = GraphRunner(self.opset, size, dtypes)
        self._sized: set[tuple] = set()  # input signatures whose sizes were checked

    # -- calling --------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.apply(self.params, *args, **kwargs)

    def apply(self, params: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        """The model's outputs (one Tensor, or a tuple in graph order) for these
        parameter values and inputs (in order, or by input name)."""
        if not isinstance(params, dict):
            raise ConfigError(f"apply: params must be a dict, got {type(params).__name__}")
        if set(params) != set(self.params):
            missing = sorted(set(self.params) - set(params))
            extra = sorted(set(params) - set(self.params))
            raise ConfigError(
                f"apply: params must be a dict with the model's {len(self.params)} "
                f"initializer names; missing {missing[:5]}, unknown {extra[:5]}"
            )
        scope: dict[str, Any] = dict(self._constants)
        for name, value in params.items():
            t = as_tensor(value)
            want = self.params[name]
            if t.shape != want.shape or t.dtype != want.dtype:
                raise ShapeError(
                    f"apply: parameter {name!r} must be {want.dtype} {want.shape}, "
                    f"got {t.dtype} {t.shape}"
                )
            scope[name] = t
        bound = self._bind(args, kwargs)
        if not trace_stack():
            self._check_sizes(bound)
        scope.update(bound)
        outs = self._runner.run(self.model.graph, scope)
        outs = tuple(as_tensor(widen(o)) if isinstance(o, np.ndarray) else o for o in outs)
        return outs[0] if len(outs) == 1 else outs

    def _check_sizes(self, bound: dict[str, Tensor]) -> None:
        """Before an eager run allocates anything: trace the graph once per input
        signature (shapes only, on zero-stride inputs), so a node whose result cannot fit
        in memory (sizes from a hostile file) is refused first (ResultTooLarge)."""
        known = {k: v for k, v in bound.items() if isinstance(v, np.ndarray)}
        key = tuple((k, t.shape, str(t.dtype)) for k, t in bound.items() if k not in known)
        key += tuple((k, v.dtype.str, v.shape, v.tobytes()) for k, v in known.items())
        if key in self._sized:
            return
        names = [k for k in bound if k not in known]

        def shapes_only(*inputs: Tensor) -> tuple:
            scope: dict[str, Any] = dict(self._constants)
            scope.update((k, as_tensor(v)) for k, v in self.params.items())
            scope.update(known)
            scope.update(zip(names, inputs, strict=True))
            outs = self._runner.run(self.model.graph, scope)
            return tuple(as_tensor(o) for o in outs if o is not None)

        zeros = [np.broadcast_to(np.zeros((), bound[k].dtype), bound[k].shape) for k in names]
        try:
            trace(shapes_only, *zeros, name="onnx_sizes")
        except ResultTooLarge:
            raise
        except Exception:  # noqa: BLE001  (only sizes are checked here; the eager run
            pass  # that follows reports every other problem itself)
        self._sized.add(key)

    def _bind(self, args: tuple, kwargs: dict) -> dict[str, Tensor]:
        if len(args) > len(self.input_specs):
            raise ConfigError(
                f"the model takes {len(self.input_specs)} inputs {self.input_names}, "
                f"got {len(args)}"
            )
        given = dict(zip(self.input_names, args, strict=False))
        for name, value in kwargs.items():
            if name not in self.input_names:
                raise ConfigError(f"the model has no input {name!r}; inputs: {self.input_names}")
            if name in given:
                raise ConfigError(f"input {name!r} given twice")
            given[name] = value
        missing = [n for n in self.input_names if n not in given]
        if missing:
            raise ConfigError(f"missing model inputs {missing} (inputs: {self.input_names})")
        sizes: dict[str, int] = {}
        bound = {}
        for spec in self.input_specs:
            t = given[spec.name]
            if not isinstance(t, (Tensor, np.ndarray)):  # Python data takes the input's dtype
                try:
                    t = np.asarray(t, dtype=spec.dtype)
                except (TypeError, ValueError, OverflowError) as e:
                    raise DTypeError(
                        f"model input {spec.name!r}: a {type(t).__name__} is not {spec.dtype} "
                        f"data: {e}"
                    ) from None
            if spec.name in self.size_inputs and not (isinstance(t, Tensor) and t.is_traced):
                t = np.asarray(t.numpy() if isinstance(t, Tensor) else t)
                if is_narrow(spec.dtype):  # known values keep the ONNX dtype (folded)
                    t = _narrowed(spec, t)
                _check_input(spec, t, sizes, spec.dtype)
            elif is_narrow(spec.dtype):
                t = _widened(spec, t)
                _check_input(spec, t, sizes, container_of(spec.dtype))
            else:
                t = as_tensor(t)
                _check_input(spec, t, sizes, spec.dtype)
            bound[spec.name] = t
        return bound

    def __repr__(self) -> str:
        return (
            f"<OnnxFunction {self.model.graph.name or '(unnamed)'}: inputs {self.input_names}, "
            f"outputs {self.output_names}, {len(self.params)} parameters, opset {self.opset}>"
        )


def _spec(vi: Any, onnx: Any) -> InputSpec:
    tt = vi.type.tensor_type
    if not vi.type.HasField("tensor_type"):
        raise UnsupportedError(f"graph input {vi.name!r}: only tensor inputs are supported")
    dtype = numpy_dtype(tt.elem_type, f"graph input {vi.name!r}")
    if dtype not in COMPUTE_DTYPES and not is_narrow(dtype):
        raise UnsupportedError(
            f"graph input {vi.name!r}: dtype {dtype} is not supported (nncompile computes in "
            "float32, float64, int32, int64 and bool, and int8, int16, uint8, uint16, uint32 "
            "exactly in int32 or int64)"
        )
    shape = None
    if tt.HasField("shape"):
        shape = tuple(
            int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or None)
            for d in tt.shape.dim
        )
        if any(isinstance(d, int) and d < 0 for d in shape):
            raise SerializationError(f"graph input {vi.name!r}: negative dimension in {shape}")
    return InputSpec(vi.name, shape, dtype)


def _narrowed(spec: InputSpec, a: np.ndarray) -> np.ndarray:
    """A known value of a narrow-typed input as that type (given in it or its container)."""
    if a.dtype == container_of(spec.dtype):
        if not in_range(a, spec.dtype):
            raise DTypeError(f"model input {spec.name!r}: values out of the range of {spec.dtype}")
        return a.astype(spec.dtype)
    return a


def _widened(spec: InputSpec, t: Any) -> Tensor:
    """A narrow-typed input in its container dtype: widened from the type itself, checked
    when given as container values, wrapped when traced (its values are not known)."""
    if isinstance(t, (np.ndarray, np.generic)) and t.dtype == spec.dtype:
        return as_tensor(widen(np.asarray(t)))
    t = as_tensor(t)
    if t.dtype != container_of(spec.dtype):
        return t  # _check_input names the dtype wanted
    if t.is_traced:
        return wrap(t, spec.dtype)
    if not in_range(t.numpy(), spec.dtype):
        raise DTypeError(f"model input {spec.name!r}: values out of the range of {spec.dtype}")
    return t


def _check_input(spec: InputSpec, t: Any, sizes: dict[str, int], dtype: np.dtype) -> None:
    if t.dtype != dtype:
        want = f"{spec.dtype} (or {dtype})" if dtype != spec.dtype else f"{dtype}"
        raise DTypeError(f"model input {spec.name!r} must be {want}, got {t.dtype}")
    if spec.shape is None:
        return
    if len(t.shape) != len(spec.shape):
        raise ShapeError(f"model input {spec.name!r} has shape {_show(spec.shape)}, got {t.shape}")
    for want, got in zip(spec.shape, t.shape, strict=True):
        if isinstance(want, int) and want != got:
            raise ShapeError(
                f"model input {spec.name!r} has shape {_show(spec.shape)}, got {t.shape}"
            )
        if isinstance(want, str):
            if sizes.setdefault(want, got) != got:
                raise ShapeError(
                    f"model input {spec.name!r}: size {want!r} is {sizes[want]} in another "
                    f"input, got {got}"
                )


def _show(shape: tuple) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def _data_initializers(order: list[Any], arrays: dict[str, np.ndarray]) -> set[str]:
    """Initializers some node reads as data (not only at inputs its converter needs as
    constants, such as a Reshape's shape): these become parameters if float."""
    used = set()
    for node in order:
        conv = CONVERTERS.get(node.op_type)
        constant = conv.constant_inputs if conv else ()
        for i, name in enumerate(node.input):
            if name in arrays and i not in constant:
                used.add(name)
    return used


def _size_inputs(order: list[Any], inputs: set[str], integers: set[str]) -> set[str]:
    """Graph inputs whose values give sizes: read at an input a converter needs known (a
    Reshape's shape, a Loop's trip count, a Resize's scales), or, for integer and bool
    inputs, reaching one through nodes that must then fold. Float data that reaches one
    through computation stays data (it would make the whole graph fold on NumPy), and
    ``Shape`` and ``Size`` read only the static shape, so the search stops there."""
    direct: set[str] = set()
    for node in order:
        conv = CONVERTERS.get(node.op_type)
        for i in conv.constant_inputs if conv else ():
            if i < len(node.input) and node.input[i]:
                direct.add(node.input[i])
    needed = set(direct)
    for node in reversed(order):
        if node.op_type not in ("Shape", "Size") and any(o in needed for o in node.output):
            needed.update(i for i in node.input if i)
    return (direct & inputs) | (needed & integers)


def _check_converters(order: list[Any], constants: set[str], opset: int) -> None:
    """Every node that will not fold away (its inputs are not all constants, at any
    depth) needs a converter: refuse the model now rather than at the first call."""
    known = set(constants)
    for index, node in enumerate(order):
        if not has_subgraph(node) and node.op_type not in NOT_FOLDED:
            if all(not i or i in known for i in node.input):
                known.update(o for o in node.output if o)
                continue
        if node.op_type not in CONVERTERS:
            name = node_name(node, index)
            raise UnsupportedError(
                f"ONNX node {name!r}: op {node.op_type} (opset {opset}) is not supported",
                name,
                node.op_type,
                opset,
            )
