"""``nc.onnx.check(model)``: which nodes of a model nncompile can run, and why not.

A node is unsupported when no converter exists for its op, or when its converter refuses
the node's attributes or inputs. The second kind shows only when the node is converted,
so the check is a dry run: the graph is traced (nothing computed) on inputs of the
declared shapes (named sizes taken as 1), one node at a time, so every node is reported
and not only the first failure. Inputs are zero-stride views: a declared size of 10^12
allocates nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..tensor import Tensor, as_tensor
from ..tracing import trace
from .dependency import require_onnx
from .errors import UnsupportedError
from .executor import GraphRunner
from .function import InputSpec, _spec
from .model_file import (
    DEFAULT_DOMAINS,
    check_declarations,
    default_opset,
    node_name,
    ordered_nodes,
    read_model,
)
from .narrow import container_of, value_dtypes
from .registry import CONVERTERS
from .tensors import tensor_to_array

# statuses: the first two are fine
OK_STATUSES = ("supported", "folds")
STATUSES = OK_STATUSES + ("unsupported", "error", "unreached", "unchecked")


@dataclass(frozen=True)
class NodeCheck:
    """One node: ``status`` is supported, folds (computed once from constants while
    importing), unsupported, error (its converter failed otherwise), unreached (it reads
    a value an unsupported node makes) or unchecked (no dry run was possible)."""

    name: str
    op_type: str
    domain: str
    opset: int
    status: str
    reason: str = ""


@dataclass
class CheckReport:
    nodes: list[NodeCheck] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # about the model, not one node

    @property
    def supported(self) -> bool:
        return not self.problems and all(n.status in OK_STATUSES for n in self.nodes)

    def unsupported_ops(self) -> list[str]:
        return sorted({n.op_type for n in self.nodes if n.status not in OK_STATUSES})

    def __str__(self) -> str:
        verdict = "supported" if self.supported else "NOT supported"
        lines = [f"ONNX model: {len(self.nodes)} nodes, {verdict}"]
        lines += [f"  model: {p}" for p in self.problems]
        if self.nodes:
            width = min(max(len(n.name) for n in self.nodes), 40)
            op_width = max(max(len(n.op_type) for n in self.nodes), 7)
            lines.append(f"  {'node':<{width}}  {'op':<{op_width}}  opset  status       why")
            for n in self.nodes:
                op = n.op_type if n.domain in DEFAULT_DOMAINS else f"{n.domain}.{n.op_type}"
                lines.append(
                    f"  {n.name[:width]:<{width}}  {op:<{op_width}}  {n.opset:>5}  "
                    f"{n.status:<11}  {n.reason}".rstrip()
                )
        return "\n".join(lines)


def check(source: Any) -> CheckReport:
    """Check a model (path, bytes or onnx.ModelProto) node by node. A file that cannot be
    read at all (not a protobuf, inconsistent tensors, cycles) raises as ``load`` does."""
    onnx = require_onnx()
    model, size = read_model(source)
    graph = model.graph
    report = CheckReport()
    versions = {o.domain: int(o.version) for o in model.opset_import}
    try:
        opset = default_opset(model)
    except UnsupportedError as e:
        report.problems.append(str(e))
        opset = max((v for d, v in versions.items() if d in DEFAULT_DOMAINS), default=0)
    if model.functions:
        names = [f.name for f in model.functions][:5]
        report.problems.append(f"model-local functions are not supported: {names}")
    if graph.sparse_initializer:
        report.problems.append("sparse initializers are not supported")
    check_declarations(graph)
    arrays = {t.name: tensor_to_array(t, "initializer") for t in graph.initializer}
    specs: list[InputSpec] = []
    for vi in graph.input:
        if vi.name in arrays:
            continue
        try:
            specs.append(_spec(vi, onnx))
        except UnsupportedError as e:
            report.problems.append(str(e))
    foreign = [n for n in graph.node if n.domain not in DEFAULT_DOMAINS]
    if foreign:
        # the graph cannot be ordered (ordered_nodes refuses other domains): a static report
        for i, n in enumerate(graph.node):
            report.nodes.append(_static(n, node_name(n, i), opset, versions))
        return report
    order = ordered_nodes(graph, set(arrays) | {vi.name for vi in graph.input})
    no_shape = [s.name for s in specs if s.shape is None]
    for s in specs:
        try:
            _dry_input(s)
        except ValueError as e:  # more elements than an array can have
            report.problems.append(f"graph input {s.name!r}: shape {s.shape}: {e}")
    if report.problems or no_shape:
        why = f"inputs {no_shape} have no declared shape" if no_shape else "model problems above"
        for i, n in enumerate(order):
            node = _static(n, node_name(n, i), opset, versions)
            if node.status == "supported":
                node = NodeCheck(node.name, n.op_type, "", opset, "unchecked", f"no dry run: {why}")
            report.nodes.append(node)
        return report
    report.nodes = _dry_run(order, arrays, specs, opset, size, value_dtypes(model))
    return report


def _static(node: Any, name: str, opset: int, versions: dict[str, int]) -> NodeCheck:
    if node.domain not in DEFAULT_DOMAINS:
        return NodeCheck(
            name,
            node.op_type,
            node.domain,
            versions.get(node.domain, 0),
            "unsupported",
            f"domain {node.domain!r} (only the default ONNX domain)",
        )
    conv = CONVERTERS.get(node.op_type)
    if conv is None:
        return NodeCheck(name, node.op_type, "", opset, "unsupported", "no converter")
    if opset < conv.since:
        why = f"converter from opset {conv.since}"
        return NodeCheck(name, node.op_type, "", opset, "unsupported", why)
    return NodeCheck(name, node.op_type, "", opset, "supported")


def _dry_input(spec: InputSpec) -> np.ndarray:
    shape = tuple(d if isinstance(d, int) else 1 for d in spec.shape or ())
    # zero strides: no allocation; narrow integer types in their container (narrow.py)
    return np.broadcast_to(np.zeros((), container_of(spec.dtype)), shape)


def _dry_run(
    order: list[Any],
    arrays: dict[str, np.ndarray],
    specs: list[InputSpec],
    opset: int,
    size: int,
    dtypes: dict[str, np.dtype],
) -> list[NodeCheck]:
    from .function import PARAM_DTYPES, _data_initializers

    trained = _data_initializers(order, arrays)
    runner = GraphRunner(opset, size, dtypes)
    results: list[NodeCheck] = []

    def run(*inputs: Tensor) -> Any:
        scope: dict[str, Any] = {}
        for k, a in arrays.items():  # parameters are data, as in apply: never folded
            scope[k] = as_tensor(a) if k in trained and a.dtype in PARAM_DTYPES else a
        scope.update(zip([s.name for s in specs], inputs, strict=True))
        blocked: dict[str, str] = {}  # value -> the unsupported node it comes from
        for index, node in enumerate(order):
            name = node_name(node, index)
            cause = next((blocked[i] for i in node.input if i in blocked), None)
            if cause is not None:
                status, why = "unreached", f"reads {cause}'s output"
                if node.op_type not in CONVERTERS:
                    status, why = "unsupported", "no converter"
                results.append(_result(node, name, opset, status, why))
                blocked.update({o: cause for o in node.output if o})
                continue
            try:
                folded = runner.run_node(node, name, scope)
            except UnsupportedError as e:
                why = "no converter" if node.op_type not in CONVERTERS else _reason(e, name)
                results.append(_result(node, name, opset, "unsupported", why))
            except Exception as e:  # noqa: BLE001  (a converter's failure is reported)
                results.append(_result(node, name, opset, "error", f"{type(e).__name__}: {e}"))
            else:
                results.append(_result(node, name, opset, "folds" if folded else "supported"))
                continue
            blocked.update({o: name for o in node.output if o})
        return inputs[0] if inputs else as_tensor(np.zeros((), np.float32))

    trace(run, *[_dry_input(s) for s in specs], name="onnx_check")
    return results


def _result(node: Any, name: str, opset: int, status: str, reason: str = "") -> NodeCheck:
    return NodeCheck(name, node.op_type, "", opset, status, reason[:300])


def _reason(e: UnsupportedError, name: str) -> str:
    """The message without the 'ONNX node 'x' (Op, opset n): ' prefix the table shows."""
    text = str(e)
    head, sep, rest = text.partition("): ")
    return rest if sep and name in head else text
