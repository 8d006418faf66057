"""JSON (de)serialization of graphs.

Constants are stored compactly: raw little-endian bytes, zlib-compressed when that
helps, in base64. Loading only parses JSON and validates it field by field; it never
executes code, and every malformed input raises SerializationError.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

import networkx as nx
import numpy as np

from . import dtypes as dt
from . import symbolic
from .errors import NCError, SerializationError
from .graph import Graph
from .registry import get_op
from .types import TensorType, check_shape

FORMAT = "nncompile.graph"
VERSION = 1
_COMPRESS_ABOVE = 256  # bytes; smaller constants are stored raw
_MAX_CONSTANT_BYTES = 1 << 32


def encode_array(a: np.ndarray) -> dict[str, Any]:
    raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
    enc = "raw"
    if len(raw) > _COMPRESS_ABOVE:
        packed = zlib.compress(raw, 6)
        if len(packed) < len(raw):
            raw, enc = packed, "zlib"
    return {
        "dtype": a.dtype.name,
        "shape": list(a.shape),
        "encoding": enc,
        "data": base64.b64encode(raw).decode("ascii"),
    }


def decode_array(obj: Any, where: str) -> np.ndarray:
    if not isinstance(obj, dict) or set(obj) != {"dtype", "shape", "encoding", "data"}:
        raise SerializationError(f"{where}: an array needs exactly dtype, shape, encoding, data")
    try:
        d = dt.from_name(obj["dtype"])
        shape = check_shape(obj["shape"], f"{where} shape")
    except NCError as e:
        raise SerializationError(f"{where}: {e}") from None
    nbytes = TensorType(shape, d).nbytes
    if nbytes > _MAX_CONSTANT_BYTES:
        raise SerializationError(f"{where}: constant of {nbytes} bytes is too large")
    if not isinstance(obj["data"], str):
        raise SerializationError(f"{where}: data must be a base64 string")
    try:
        raw = base64.b64decode(obj["data"].encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as e:
        raise SerializationError(f"{where}: data is not valid base64 ({e})") from None
    if obj["encoding"] == "zlib":
        try:
            inflater = zlib.decompressobj()
            raw = inflater.decompress(raw, nbytes + 1)  # bounded: no decompression bombs
        except zlib.error as e:
            raise SerializationError(f"{where}: corrupt zlib data ({e})") from None
    elif obj["encoding"] != "raw":
        raise SerializationError(f"{where}: unknown encoding {obj['encoding']!r}")
    if len(raw) != nbytes:
        raise SerializationError(
            f"{where}: {len(raw)} data bytes for {d}{list(shape)} ({nbytes} expected)"
        )
    try:
        arr = np.frombuffer(raw, dtype=d.np.newbyteorder("<")).astype(d.np).reshape(shape)
    except ValueError as e:  # e.g. a zero-size shape whose other dims NumPy cannot index
        raise SerializationError(f"{where}: cannot build {d}{list(shape)}: {e}") from None
    if d.is_bool and nbytes and raw.strip(b"\x00\x01"):
        raise SerializationError(f"{where}: bool data must be bytes 0 or 1")
    return arr.copy()


def _encode_attr(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return encode_array(v)
    if isinstance(v, tuple):
        return [symbolic.encode(x) for x in v]  # (a shape may hold the batch size n)
    if isinstance(v, dt.DType):
        return v.name
    return v


def _type_json(t: TensorType) -> dict[str, Any]:
    return {"shape": [symbolic.encode(d) for d in t.shape], "dtype": t.dtype.name}


def _decode_sizes(items: list) -> list:
    """A JSON shape: ints, and "a*n+b" strings for sizes that depend on the batch size
    (anything else is left for the shape check to refuse)."""
    sizes = [symbolic.decode(x) if isinstance(x, str) else x for x in items]
    return [x if d is None else d for x, d in zip(items, sizes, strict=True)]


def graph_to_json(graph: Graph, indent: int | None = None) -> str:
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "name": graph.name,
        "inputs": [{"name": v.name, **_type_json(v.type)} for v in graph.inputs],
        "nodes": [
            {
                "name": n.name,
                "op": n.op,
                "inputs": [v.name for v in n.inputs],
                "attrs": {k: _encode_attr(v) for k, v in n.attrs.items()},
                "outputs": [{"name": v.name, **_type_json(v.type)} for v in n.outputs],
                "loc": n.loc,
                **({"scope": n.scope} if n.scope else {}),
            }
            for n in graph.nodes
        ],
        "outputs": [v.name for v in graph.outputs],
        "in_tree": graph.in_tree,
        "out_tree": graph.out_tree,
    }
    return json.dumps(doc, indent=indent, allow_nan=True)


# ---- loading ---------------------------------------------------------------------------


def _field(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise SerializationError(f"{where}: missing field {key!r}")
    v = obj[key]
    if not isinstance(v, kind) or isinstance(v, bool) and kind is not bool:
        raise SerializationError(f"{where}: field {key!r} has the wrong type ({type(v).__name__})")
    if key == "name" and not v:
        raise SerializationError(f"{where}: names must not be empty")
    return v


def _decode_type(obj: Any, where: str) -> TensorType:
    try:
        return TensorType(
            check_shape(_decode_sizes(_field(obj, "shape", list, where)), f"{where} shape"),
            dt.from_name(_field(obj, "dtype", str, where)),
        )
    except NCError as e:
        raise SerializationError(f"{where}: {e}") from None


def _decode_attrs(op: str, attrs: Any, where: str) -> dict[str, Any]:
    if not isinstance(attrs, dict):
        raise SerializationError(f"{where}: attrs must be an object")
    specs = get_op(op).attrs
    out = {}
    for k, v in attrs.items():
        if k in specs and specs[k].kind == "array":
            out[k] = decode_array(v, f"{where} attribute {k!r}")
        elif k in specs and specs[k].kind == "ints" and isinstance(v, list):
            out[k] = _decode_sizes(v)
        else:
            out[k] = v  # checked and canonicalized by the op's schema in add_node
    return out


def graph_from_json(text: str | bytes) -> Graph:
    try:
        doc = json.loads(text)
    except (ValueError, TypeError, RecursionError) as e:
        raise SerializationError(f"not valid JSON: {type(e).__name__}: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SerializationError(f"not an nncompile graph (expected format {FORMAT!r})")
    version = doc.get("version")
    if type(version) is not int or version != VERSION:
        raise SerializationError(f"unsupported graph version {version!r}")
    g = Graph(_field(doc, "name", str, "graph"))
    raw_inputs = _field(doc, "inputs", list, "graph")
    raw_nodes = _field(doc, "nodes", list, "graph")
    raw_outputs = _field(doc, "outputs", list, "graph")

    producer: dict[str, int] = {}  # value name -> node index, -1 for graph inputs
    for i, obj in enumerate(raw_inputs):
        name = _field(obj, "name", str, f"input {i}")
        if name in producer:
            raise SerializationError(f"duplicate value name {name!r}")
        producer[name] = -1
    for i, obj in enumerate(raw_nodes):
        where = f"node {i}"
        _field(obj, "name", str, where)
        op = _field(obj, "op", str, where)
        try:
            get_op(op)
        except NCError as e:
            raise SerializationError(f"{where} ({obj['name']}): {e}") from None
        for j, name in enumerate(_field(obj, "inputs", list, where)):
            if not isinstance(name, str):
                raise SerializationError(f"{where}: input {j} is not a value name")
        for j, out in enumerate(_field(obj, "outputs", list, where)):
            name = _field(out, "name", str, f"{where} output {j}")
            if name in producer:
                raise SerializationError(f"duplicate value name {name!r}")
            producer[name] = i

    # Dangling inputs and cycles, reported by name before anything is built.
    deps = nx.DiGraph()
    deps.add_nodes_from(range(len(raw_nodes)))
    for i, obj in enumerate(raw_nodes):
        for name in obj["inputs"]:
            if name not in producer:
                raise SerializationError(f"node {obj['name']!r} reads undefined value {name!r}")
            if producer[name] >= 0:
                deps.add_edge(producer[name], i)
    if not nx.is_directed_acyclic_graph(deps):
        cycle = nx.find_cycle(deps)
        names = " -> ".join(raw_nodes[a]["name"] for a, _ in cycle)
        raise SerializationError(f"graph has a cycle: {names} -> {raw_nodes[cycle[0][0]]['name']}")

    values = {}
    for i, obj in enumerate(raw_inputs):
        values[obj["name"]] = g.add_input(_decode_type(obj, f"input {i}"), obj["name"])
    for i in nx.lexicographical_topological_sort(deps):
        obj = raw_nodes[i]
        where = f"node {obj['name']!r} ({obj['op']})"
        recorded = [_decode_type(o, f"{where} output {j}") for j, o in enumerate(obj["outputs"])]
        loc = obj.get("loc")
        if loc is not None and not isinstance(loc, str):
            raise SerializationError(f"{where}: loc must be a string or null")
        scope = obj.get("scope", "")
        if not isinstance(scope, str):
            raise SerializationError(f"{where}: scope must be a string")
        try:
            node = g.add_node(
                obj["op"],
                [values[n] for n in obj["inputs"]],
                _decode_attrs(obj["op"], obj.get("attrs", {}), where),
                name=obj["name"],
                loc=loc,
                output_names=[o["name"] for o in obj["outputs"]],
                scope=scope,
            )
        except NCError as e:
            raise SerializationError(f"{where}: {e}") from None
        for v, t in zip(node.outputs, recorded, strict=True):
            if v.type != t:
                raise SerializationError(
                    f"{where}: output {v.name!r} is recorded as {t} but the op gives {v.type}"
                )
            values[v.name] = v
    outs = []
    for j, name in enumerate(raw_outputs):
        if not isinstance(name, str) or name not in values:
            raise SerializationError(f"graph output {j} names undefined value {name!r}")
        outs.append(values[name])
    g.set_outputs(outs)
    g.in_tree = doc.get("in_tree")
    g.out_tree = doc.get("out_tree")
    try:
        g.verify()
    except NCError as e:
        raise SerializationError(f"loaded graph is invalid: {e}") from None
    return g
