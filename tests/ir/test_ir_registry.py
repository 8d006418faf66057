"""Registry completeness: every op has a schema, shape inference and a NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
from nncompile.backends.numpy import REFERENCE, call_reference
from nncompile.ir import ALL_DTYPES, AttrSpec, TensorType, all_ops, get_op
from nncompile.ir import bool_ as B
from nncompile.ir import float32 as F
from nncompile.ir import int64 as I
from nncompile.ir.ops.elementwise import (
    ARITHMETIC_OPS,
    BITWISE_OPS,
    EQUALITY_OPS,
    LOGICAL_OPS,
    ORDER_OPS,
    UNARY_OPS,
)
from nncompile.ir.registry import ATTR_KINDS, CATEGORIES, REQUIRED
from nncompile.ir.symbolic import bound_batch

import nncompile as nc


def T(*shape, dtype=F):
    return TensorType(tuple(shape), dtype)


_UNARY_DTYPE = {"numeric": F, "float": F, "bool": B, "int": I}

# One valid call per op: (input types, attrs). A new op without an entry here fails
# test_every_op_has_an_example, so it cannot skip the checks below.
EXAMPLES: dict[str, tuple[list[TensorType], dict]] = {
    **{op: ([T(2, 3, dtype=_UNARY_DTYPE[k])], {}) for op, k in UNARY_OPS.items()},
    **{op: ([T(2, 3), T(3)], {}) for op in ARITHMETIC_OPS + EQUALITY_OPS + ORDER_OPS},
    **{op: ([T(2, 1, dtype=B), T(3, dtype=B)], {}) for op in LOGICAL_OPS},
    **{op: ([T(2, 1, dtype=I), T(3, dtype=I)], {}) for op in BITWISE_OPS},
    "pow": ([T(2, 3), T(3)], {}),
    "stop_gradient": ([T(2, 3)], {}),
    "where": ([T(2, 1, dtype=B), T(1, 3), T(2, 3)], {}),
    "cast": ([T(2, 3)], {"to": I}),
    **{
        op: ([T(2, 3, 4)], {"axes": (0, -1), "keepdims": False})
        for op in ("reduce_sum", "reduce_mean", "reduce_max", "reduce_min")
    },
    "argmax": ([T(2, 3, 4)], {"axis": 1, "keepdims": True}),
    "argmin": ([T(2, 3, 4)], {"axis": -1, "keepdims": False}),
    "reshape": ([T(2, 3)], {"shape": (3, 1, 2)}),
    "transpose": ([T(2, 3, 4)], {"perm": (2, 0, 1)}),
    "expand": ([T(2, 1)], {"shape": (3, 1, 4)}),
    "slice": ([T(4, 5)], {"starts": (3, 0), "ends": (0, 5), "axes": (0, 1), "steps": (-1, 2)}),
    "pad": ([T(3, 4)], {"pads": (1, 0, 2, 1), "mode": "reflect"}),
    "concat": ([T(2, 3), T(2, 1), T(2, 2)], {"axis": 1}),
    "gather": ([T(4, 3), T(2, 2, dtype=I)], {"axis": 0}),
    "gather_elements": ([T(4, 3), T(2, 3, dtype=I)], {"axis": 0}),
    "one_hot": ([T(2, 3, dtype=I)], {"depth": 4, "axis": 1}),
    "matmul": ([T(5, 2, 3), T(3, 4)], {}),
    "conv2d": ([T(1, 4, 6, 6), T(6, 2, 3, 3)], {"groups": 2, "pads": (1, 1, 0, 0)}),
    "max_pool2d": ([T(1, 2, 5, 5)], {"kernel": (2, 2), "strides": (2, 1)}),
    "avg_pool2d": ([T(1, 2, 5, 5)], {"kernel": (3, 3), "pads": (1, 1, 1, 1)}),
    "constant": ([], {"value": np.arange(6, dtype=np.int32).reshape(2, 3)}),
    # the gradient primitives: adjoints of the conv2d / pooling / gather / slice examples
    "conv2d_backward_input": (
        [T(1, 6, 5, 5), T(6, 2, 3, 3)],
        {"groups": 2, "pads": (1, 1, 0, 0), "input_hw": (6, 6)},
    ),
    "conv2d_backward_weight": (
        [T(1, 4, 6, 6), T(1, 6, 5, 5)],
        {"groups": 2, "pads": (1, 1, 0, 0), "kernel": (3, 3)},
    ),
    "max_pool2d_backward": ([T(1, 2, 5, 5), T(1, 2, 2, 4)], {"kernel": (2, 2), "strides": (2, 1)}),
    "avg_pool2d_backward": (
        [T(1, 2, 5, 5)],
        {"kernel": (3, 3), "pads": (1, 1, 1, 1), "input_hw": (5, 5)},
    ),
    "scatter_add": ([T(2, 2, 3), T(2, 2, dtype=I)], {"axis": 0, "shape": (4, 3)}),
    "scatter_elements_add": ([T(2, 3), T(2, 3, dtype=I)], {"axis": 0, "shape": (4, 3)}),
    "slice_backward": (
        [T(3, 3)],
        {"shape": (4, 5), "starts": (3, 0), "ends": (0, 5), "axes": (0, 1), "steps": (-1, 2)},
    ),
    "random_uniform": ([T(dtype=I)], {"shape": (2, 3)}),
    "batch_size": ([], {"scale": 3, "offset": 2, "dtype": F}),
}

# More calls per op, so each attribute value that changes the output type is exercised.
VARIANTS: list[tuple[str, list[TensorType], dict]] = [
    (op, types, attrs) for op, (types, attrs) in EXAMPLES.items()
] + [
    *[
        (op, [T(2, 3, 4)], {"axes": axes, "keepdims": True})
        for op in ("reduce_sum", "reduce_mean", "reduce_max", "reduce_min")
        for axes in [(1,), (), (0, 1, 2)]
    ],
    ("reduce_sum", [T(2, 3, dtype=I)], {"axes": (0,), "keepdims": False}),
    ("reduce_max", [T(2, 0)], {"axes": (1,), "keepdims": False}),  # empty: -inf, not an error
    ("argmax", [T(2, 3, 4)], {"axis": -1, "keepdims": False}),
    ("argmin", [T(2, 3, 4)], {"axis": 0, "keepdims": True}),
    ("cast", [T(2, 3, dtype=B)], {"to": F}),
    ("pad", [T(3, 4)], {"pads": (0, 2, 1, 0), "mode": "edge"}),
    ("pad", [T(3, 4)], {"pads": (1, 1, 1, 1), "value": -1.0}),
    ("one_hot", [T(3, dtype=I)], {"depth": 0, "axis": 0, "dtype": B}),
    ("matmul", [T(3), T(2, 3, 4)], {}),
    ("matmul", [T(2, 3, 4), T(4)], {}),
    ("matmul", [T(4), T(4)], {}),
    ("concat", [T(2, 3)], {"axis": -1}),
    (
        "avg_pool2d",
        [T(1, 2, 5, 5)],
        {"kernel": (3, 3), "pads": (1, 1, 1, 1), "count_include_pad": True},
    ),
    ("max_pool2d", [T(1, 1, 7, 7)], {"kernel": (2, 3), "dilations": (2, 1), "pads": (1, 0, 0, 2)}),
    ("conv2d", [T(2, 3, 7, 5), T(4, 3, 2, 3)], {"strides": (2, 1), "dilations": (1, 2)}),
    ("constant", [], {"value": np.array(True)}),
    ("stop_gradient", [T(0, 2, dtype=B)], {}),
    ("constant", [], {"value": np.zeros((0, 2), np.float64)}),
    (
        "conv2d_backward_input",
        [T(2, 4, 3, 1), T(4, 3, 2, 3)],
        {"strides": (2, 1), "dilations": (1, 2), "input_hw": (7, 5)},
    ),
    (
        "conv2d_backward_input",  # stride 2 leaves the last row uncovered: input_hw says 8
        [T(1, 2, 3, 3), T(2, 1, 3, 3)],
        {"strides": (2, 2), "groups": 2, "input_hw": (8, 7)},
    ),
    (
        "conv2d_backward_weight",
        [T(2, 3, 7, 5), T(2, 4, 3, 1)],
        {"strides": (2, 1), "dilations": (1, 2), "kernel": (2, 3)},
    ),
    (
        "max_pool2d_backward",
        [T(1, 1, 7, 7), T(1, 1, 6, 7)],
        {"kernel": (2, 3), "dilations": (2, 1), "pads": (1, 0, 0, 2)},
    ),
    (
        "avg_pool2d_backward",
        [T(1, 2, 3, 2)],
        {"kernel": (2, 3), "strides": (2, 2), "count_include_pad": True, "input_hw": (6, 5)},
    ),
    ("scatter_add", [T(4), T(dtype=I)], {"axis": -1, "shape": (4, 3)}),
    ("scatter_add", [T(2, 0, 3), T(0, dtype=I)], {"axis": 1, "shape": (2, 5, 3)}),
    ("scatter_elements_add", [T(2, 2, 1), T(2, 2, 1, dtype=I)], {"axis": -2, "shape": (2, 3, 4)}),
    (
        "slice_backward",
        [T(5, 2)],
        {"shape": (5, 6), "starts": (4,), "ends": (0,), "axes": (-1,), "steps": (-2,)},
    ),
    ("random_uniform", [T(dtype=I)], {"shape": (), "dtype": nc.float64}),
    ("random_uniform", [T(dtype=nc.int32)], {"shape": (0, 3), "dtype": F}),
]


def _sample(t: TensorType, rng: np.random.Generator) -> np.ndarray:
    if t.dtype.is_bool:
        return rng.random(t.shape) < 0.5
    if t.dtype.is_int:
        # Small non-negative ints are valid indices for every example above.
        return rng.integers(0, 2, t.shape).astype(t.dtype.np)
    return rng.standard_normal(t.shape).astype(t.dtype.np)


def test_every_op_has_an_example():
    assert set(EXAMPLES) == set(all_ops())


def test_every_op_has_a_reference_implementation():
    missing = sorted(set(all_ops()) - set(REFERENCE))
    assert not missing, f"ops without a NumPy reference: {missing}"
    assert not set(REFERENCE) - set(all_ops()), "reference for an unregistered op"


@pytest.mark.parametrize("op", sorted(all_ops()))
def test_op_schema_is_well_formed(op):
    opdef = get_op(op)
    assert opdef.name == op
    assert opdef.category in CATEGORIES
    for name, spec in opdef.attrs.items():
        assert isinstance(spec, AttrSpec) and spec.kind in ATTR_KINDS, name
        if spec.default is not REQUIRED:
            # Defaults must already be canonical, or verify() would reject default nodes.
            attrs = {**EXAMPLES[op][1], name: spec.default}
            assert opdef.normalize_attrs(attrs)[name] == spec.default


@pytest.mark.parametrize("op, types, attrs", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_inference_and_reference_agree(op, types, attrs):
    opdef = get_op(op)
    norm = opdef.normalize_attrs(attrs)
    out_types = opdef.infer_types(types, norm)
    assert out_types and all(isinstance(t, TensorType) for t in out_types)
    assert all(t.dtype in ALL_DTYPES for t in out_types)
    rng = np.random.default_rng(0)
    # call_reference: IEEE results without warnings (log of negatives etc.); batch_size
    # reads a bound batch size
    with bound_batch(3):
        outs = call_reference(op, [_sample(t, rng) for t in types], norm)
    assert len(outs) == len(out_types)
    for a, t in zip(outs, out_types, strict=True):
        assert isinstance(a, np.ndarray)
        assert (a.shape, a.dtype) == (t.shape, t.dtype.np), op


@pytest.mark.parametrize("op", sorted(EXAMPLES))
def test_arity_is_checked(op):
    types, attrs = EXAMPLES[op]
    opdef = get_op(op)
    norm = opdef.normalize_attrs(attrs)
    lo = opdef.num_inputs if isinstance(opdef.num_inputs, int) else opdef.num_inputs[0]
    if lo > 0:
        with pytest.raises(nc.GraphError, match="expects"):
            opdef.infer_types(types[: lo - 1], norm)
    if isinstance(opdef.num_inputs, int):
        with pytest.raises(nc.GraphError, match="expects"):
            opdef.infer_types(types + [T(1)], norm)


def test_fusion_classes_come_from_the_op_categories():
    from nncompile.passes.fusion import POINTWISE, op_class

    assert op_class("scatter_add") == "opaque" and op_class("conv2d") == "contraction"
    assert op_class("reshape") == "injective" and op_class("reduce_sum") == "reduction"
    assert "hardswish" in POINTWISE and "reshape" not in POINTWISE
