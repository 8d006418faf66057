"""Graph passes on random programs: results are bit-for-bit unchanged at every level,
each pass alone keeps the results (and applied twice equals applied once),
re-optimizing changes nothing, and the fusion partition of every level-2 graph is well
formed.

The programs come from a small DSL (nc_passes_support.random_program): elementwise ops
with broadcasting, comparisons + where, reductions over random axes, matmul, reshape,
transpose, slicing with negative steps, casts, concat, constants 0, 1, 2, -0.0 (scalars
and arrays, some of them broadcasting), repeated instructions (CSE) and values no output
uses (DCE), constant-only subexpressions (folding), transpose / op / inverse-transpose
sandwiches (layout). Naive softmax patterns are kept out (their stability rewrite
changes values on purpose), as is exp(log(exp(x))) (see test_nc_passes_rules).

Hypothesis draws only a seed (derandomized: CI runs the same programs every time); a
failure prints the program and its graph. Replay one with
``nc_passes_support.random_program(seed, max_instrs=30)``.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import nncompile as nc
from nncompile import passes

from . import nc_passes_support as S

SETTINGS = settings(
    max_examples=250,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PASSES = [
    ("fold", passes.fold_constants),
    ("simplify", passes.simplify),
    ("cse", passes.eliminate_common_subexpressions),
    ("dce", passes.eliminate_dead_code),
    ("layout", passes.sink_transposes),
]


SEEDS = st.integers(0, 2**32 - 1)


def _traced(seed):
    prog = S.random_program(seed, max_instrs=30)
    note(repr(prog))
    graph = nc.trace(prog.fn, *prog.inputs)
    note(str(graph))
    return prog, graph


@SETTINGS
@given(SEEDS)
def test_optimize_keeps_results_bit_exact_at_every_level(seed):
    prog, graph = _traced(seed)
    expected = nc.run(graph, *prog.inputs)
    for level in (0, 1, 2):
        opt = nc.optimize(graph, level)
        note(f"level {level}:\n{opt}")
        S.assert_same_results(expected, nc.run(opt, *prog.inputs), f"level {level}")
        assert len(opt.nodes) <= len(graph.nodes)
        assert [v.type for v in opt.outputs] == [v.type for v in graph.outputs]
        assert [v.type for v in opt.inputs] == [v.type for v in graph.inputs]
        if level == 2:
            S.check_fusion_invariants(opt)
        else:
            assert opt.fusion_groups is None
    assert str(nc.optimize(graph, 0)) == str(graph)


@SETTINGS
@given(SEEDS)
def test_each_pass_alone_keeps_results_and_optimizing_twice_changes_nothing(seed):
    prog, graph = _traced(seed)
    expected = nc.run(graph, *prog.inputs)
    before = str(graph)
    for name, fn in PASSES:
        out = fn(graph)
        out.verify()
        S.assert_same_results(expected, nc.run(out, *prog.inputs), name)
        assert str(graph) == before, f"{name} modified its input graph"
    for level in (1, 2):
        once = nc.optimize(graph, level)
        assert str(nc.optimize(once, level)) == str(once), f"level {level} not idempotent"
    fused = passes.fuse(graph).graph
    S.check_fusion_invariants(fused)
    S.assert_same_results(expected, nc.run(fused, *prog.inputs), "fuse")


@settings(SETTINGS, max_examples=100)
@given(SEEDS)
def test_each_pass_applied_twice_is_applied_once(seed):
    """Not for layout: it moves a transpose one op per run, by design (the pipeline
    iterates)."""
    _, graph = _traced(seed)
    for name, fn in PASSES[:4]:
        once = fn(graph)
        assert str(fn(once)) == str(once), f"{name} applied twice differs from once"
