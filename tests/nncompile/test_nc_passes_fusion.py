"""Fusion (passes.fuse, nc.optimize level 2): the groups partition the graph's nodes, each
group reads only values made outside it and exposes exactly what others read, groups
come in a valid execution order, kinds hold what they say, and the "why not fused"
records name real edges with the expected reasons. On the MLP, CNN and LSTM training
steps of benchmarks/graph_sizes.py and on small graphs made to hit each rule.
"""

from __future__ import annotations

import numpy as np
import pytest

import nncompile as nc
from nncompile import functional as F
from nncompile import optim, passes
from nncompile.passes import format_fusion

from ..conftest import graph_sizes
from . import nc_passes_support as S

MODELS = graph_sizes()


def training_step(build):
    params, loss, x = build()
    y = np.random.default_rng(1).integers(0, 10, MODELS.BATCH)
    opt = optim.Adam(1e-3)
    args = (params, opt.init(params), x, y, np.float32(1e-3))
    return nc.trace(nc.train_step(loss, opt), *args), args


@pytest.fixture(scope="module", params=["mlp", "cnn", "lstm"])
def step(request):
    graph, args = training_step(getattr(MODELS, request.param))
    return request.param, graph, nc.optimize(graph, 2), args


def test_training_step_partitions_are_well_formed(step):
    name, graph, opt, _ = step
    S.check_fusion_invariants(opt)
    assert opt.fusion_groups and len(opt.fusion_groups) < len(opt.nodes)
    matmuls = sum(n.op == "matmul" for n in opt.nodes)
    contractions = [g for g in opt.fusion_groups if g.kind == "contraction"]
    assert len(contractions) == sum(passes.op_class(n.op) == "contraction" for n in opt.nodes), (
        "one contraction per contraction group, and every contraction has its group"
    )
    assert matmuls >= 1


def test_training_step_results_are_unchanged(step):
    name, graph, opt, args = step
    S.assert_same_results(nc.run(graph, *args), nc.run(opt, *args), name)


def test_mlp_adam_step_needs_few_kernels():
    graph, _ = training_step(MODELS.mlp)
    opt = nc.optimize(graph, 2)
    matmuls = sum(n.op == "matmul" for n in opt.nodes)
    assert len(opt.fusion_groups) <= matmuls + 6, format_fusion(opt)
    # forward matmul + bias + relu is one kernel
    first = opt.fusion_groups[0]
    assert first.kind == "contraction" and [n.op for n in first.nodes][:3] == [
        "matmul",
        "add",
        "relu",
    ]


def test_adam_update_runs_in_the_kernel_that_computes_the_gradient():
    graph, _ = training_step(MODELS.mlp)
    opt = nc.optimize(graph, 2)
    by_output = {id(v): g for g in opt.fusion_groups for n in g.nodes for v in n.outputs}
    # outputs: 6 new params, step, 6 first moments, 6 second moments, loss
    assert len(opt.outputs) == 20
    for k in range(6):
        param, m, v = opt.outputs[k], opt.outputs[7 + k], opt.outputs[13 + k]
        grp = by_output[id(param)]
        assert by_output[id(m)] is grp and by_output[id(v)] is grp
        # the gradient's matmul (weights) or batch sum (biases) is the anchor
        assert grp.anchor is not None
        assert grp.anchor.op == ("matmul" if k % 2 == 0 else "reduce_sum"), grp


def test_format_fusion_lists_every_group_node_and_rejection(step):
    _, _, opt, _ = step
    text = format_fusion(opt)
    lines = text.splitlines()
    assert lines[0] == f"{len(opt.fusion_groups)} fusion groups for {len(opt.nodes)} nodes:"
    for g in opt.fusion_groups:
        assert f"  {g.name} [{g.kind}] (" in text
        assert f"      nodes: {' '.join(g.node_names)}" in lines
    listed = [n for line in lines if line.startswith("      nodes: ") for n in line.split()[1:]]
    assert sorted(listed) == sorted(n.name for n in opt.nodes if n.op != "constant")
    at = lines.index("why not fused:")
    assert len(lines) - at - 1 == len(opt.fusion_rejections)
    for r in opt.fusion_rejections:
        assert f"  %{r.producer} -> %{r.consumer}: {r.reason}" in lines


def test_format_fusion_of_an_unfused_graph():
    g = nc.trace(lambda x: nc.exp(x), np.ones(3, np.float32))
    assert format_fusion(g) == "(graph not fused)"
    assert format_fusion(nc.optimize(g, 1)) == "(graph not fused)"


def test_fuse_keeps_the_graph_and_does_not_touch_its_input():
    graph, args = training_step(MODELS.mlp)
    text = str(graph)
    fused = passes.fuse(graph)  # a FusedGraph: the copy, its groups and rejections
    assert str(fused.graph) == text and str(graph) == text
    assert graph.fusion is None and fused.graph.fusion is fused
    assert fused.graph.fusion_groups is fused.groups and fused.groups
    assert passes.format_fusion(fused) == passes.format_fusion(fused.graph)
    S.check_fusion_invariants(fused.graph)
    S.assert_same_results(nc.run(graph, *args), nc.run(fused.graph, *args), "fuse")


# ---- small graphs, one rule each ------------------------------------------------------------


def fused(fn, *arrays):
    g = nc.optimize(nc.trace(fn, *arrays), 2)
    S.check_fusion_invariants(g)
    return g


def group_of(g, op):
    return next(grp for grp in g.fusion_groups for n in grp.nodes if n.op == op)


def rejections(g, producer_op, consumer_op):
    names = {n.name: n for n in g.nodes}
    return [
        r.reason
        for r in g.fusion_rejections
        if names[r.producer].op == producer_op and names[r.consumer].op == consumer_op
    ]


def test_elementwise_chain_is_one_kernel():
    x = np.ones((4, 5), np.float32)
    g = fused(lambda x: nc.tanh(nc.exp(x) * 2.0 + x) - 1.0, x)
    assert len(g.fusion_groups) == 1 and g.fusion_groups[0].kind == "elementwise"
    assert g.fusion_rejections == []


def test_matmul_reading_an_elementwise_result_starts_its_own_kernel():
    x, w = np.ones((4, 5), np.float32), np.ones((5, 3), np.float32)
    g = fused(lambda x, w: nc.relu(x * 2.0) @ w, x, w)
    assert [grp.kind for grp in g.fusion_groups] == ["elementwise", "contraction"]
    reasons = rejections(g, "relu", "matmul")
    assert reasons and reasons[0].startswith("contractions start their own kernel")


def test_matmul_epilogue_and_single_use_transposes_join_the_contraction():
    x, w, b = np.ones((4, 5), np.float32), np.ones((3, 5), np.float32), np.ones(3, np.float32)
    g = fused(lambda x, w, b: nc.relu(x @ w.T + b), x, w, b)
    assert len(g.fusion_groups) == 1
    (grp,) = g.fusion_groups
    assert grp.kind == "contraction" and [n.op for n in grp.nodes] == [
        "transpose",
        "matmul",
        "add",
        "relu",
    ]
    # a transpose that is also an output is materialized, not absorbed
    g = fused(lambda x, w: (x @ w.T, w.T), x, w)
    assert group_of(g, "transpose") is not group_of(g, "matmul")


@pytest.mark.parametrize("through_transpose", [False, True])
def test_a_reshape_of_a_stored_value_is_read_in_place_by_its_matmul(through_transpose):
    """A value stored anyway (an output here) reshaped for a matmul, directly or under a
    transpose: the reshape joins the matmul as a view instead of being written as a
    second copy beside the value (an LSTM's gate gradients over time steps)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6, 8)).astype(np.float32)
    w = rng.standard_normal((24, 5) if through_transpose else (8, 5)).astype(np.float32)

    def fn(x, w):
        stored = nc.exp(x)  # an output, and reshaped for the matmul
        flat = nc.reshape(stored, (24, 8))
        return stored, (nc.transpose(flat) @ w if through_transpose else flat @ w)

    g = fused(fn, x, w)
    assert group_of(g, "reshape") is group_of(g, "matmul")
    assert group_of(g, "reshape") is not group_of(g, "exp")
    got = nc.compile(fn)(x, w)
    flat = np.exp(x.astype(np.float64)).reshape(24, 8)
    want = flat.T @ w if through_transpose else flat @ w
    np.testing.assert_allclose(got[1], want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(got[0], np.exp(x), rtol=1e-6)


def test_elementwise_over_a_different_shape_is_not_fused():
    x, y = np.ones((3, 4), np.float32), np.ones((2, 3, 4), np.float32)
    g = fused(lambda x, y: nc.exp(nc.relu(x) + y), x, y)
    assert group_of(g, "relu") is not group_of(g, "add")
    reasons = rejections(g, "relu", "add")
    assert reasons and reasons[0].startswith("iteration spaces differ")


def test_softmax_is_one_reduction_kernel():
    x = np.ones((4, 5), np.float32)
    g = fused(lambda x: nc.softmax(x, axis=1) * 3.0, x)
    assert len(g.fusion_groups) == 1 and g.fusion_groups[0].kind == "reduction"
    g = fused(lambda x: nc.log_softmax(x, axis=1), x)
    assert len(g.fusion_groups) == 1


def test_reductions_over_other_rows_start_a_new_group():
    x = np.ones((4, 5), np.float32)
    g = fused(lambda x: nc.sum(nc.sum(nc.exp(x), axis=1, keepdims=True), axis=0), x)
    assert len(g.fusion_groups) == 2
    assert all(grp.kind == "reduction" for grp in g.fusion_groups)
    reasons = rejections(g, "reduce_sum", "reduce_sum")
    assert reasons and reasons[0].startswith("reduces other rows")


def test_reduction_reading_a_contraction_is_not_fused():
    x, w = np.ones((4, 5), np.float32), np.ones((5, 3), np.float32)
    g = fused(lambda x, w: nc.max(x @ w, axis=1), x, w)
    assert len(g.fusion_groups) == 2
    reasons = rejections(g, "matmul", "reduce_max")
    assert reasons == ["the input comes from a contraction group"]


def test_scatter_add_is_an_opaque_group_of_its_own():
    emb, idx = np.ones((10, 4), np.float32), np.array([1, 2, 2, 5])
    g = nc.trace(nc.grad(lambda e, i: nc.sum(nc.tanh(F.embedding(i, e)))), emb, idx)
    o = nc.optimize(g, 2)
    S.check_fusion_invariants(o)
    opaque = [grp for grp in o.fusion_groups if grp.kind == "opaque"]
    assert len(opaque) == 1 and [n.op for n in opaque[0].nodes] == ["scatter_add"]
    assert rejections(o, "sub", "scatter_add") == ["scatter_add is opaque"]
    S.assert_same_results(nc.run(g, emb, idx), nc.run(o, emb, idx))


def test_scalar_preamble_merges_into_the_kernel_that_uses_it():
    x = np.ones((4, 5), np.float32)
    s = np.float32(3.0)
    g = fused(lambda x, s: nc.exp(x) * nc.sqrt(s * 2.0) + nc.exp(s), x, s)
    assert len(g.fusion_groups) == 1
    # only as a further producer of a node that joined a group: a lone scalar group
    # feeding a node whose other operand is a graph input stays apart
    g = fused(lambda x, s: x * nc.sqrt(s * 2.0), x, s)
    assert len(g.fusion_groups) == 2


def test_regression_why_not_fused_lists_only_edges_that_stayed_unfused():
    """A producer -> consumer edge refused once can still end up in one group later (a
    scalar group merged in as a preamble); the record stays. Here %t3 -> %t11 is
    reported as 'iteration spaces differ' though both land in the same kernel. Fix: in
    _Partitioner.finish, drop rejections whose ends share a group. (The 'cycle through
    group N' reasons also use pre-renumbering group ids, not the final kN names.)"""
    x = np.array([0.5, -1.5], np.float32)

    def f(x):
        t = nc.tanh(x)
        s = nc.reshape(t[1::-3], (1, 1))
        return nc.sign(s + t) + (s + 2.0)

    g = fused(f, x)
    where = {id(n): grp for grp in g.fusion_groups for n in grp.nodes}
    names = {n.name: n for n in g.nodes}
    stale = [
        r
        for r in g.fusion_rejections
        if where[id(names[r.producer])] is where[id(names[r.consumer])]
    ]
    assert stale == [], format_fusion(g)


@pytest.mark.parametrize(
    "f",
    [
        lambda m: nc.sum(m, 1) + m,  # (4,) broadcasts along the last axis: across rows
        lambda m: nc.sum(m, 0) + m,  # along the first: one value per column, keepdims-like
        lambda m: nc.exp(nc.max(m, 1)) * m,
        lambda m: nc.reshape(nc.sum(m, 1), (1, 4)) - m,
        lambda m: nc.sum(m, 1, keepdims=True) + nc.sum(m, 1),
        lambda m: m / nc.sum(nc.reshape(m, (4, 2, 2)), (1, 2)),
    ],
)
def test_reduced_values_broadcast_across_rows_compile_correctly(f):
    """A reduction's result is held per row inside its fused kernel: a pointwise op that
    broadcasts it other than as keepdims would must read it from memory (a fused kernel
    read the current row's value and gave wrong numbers)."""
    m = np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32)
    got = nc.compile(f, backend="llvm")(m)
    np.testing.assert_allclose(got, f(m).numpy(), rtol=1e-5, atol=1e-5)


def test_relu_mask_is_recomputed_where_the_backward_reads_its_input():
    """The CNN step's ReLU mask ``y > 0`` after the convolution would be computed beside y
    in the forward kernel and stored as a boolean buffer for the pooling backward kernel,
    which reads y anyway: fusion moves the comparison there (no mask buffer). The dense
    layer's mask stays: its reader (a matmul's epilogue) does not read y. (The compiled
    CNN step against the reference and PyTorch: test_llvm_training, test_nc_torch_cnn.)"""
    graph, args = training_step(MODELS.cnn)
    opt = nc.optimize(graph, 2)
    S.check_fusion_invariants(opt)
    masks = {len(v.shape): v for g in opt.fusion_groups for v in g.outputs if v.dtype == nc.bool_}
    assert 4 not in masks and 2 in masks, format_fusion(opt)
    for g in opt.fusion_groups:
        for n in g.nodes:
            if n.op == "greater" and len(n.outputs[0].shape) == 4:
                assert any(n.outputs[0] is x for m in g.nodes for x in m.inputs)
