"""Control flow: If, Loop and Scan, unrolled while converting.

nncompile graphs have no control flow, so a branch condition must be known when the model
is converted, and a loop must have a trip count and condition that are known each
iteration (a condition the body computes from the iteration number folds to a constant);
then the taken branch, or every iteration, is recorded like straight-line code and
differentiates and compiles as such. Anything decided by the data is unsupported."""

from __future__ import annotations

from typing import Any

import numpy as np

import nncompile as nc

from ..registry import NodeContext, converter
from .shape import invalid

# more iterations than this are refused rather than unrolled into a huge graph
MAX_UNROLLED_ITERATIONS = 10_000


def _known_bool(ctx: NodeContext, v: Any, what: str) -> bool:
    if not isinstance(v, np.ndarray):
        ctx.unsupported(
            f"{what} is computed from the graph's inputs; nncompile unrolls control flow, "
            "so it must be known when the model is converted"
        )
    if v.size != 1:
        invalid(ctx, f"{what} must hold one value, got shape {v.shape}")
    return bool(v.reshape(-1)[0])


def _body(ctx: NodeContext, name: str) -> Any:
    """The graph attribute ``name``, whose outputs must be tensors (nncompile has no
    sequence or optional values)."""
    graph = ctx.attr(name)
    for vi in graph.output:
        kind = vi.type.WhichOneof("value")
        if kind not in (None, "tensor_type"):
            ctx.unsupported(f"{name} output {vi.name!r} is a {kind}; only tensors are supported")
    return graph


def _stack(values: list[Any], axis: int = 0) -> Any:
    if all(isinstance(v, np.ndarray) for v in values):
        return np.stack(values, axis)
    return nc.stack(values, axis)


@converter("If", constant_inputs=(0,))
def if_(ctx: NodeContext) -> list[Any]:
    then_branch, else_branch = _body(ctx, "then_branch"), _body(ctx, "else_branch")
    taken = _known_bool(ctx, ctx.input(0), "the condition")
    return ctx.run_subgraph(then_branch if taken else else_branch, [])


@converter("Loop", constant_inputs=(0, 1))
def loop(ctx: NodeContext) -> list[Any]:
    body = _body(ctx, "body")
    trips = ctx.optional_input(0)
    limit = None if trips is None else _known_int(ctx, trips, "the trip count M")
    cond = ctx.optional_input(1)
    going = True if cond is None else _known_bool(ctx, cond, "the initial condition")
    carried = [ctx.input(i) for i in range(2, ctx.num_inputs)]
    n_scan = len(body.output) - 1 - len(carried)
    if n_scan < 0:
        invalid(ctx, f"the body has {len(body.output)} outputs for {len(carried)} loop values")
    if limit is None and cond is None:
        ctx.unsupported("neither a trip count nor a condition: the loop never ends")
    scans: list[list[Any]] = [[] for _ in range(n_scan)]
    i = 0
    while going and (limit is None or i < limit):
        if i >= MAX_UNROLLED_ITERATIONS:
            ctx.unsupported(f"more than {MAX_UNROLLED_ITERATIONS} iterations to unroll")
        feeds = [np.asarray(i, np.int64), np.asarray(going, np.bool_)] + carried
        outs = ctx.run_subgraph(body, feeds)
        going = _known_bool(ctx, outs[0], f"the condition the body computes (iteration {i})")
        carried = outs[1 : 1 + len(carried)]
        for k, v in enumerate(outs[1 + len(carried) :]):
            scans[k].append(v)
        i += 1
    if n_scan and i == 0:
        ctx.unsupported("a loop of zero iterations has scan outputs of unknown shape")
    return carried + [_stack(s) for s in scans]


def _known_int(ctx: NodeContext, v: Any, what: str) -> int:
    if not isinstance(v, np.ndarray):
        ctx.unsupported(f"{what} is computed from the graph's inputs; it must be known")
    if v.size != 1:
        invalid(ctx, f"{what} must hold one value, got shape {v.shape}")
    return int(v.reshape(-1)[0])


@converter("Scan")
def scan(ctx: NodeContext) -> list[Any]:
    body = _body(ctx, "body")
    n_in = ctx.attr("num_scan_inputs")
    if ctx.opset < 9:  # opset 8: inputs and states have a leading batch axis
        directions = ctx.attr("directions", None)
        if ctx.has_input(0):
            ctx.unsupported("sequence_lens is not supported (every sequence is full length)")
        values = [ctx.input(i) for i in range(1, ctx.num_inputs)]
        n_state = len(values) - n_in
        batch = np.shape(values[0])[0]
        runs = [
            _scan_once(
                ctx,
                body,
                [nc.as_tensor(v)[b] for v in values[:n_state]],
                [nc.as_tensor(v)[b] for v in values[n_state:]],
                directions,
                None,
                None,
                None,
            )
            for b in range(batch)
        ]
        return [_stack([r[k] for r in runs]) for k in range(len(body.output))]
    values = [ctx.input(i) for i in range(ctx.num_inputs)]
    n_state = len(values) - n_in
    return _scan_once(
        ctx,
        body,
        values[:n_state],
        values[n_state:],
        ctx.attr("scan_input_directions", None),
        ctx.attr("scan_input_axes", None),
        ctx.attr("scan_output_directions", None),
        ctx.attr("scan_output_axes", None),
    )


def _scan_once(
    ctx: NodeContext,
    body: Any,
    states: list[Any],
    xs: list[Any],
    in_dirs: list[int] | None,
    in_axes: list[int] | None,
    out_dirs: list[int] | None,
    out_axes: list[int] | None,
) -> list[Any]:
    in_dirs = in_dirs or [0] * len(xs)
    in_axes = in_axes or [0] * len(xs)
    n_out = len(body.output) - len(states)
    out_dirs = out_dirs or [0] * n_out
    out_axes = out_axes or [0] * n_out
    if len(in_dirs) != len(xs) or len(in_axes) != len(xs):
        invalid(ctx, "scan input directions/axes do not match the scan inputs")
    if len(out_dirs) != n_out or len(out_axes) != n_out:
        invalid(ctx, "scan output directions/axes do not match the scan outputs")
    axes = [a % len(np.shape(x)) for a, x in zip(in_axes, xs, strict=True)]
    lengths = {np.shape(x)[a] for a, x in zip(axes, xs, strict=True)}
    if len(lengths) != 1:
        invalid(ctx, f"scan inputs differ in length along their scan axes: {sorted(lengths)}")
    steps = lengths.pop()
    if steps > MAX_UNROLLED_ITERATIONS:
        ctx.unsupported(f"more than {MAX_UNROLLED_ITERATIONS} iterations to unroll")
    if n_out and steps == 0:
        ctx.unsupported("a scan of length 0 has scan outputs of unknown shape")
    outs: list[list[Any]] = [[] for _ in range(n_out)]
    for t in range(steps):
        feeds = [
            nc.as_tensor(x)[(slice(None),) * a + (steps - 1 - t if d else t,)]
            for x, a, d in zip(xs, axes, in_dirs, strict=True)
        ]
        result = ctx.run_subgraph(body, list(states) + feeds)
        states = result[: len(states)]
        for k, v in enumerate(result[len(states) :]):
            outs[k].append(v)
    stacked = []
    for k, vs in enumerate(outs):
        vs = vs[::-1] if out_dirs[k] else vs
        rank = len(np.shape(vs[0])) + 1
        stacked.append(_stack(vs, out_axes[k] % rank))
    return list(states) + stacked
