"""Channels-last for a short convolution and the max pool of its result.

An NCHW model (an imported ONNX CNN) runs a direct convolution with the vector along the
output row and a max pool whose windows step by their width along it: the pool loads each
window's elements with a gather per vector. In NHWC both vectorize over channels, which
are contiguous: the convolution broadcasts each input element against a vector of
weights, the pool takes plain vector maxima (measured on the seed CNN at batch 32:
convolution and pool 0.23 -> 0.17 ms, the transposes included).

The rewrite: ``pool(f(conv(x)))`` with ``f`` a chain of pointwise ops becomes
``T_nchw(pool_nhwc(f'(conv_nhwc(T_nhwc(x)))))``, where ``f'`` reads its other operands
transposed the same way (a constant bias folds). It applies when the convolution is short
enough to run directly (``ir.kernel.DIRECT_CONV_MAX_SUM``), has no groups and at least
``MIN_CHANNELS`` output channels (a vector's worth), and when nothing else reads the chain:
then only the input and the pooled result are transposed, and the layout pass removes a
transpose the input already had (a channels-last model's).
"""

from __future__ import annotations

from ..ir.graph import Graph, Node, Value
from ..ir.kernel import DIRECT_CONV_MAX_SUM
from .fusion import POINTWISE
from .rewriter import GraphRewriter

MIN_CHANNELS = 16
TO_NHWC, TO_NCHW = (0, 2, 3, 1), (0, 3, 1, 2)


def channels_last_pools(graph: Graph) -> Graph:
    consumers = graph.consumers()
    outputs = {id(v) for v in graph.outputs}
    chains = [c for n in graph.nodes if (c := _chain(n, consumers, outputs)) is not None]
    if not chains:
        return graph
    member = {id(n): chain for chain in chains for n in chain}
    rw = GraphRewriter(graph, "nhwc")
    nhwc: dict[int, Value] = {}  # chain values (NCHW) -> their NHWC counterparts
    for node in graph.nodes:
        if id(node) not in member:
            rw.copy(node)
        elif node.op == "conv2d":
            x, w = rw.inputs(node)[:2]
            x_t = rw.emit("transpose", [x], {"perm": TO_NHWC}, node.loc)
            attrs = {**node.attrs, "layout": "NHWC"}
            nhwc[id(node.outputs[0])] = rw.emit("conv2d", [x_t, w], attrs, node.loc)
        elif node.op == "max_pool2d":
            attrs = {**node.attrs, "layout": "NHWC"}
            y = rw.emit("max_pool2d", [nhwc[id(node.inputs[0])]], attrs, node.loc)
            rw.bind(node.outputs[0], rw.emit("transpose", [y], {"perm": TO_NCHW}, node.loc))
        else:
            args = [_operand_nhwc(rw, v, nhwc) for v in node.inputs]
            nhwc[id(node.outputs[0])] = rw.emit(node.op, args, node.attrs, node.loc)
    return rw.finish()


def _operand_nhwc(rw: GraphRewriter, v: Value, nhwc: dict[int, Value]) -> Value:
    """A pointwise op's operand in NHWC: the chain's value, a scalar as it is, or another
    operand (broadcast against NCHW) padded to rank 4 and transposed."""
    if id(v) in nhwc:
        return nhwc[id(v)]
    new = rw.value(v)
    if len(v.shape) == 0:
        return new
    if len(v.shape) < 4:
        shape = (1,) * (4 - len(v.shape)) + tuple(v.shape)
        new = rw.emit("reshape", [new], {"shape": shape})
    return rw.emit("transpose", [new], {"perm": TO_NHWC})


def _chain(conv: Node, consumers: dict, outputs: set[int]) -> list[Node] | None:
    """conv2d, its pointwise ops and the max pool that ends them, when the rewrite
    applies; else None."""
    if conv.op != "conv2d" or conv.attrs.get("layout", "NCHW") != "NCHW":
        return None
    w = conv.inputs[1]
    o, cg, kh, kw = w.shape
    if conv.attrs["groups"] != 1 or cg * kh * kw > DIRECT_CONV_MAX_SUM or o < MIN_CHANNELS:
        return None
    chain, v = [conv], conv.outputs[0]
    while True:
        users = consumers.get(v, [])
        if id(v) in outputs or len(users) != 1:
            return None
        user = users[0]
        if user.op == "max_pool2d" and user.attrs["layout"] == "NCHW":
            return chain + [user]
        if user.op not in POINTWISE or len(user.outputs) != 1 or user.outputs[0].shape != v.shape:
            return None
        # the chain's value must be the only operand of the full shape
        if sum(1 for u in user.inputs if u is v) != 1:
            return None
        chain.append(user)
        v = user.outputs[0]
