"""Every LLVM op case (llvm_cases*.py) compiled once more with a symbolic batch size: the
array arguments whose leading size is the first one's get the leading axis ``n``, and the
one compiled program, run at the cases' own sizes, must equal the reference. This walks
each op's lowering with sizes that are expressions in ``n`` (loop bounds, strides, GEMM
sizes, arena offsets) rather than the numbers the static cases see."""

from __future__ import annotations

import numpy as np
import pytest

from nncompile import pytree
from nncompile.compiler import lower_graph_for
from nncompile.tracing import is_array_leaf, trace

# (the cases register when their modules load: all of them, so that this file runs the
# same cases alone and in the whole suite)
from . import llvm_cases_contractions, llvm_cases_reductions, test_llvm_ops  # noqa: F401
from . import llvm_support as S
from .llvm_cases import CASES

# Cases whose arrays share a leading size by coincidence (a weight, an exponent or an
# index array would be batched with the data), or whose function does what one symbolic
# size cannot (reshapes the batch to a fixed shape, slices it, computes tolerances from
# x.size, checks gather indices against it): not meaningful batched.
NOT_BATCHABLE = {
    "conv2d",
    "conv-backward",
    "scatter",
    "random_uniform",
    "reduce",
    "binary",
    "where",
    "movement",
    "gather",
}


def _batched(args: tuple) -> frozenset[int]:
    leading = [
        np.shape(a)[0] if np.ndim(a) else None for a in pytree.flatten(args, is_array_leaf)[0]
    ]
    first = next((d for d in leading if d is not None and d > 1), None)
    return frozenset(k for k, d in enumerate(leading) if d == first)


DTYPES = ("float32", "float64", "int32", "int64", "bool")


def _kind(key: str) -> str:
    """The case's name without its dtype ("conv-backward-float32" -> "conv-backward")."""
    head, _, tail = key.rpartition("-")
    return head if tail in DTYPES else key


def _float32_cases() -> list[str]:
    return [k for k in CASES if _kind(k) not in NOT_BATCHABLE and "float64" not in k]


@pytest.mark.parametrize("key", _float32_cases())
def test_op_matches_reference_with_a_symbolic_batch(key):
    fn, args, tol = CASES[key]()
    batched = _batched(args)
    graph = trace(fn, *args, batched_leaves=batched)
    if batched:
        assert any("n" in str(v.type) for v in graph.inputs)
    executable = lower_graph_for(graph, "llvm").compile()

    def compiled(*call_args):
        arrays = pytree.flatten(call_args, is_array_leaf)[0]
        return pytree.unflatten(graph.out_tree, executable([np.asarray(a) for a in arrays]))

    S.check(fn, *args, tol=tol, compiled=compiled)


def test_every_case_kind_is_run_or_excused():
    kinds = {_kind(k) for k in CASES}
    assert NOT_BATCHABLE <= kinds  # (a renamed case must not be skipped silently)
    assert len(_float32_cases()) >= 10
