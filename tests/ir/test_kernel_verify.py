"""The kernel-IR verifier accepts what lowering builds and names what hand-broken kernels
get wrong; the visitor raises on kinds the IR does not define."""

from __future__ import annotations

import dataclasses

import pytest
from nncompile.ir import dtypes as dt
from nncompile.ir.kernel import (
    INDEX,
    Assign,
    Binary,
    BufferParam,
    Cast,
    Const,
    Gemm,
    If,
    Kernel,
    Let,
    Load,
    Local,
    Loop,
    Store,
    Var,
    children,
    const_index,
)
from nncompile.ir.kernel_offsets import fold_offsets
from nncompile.ir.kernel_simplify import simplify_kernel
from nncompile.ir.kernel_verify import KernelVerifyError, kernel_problems, verify_kernel
from nncompile.ir.kernel_visit import KernelVisitor, UnknownNodeError, expressions, walk

import nncompile as nc
from nncompile.workloads import BUILTIN, builtin

F32 = dt.float32
i = Var("i", INDEX)


def kernel(*body, params=None) -> Kernel:
    params = params or [BufferParam("x", F32, 8), BufferParam("y", F32, 8)]
    return Kernel("k", params, list(body))


def problems(*body, **kw) -> str:
    found = kernel_problems(kernel(*body, **kw))
    assert found, "the verifier accepted a broken kernel"
    return "\n".join(found)


def copy_loop(value=None, index=i, buffer="y"):
    value = Load("x", i, F32) if value is None else value
    return Loop("i", 8, [Store(buffer, index, value)], parallel=True)


# ---- what lowering builds passes -------------------------------------------------------------


def _workload(name: str):
    size = {"elementwise": 4096, "matmul": 64}.get(name)
    return builtin(name, batch=4, size=size)


@pytest.mark.parametrize("backend", ["llvm", "cuda"])
@pytest.mark.parametrize("name", BUILTIN)
def test_every_kernel_of_the_builtin_workloads_verifies(name, backend, monkeypatch):
    monkeypatch.setenv("NNCOMPILE_VERIFY", "1")  # lowering checks each stage too
    w = _workload(name)
    program = nc.lower(w.fn, *w.args, backend=backend).program
    assert program.kernels
    for k in program.kernels:
        verify_kernel(k)
        verify_kernel(fold_offsets(k, program.physical)[0])  # the LLVM back end's rewrite


def test_a_plain_copy_verifies():
    assert kernel_problems(kernel(copy_loop())) == []


# ---- broken kernels are rejected with the reason ---------------------------------------------


def test_a_variable_used_outside_its_loop():
    msg = problems(copy_loop(), Store("y", i, Const(0.0, F32)))
    assert "variable 'i' is used outside the scope that binds it" in msg


def test_a_let_is_not_visible_outside_its_block():
    inner = Loop("i", 8, [Let("t", Load("x", i, F32))])
    msg = problems(inner, Store("y", const_index(0), Var("t", F32)))
    assert "variable 't'" in msg


def test_a_variable_used_at_another_type():
    msg = problems(Let("t", Const(1, INDEX)), Store("y", const_index(0), Var("t", F32)))
    assert "used as float32 but is int64" in msg


def test_a_store_to_an_undeclared_buffer():
    assert "'z', which is not a buffer parameter" in problems(copy_loop(buffer="z"))


def test_a_store_of_the_wrong_dtype():
    msg = problems(copy_loop(value=Const(1, dt.int32)))
    assert "stores a int32 value into 'y' (float32[8])" in msg


def test_a_load_of_the_wrong_dtype_or_an_undeclared_buffer():
    assert "loads int64 from 'x'" in problems(copy_loop(value=Cast(Load("x", i, INDEX), F32)))
    assert "load from 'w'" in problems(copy_loop(value=Load("w", i, F32)))


def test_a_constant_index_out_of_range():
    msg = problems(Store("y", const_index(8), Const(0.0, F32)))
    assert "constant index 8 outside 'y' (8 elements)" in msg


def test_a_float_index():
    assert "index of a store to 'y' is float32" in problems(copy_loop(index=Const(0.0, F32)))


def test_assignments_need_a_declared_local():
    assert "'acc', which is not declared" in problems(Assign("acc", Const(0.0, F32)))
    msg = problems(Let("acc", Const(0.0, F32)), Assign("acc", Const(1.0, F32)))
    assert "is not a local" in msg
    msg = problems(Local("acc", F32, Const(0.0, F32)), Assign("acc", Const(1, INDEX)))
    assert "assigns a int64 to local 'acc' (float32)" in msg


def test_expression_types_must_agree():
    mixed = Binary("add", Load("x", i, F32), Const(1, INDEX), F32)
    assert "add of a float32 and a int64" in problems(copy_loop(value=mixed))
    compare = Binary("lt", Load("x", i, F32), Const(0.0, F32), F32)
    assert "comparison lt typed float32" in problems(copy_loop(value=compare))
    unknown = Binary("frobnicate", Load("x", i, F32), Const(0.0, F32), F32)
    assert "unknown binary op 'frobnicate'" in problems(copy_loop(value=unknown))


def test_an_if_needs_a_bool_condition():
    msg = problems(If(Const(1, INDEX), [Store("y", const_index(0), Const(0.0, F32))]))
    assert "the condition is int64, not bool" in msg


def gemm(**kw) -> Gemm:
    base = dict(a="a", b="b", c="c", batch=1, m=2, n=3, k=4)
    base |= dict(a_strides=(0, 4, 1), b_strides=(0, 3, 1), c_strides=(0, 3, 1))
    return Gemm(**(base | kw))


GEMM_PARAMS = [BufferParam("a", F32, 8), BufferParam("b", F32, 12), BufferParam("c", F32, 6)]


def test_a_gemm_within_its_buffers_verifies():
    assert kernel_problems(kernel(gemm(), params=GEMM_PARAMS)) == []


def test_a_gemm_reaching_past_its_buffer():
    msg = problems(gemm(a_offset=1), params=GEMM_PARAMS)
    assert "GEMM operand a reaches elements 1..8 of 'a', which has 8" in msg
    msg = problems(gemm(c_strides=(0, 4, 1)), params=GEMM_PARAMS)
    assert "operand c reaches elements 0..6" in msg


def test_a_gemm_on_a_missing_or_mistyped_buffer():
    assert "operand b 'w' is not a buffer parameter" in problems(gemm(b="w"), params=GEMM_PARAMS)
    params = GEMM_PARAMS[:2] + [BufferParam("c", dt.float64, 6)]
    assert "'c' is float64, the GEMM float32" in problems(gemm(), params=params)
    assert "implicit must be" in problems(gemm(implicit="c"), params=GEMM_PARAMS)


@dataclasses.dataclass
class Mystery:
    """A statement / expression kind the IR does not define."""

    dtype: dt.DType = F32


def test_unknown_kinds_are_rejected():
    assert "not a kernel expression: Mystery" in problems(copy_loop(value=Mystery()))
    with pytest.raises(UnknownNodeError, match="not a kernel statement: Mystery"):
        verify_kernel(kernel(Mystery()))


def test_the_error_names_the_kernel_and_each_problem():
    with pytest.raises(KernelVerifyError, match=r"kernel k is malformed:\n  statement 2 \(Store\)"):
        verify_kernel(kernel(copy_loop(buffer="z")))


def test_verification_is_iterative_on_deep_expressions():
    value = Load("x", i, F32)
    for _ in range(20000):  # deeper than Python's recursion limit
        value = Binary("add", value, value, F32)  # a DAG: exponential as a tree
    assert kernel_problems(kernel(copy_loop(value=value))) == []


# ---- the visitor -----------------------------------------------------------------------------


def test_walks_raise_on_unknown_kinds():
    with pytest.raises(UnknownNodeError):
        list(walk([Loop("i", 2, [Mystery()])]))
    with pytest.raises(UnknownNodeError):
        list(expressions([Mystery()]))
    with pytest.raises(UnknownNodeError):
        children(Mystery())


def test_the_visitor_reports_blocks_and_statements_in_order():
    events: list[str] = []

    class Recorder(KernelVisitor):
        def enter_block(self, block):
            events.append("{")

        def leave_block(self, block):
            events.append("}")

        def loop(self, s):
            events.append(f"loop {s.var}")

        def store(self, s):
            events.append(f"store {s.buffer}")

        def if_(self, s):
            events.append("if")

        def leave(self, s):
            events.append(f"end {type(s).__name__}")

    cond = Binary("lt", i, const_index(4), dt.bool_)
    body = [Loop("i", 8, [If(cond, [Store("y", i, Const(1.0, F32))])]), Store("x", i, i)]
    Recorder().visit(body)
    assert events == [
        "{",
        "loop i",
        "{",
        "if",
        "{",
        "store y",
        "end Store",
        "}",
        "{",
        "}",
        "end If",
        "}",
        "end Loop",
        "store x",
        "end Store",
        "}",
    ]


def test_deeply_nested_statements_are_walked_without_recursion():
    body = [Store("y", const_index(0), Const(0.0, F32))]
    for d in range(5000):
        body = [Loop(f"v{d}", 1, body)]
    assert sum(1 for _ in walk(body)) == 5001
    assert kernel_problems(kernel(*body)) == []


def test_rewriting_passes_rebuild_deep_nests_without_recursion():
    body = [Store("y", Binary("add", i, const_index(3), INDEX), Load("x", i, F32))]
    body = [Loop("i", 4, body)]
    for d in range(5000):
        body = [Loop(f"v{d}", 1, body)]
    k = kernel(*body)
    simplified = simplify_kernel(k)
    folded, offsets = fold_offsets(simplified, {})
    assert offsets == {"y": 3}
    assert kernel_problems(folded) == []
    assert sum(1 for _ in walk(folded.body)) == 5002
