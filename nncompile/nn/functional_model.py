"""``nn.Model``: Keras' functional API and model subclassing.

Functional: ``Model(inputs, outputs)`` walks the layer calls recorded on symbolic tensors
(``nn/symbolic.py``) back from the outputs, keeps the calls in topological order, and
``apply`` replays them on arrays or Tensors with the params it is given, a pure function
like ``Sequential.apply``. A layer called twice (shared) keeps one set of weights.

Subclassed: ``class M(nn.Model)`` sets layers as attributes in ``__init__`` (tracked in
assignment order, as Keras does) and defines ``call(x, training=False)``. The model is
built on its first data (a trace of ``call`` that builds each layer as it is reached);
``apply`` runs ``call`` with an ``ApplyScope`` active, so every layer call inside it takes
its params from ``apply``'s arguments, not from the layer.
"""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import numpy as np

from ..dispatch import name_scope
from ..functional import activation
from ..ir.errors import ConfigError, ShapeError
from ..tensor import Tensor
from .base_model import BaseModel, Weights, _pick, check_layer_names
from .layer import CallContext, Layer, Shape
from .symbolic import ApplyScope, InputLayer, KerasTensor, Node, applying


def _flatten_io(value: Any, what: str) -> tuple[list[KerasTensor], list[str] | None, bool]:
    """(tensors, dict keys or None, single) of a model's ``inputs`` / ``outputs``."""
    if isinstance(value, KerasTensor):
        return [value], None, True
    if isinstance(value, dict):
        keys, tensors = list(value), list(value.values())
    elif isinstance(value, (list, tuple)):
        keys, tensors = None, list(value)
    else:
        raise ConfigError(
            f"Model {what} must be symbolic tensors (nn.Input, or layers called on them): "
            f"one, a list or a dict, got {type(value).__name__}"
        )
    if not tensors:
        raise ConfigError(f"Model {what}: none given")
    for t in tensors:
        if not isinstance(t, KerasTensor):
            raise ConfigError(
                f"Model {what} must be symbolic tensors (nn.Input, or layers called on "
                f"them), got {type(t).__name__}"
            )
    return tensors, keys, False


def _topological_nodes(outputs: list[KerasTensor]) -> list[Node]:
    """The layer calls the outputs depend on, each after the calls it takes inputs from
    (an iterative depth-first walk: deep models do not hit Python's recursion limit)."""
    order: list[Node] = []
    done: set[int] = set()
    for out in outputs:
        stack: list[tuple[Node, bool]] = [(out.node, False)]
        while stack:
            node, expanded = stack.pop()
            if id(node) in done:
                continue
            if expanded:
                done.add(id(node))
                order.append(node)
                continue
            stack.append((node, True))
            for t in reversed(node.inputs):
                if id(t.node) not in done:
                    stack.append((t.node, False))
    return order


def _accepts_training(fn: Any) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "training" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class Model(BaseModel):
    """``Model(inputs, outputs, name=...)`` (functional), or subclass it and define
    ``call`` (see the module docstring)."""

    def __init__(
        self,
        inputs: Any = None,
        outputs: Any = None,
        name: str | None = None,
        seed: int = 0,
    ):
        self._init_model(name or ("model" if type(self) is Model else _snake(type(self))), seed)
        self._graph = inputs is not None or outputs is not None
        if not self._graph:
            self.__dict__.setdefault("_tracked", [])
            self._single_in = self._single_out = True
            self._n_inputs = self._n_outputs = 1
            self.input_shape = self.output_shape = None
            self._shapes_in: list[Shape] = []
            self._shapes_out: list[Shape] = []
            self._dtypes_in: list[Any] = []
            return
        if inputs is None or outputs is None:
            raise ConfigError("Model(inputs, outputs): give both, or subclass Model")
        self._inputs, self._input_keys, self._single_in = _flatten_io(inputs, "inputs")
        self._outputs, self._output_keys, self._single_out = _flatten_io(outputs, "outputs")
        for t in self._inputs:
            if not isinstance(t.layer, InputLayer):
                raise ConfigError(
                    f"Model inputs must be nn.Input tensors; {t!r} is made by layer "
                    f"{t.layer.name or type(t.layer).__name__}"
                )
        if len({id(t) for t in self._inputs}) != len(self._inputs):
            raise ConfigError("Model inputs: one Input is given twice")
        nodes = _topological_nodes(self._outputs)
        given = {id(t.node) for t in self._inputs}
        check_layer_names([t.layer for t in self._inputs])
        for node in nodes:
            if isinstance(node.layer, InputLayer) and id(node) not in given:
                check_layer_names([t.layer for t in self._inputs] + [node.layer])
                raise ConfigError(
                    f"model {self.name!r}: the outputs need Input {node.layer.name!r}, which "
                    f"is not among the model's inputs {[t.name for t in self._inputs]}"
                )
        used = {id(node) for node in nodes}
        unused = [t.name for t in self._inputs if id(t.node) not in used]
        if unused:  # Keras keeps them (the data must still be given) and warns
            warnings.warn(
                f"model {self.name!r}: inputs {unused} are not connected to the outputs",
                stacklevel=2,
            )
        self._nodes = [n for n in nodes if not isinstance(n.layer, InputLayer)]
        layers: list[Layer] = [t.layer for t in self._inputs]
        for node in self._nodes:
            if node.layer not in layers:
                if isinstance(node.layer, Model):
                    raise NotImplementedError("a Model used as a layer of another model")
                layers.append(node.layer)
        check_layer_names(layers)
        self.layers = layers
        self.built = True
        self.input_shape = self._inputs[0].sample_shape if self._single_in else None
        self.output_shape = self._outputs[0].sample_shape if self._single_out else None

    # -- subclassing: layers set as attributes are tracked ---------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        tracked = self.__dict__.setdefault("_tracked", [])
        if name == "layers" or name.startswith("_"):  # the model's own bookkeeping
            object.__setattr__(self, name, value)
            return
        candidates = value if isinstance(value, (list, tuple)) else [value]
        for item in candidates:
            if isinstance(item, BaseModel):
                raise NotImplementedError(
                    f"a Model ({type(item).__name__}) as an attribute of a subclassed model "
                    "(nested models)"
                )
            if isinstance(item, Layer) and not any(item is t for t in tracked):
                tracked.append(item)
        object.__setattr__(self, name, value)

    def call(self, inputs: Any, training: bool = False) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__}: a Model without inputs/outputs must be subclassed and "
            "define call(self, inputs, training=False)"
        )

    def build(self, input_shape: Any) -> None:
        """Build a subclassed model for samples of ``input_shape`` (a list of shapes for
        several inputs): ``call`` is traced once, each layer built as it is reached."""
        if self._graph:
            return
        from ..tracing import trace

        shapes = input_shape if _is_shape_list(input_shape) else [input_shape]
        self._single_in = not _is_shape_list(input_shape)
        self._shapes_in = [tuple(int(d) for d in s) for s in shapes]
        if not self._dtypes_in:
            self._dtypes_in = [np.float32] * len(shapes)
        examples = [
            np.broadcast_to(np.zeros((), d), (1, *s))
            for s, d in zip(self._shapes_in, self._dtypes_in, strict=True)
        ]
        example = examples[0] if self._single_in else examples
        rng = np.random.default_rng(self.seed)
        scope = ApplyScope({}, CallContext(False, None, {}, {}), True, rng, self._track_use)
        check_layer_names(self._tracked)

        def probe(x: Any) -> Any:
            with applying(scope):
                return self._run_call(x, False)

        graph = trace(probe, example)
        self._single_out = not self._returned_list
        self._shapes_out = [tuple(v.shape[1:]) for v in graph.outputs]
        self.layers = [layer for layer in self._tracked if layer.built]
        for layer in scope.used:  # layers reached but not set as attributes
            if not any(layer is known for known in self.layers):
                self.layers.append(layer)
        check_layer_names(self.layers)
        self.input_shape = self._shapes_in[0] if self._single_in else None
        self.output_shape = self._shapes_out[0] if self._single_out else None
        self.built = True

    def _track_use(self, layer: Layer) -> None:
        if layer.name is None:
            check_layer_names([*self._tracked, layer])

    def _run_call(self, x: Any, training: bool) -> Any:
        out = self.call(x, training=training) if _accepts_training(self.call) else self.call(x)
        self._returned_list = isinstance(out, (list, tuple))
        if isinstance(out, dict):
            raise NotImplementedError(f"{type(self).__name__}.call returning a dict")
        return out

    # -- inputs and outputs ---------------------------------------------------------------
    @property
    def input_names(self) -> list[str]:
        if self._graph:
            return [t.name for t in self._inputs]
        return [f"input_{i}" for i in range(len(self._shapes_in) or 1)]

    @property
    def input_shapes(self) -> list[Shape]:
        return [t.sample_shape for t in self._inputs] if self._graph else list(self._shapes_in)

    @property
    def input_dtypes(self) -> list[Any]:
        if self._graph:
            return [t.layer.input_dtype for t in self._inputs]
        return list(self._dtypes_in) if self.built else []  # unbuilt: the data's kind

    @property
    def input_dtype(self) -> Any:
        return (self.input_dtypes or [np.float32])[0]

    @property
    def single_input(self) -> bool:
        return self._single_in

    @property
    def output_names(self) -> list[str]:
        if self._graph:
            return self._output_keys or [t.name for t in self._outputs]
        n = len(self._shapes_out) or 1
        return ["output"] if n == 1 else [f"output_{i}" for i in range(n)]

    @property
    def output_shapes(self) -> list[Shape]:
        return [t.sample_shape for t in self._outputs] if self._graph else list(self._shapes_out)

    @property
    def output_activations(self) -> list[Any]:
        if self._graph:
            return [t.layer.activation for t in self._outputs]
        return [None] * len(self._shapes_out)  # call's last step is not known

    @property
    def last_activation(self) -> Any:
        return self.output_activations[0] if self.output_activations else None

    @property
    def single_output(self) -> bool:
        return self._single_out

    @property
    def inputs(self) -> list[KerasTensor]:
        self._require_graph("inputs")
        return list(self._inputs)

    @property
    def outputs(self) -> list[KerasTensor]:
        self._require_graph("outputs")
        return list(self._outputs)

    def _require_graph(self, what: str) -> None:
        if not self._graph:
            raise ConfigError(f"{what}: a subclassed model has no symbolic {what}")

    def input_list(self, x: Any) -> list[Any]:
        names = self.input_names
        if self._graph and isinstance(x, dict):
            keys = self._input_keys or names
            return _pick(x, keys, "inputs")
        if isinstance(x, dict):
            raise NotImplementedError("dict inputs to a subclassed model")
        multi = self._graph and not self._single_in
        if isinstance(x, (list, tuple)) and (multi or (not self._graph and not self.built)):
            if not self._graph:  # a subclassed model learns its input structure from data
                return list(x)
            if len(x) != len(names):
                raise ConfigError(
                    f"model {self.name!r} takes {len(names)} inputs {names}, got {len(x)} arrays"
                )
            return list(x)
        if multi:
            raise ConfigError(
                f"model {self.name!r} takes {len(names)} inputs {names}: give a list or a dict "
                "by input name, got one array"
            )
        if not self._graph and self.built and not self._single_in:
            if not isinstance(x, (list, tuple)) or len(x) != len(self._shapes_in):
                raise ConfigError(
                    f"model {self.name!r} takes {len(self._shapes_in)} inputs, got "
                    f"{len(x) if isinstance(x, (list, tuple)) else 'one array'}"
                )
            return list(x)
        if isinstance(x, (list, tuple)) and len(x) == 1 and isinstance(x[0], np.ndarray):
            return [x[0]]
        return [x]

    def pack_inputs(self, xs: list[Any]) -> Any:
        if not self._graph and not self.built:
            return xs[0] if len(xs) == 1 and self._single_in else list(xs)
        return xs[0] if self._single_in else list(xs)

    def pack_outputs(self, outs: list[Any]) -> Any:
        if self._single_out:
            return outs[0]
        if self._graph and self._output_keys:
            return dict(zip(self._output_keys, outs, strict=True))
        return list(outs)

    def ensure_built(self, x: Any) -> None:
        xs = x if isinstance(x, (list, tuple)) else [x]
        if not self.built:
            if not self._graph and isinstance(x, (list, tuple)):
                self._single_in = False
            self._dtypes_in = [np.asarray(a).dtype.type for a in xs]
            shapes = [tuple(np.shape(a))[1:] for a in xs]
            self.build(shapes[0] if len(shapes) == 1 and self._single_in else shapes)
            return
        want = self.input_shapes
        got = [tuple(np.shape(a))[1:] for a in xs]
        if len(got) != len(want):
            raise ConfigError(f"model {self.name!r} takes {len(want)} inputs, got {len(got)}")
        for name, w, g, a in zip(self.input_names, want, got, xs, strict=True):
            if w != g:
                raise ShapeError(
                    f"model {self.name!r}: input {name!r} takes samples of shape {w}, got data "
                    f"of shape {np.shape(a)} (batch first)"
                )

    # -- forward --------------------------------------------------------------------------
    def apply(
        self,
        params: Weights,
        state: Weights,
        x: Any,
        training: bool = False,
        key: Any = None,
        logits: Any = False,
    ) -> tuple[Any, Weights]:
        """The forward pass as a pure function: ``(outputs, new_state)``; ``x`` is one array
        or a list in the model's input order. ``logits`` (one flag, or one per output)
        leaves out an output layer's activation (the loss applies it in a stable form)."""
        ctx = CallContext(training, key, state, {})
        if self._graph:
            outs = self._replay(params, self.input_list(x), ctx, logits)
        else:
            if not self.built:
                raise ConfigError(f"model {self.name!r} is not built: call it on data first")
            scope = ApplyScope(params, ctx)
            with applying(scope):
                out = self._run_call(x, training)
            outs = list(out) if isinstance(out, (list, tuple)) else [out]
        new_state = {name: ctx.state_out.get(name, arrays) for name, arrays in state.items()}
        return (outs[0] if self._single_out else outs), new_state

    def _replay(self, params: Weights, xs: list[Any], ctx: CallContext, logits: Any) -> list:
        if len(xs) != len(self._inputs):
            raise ConfigError(f"model {self.name!r} takes {len(self._inputs)} inputs")
        flags = logits if isinstance(logits, (list, tuple)) else [logits] * len(self._outputs)
        as_logits = {id(t) for t, f in zip(self._outputs, flags, strict=True) if f}
        values: dict[int, Any] = {id(t): v for t, v in zip(self._inputs, xs, strict=True)}
        pre_activation: dict[int, Tensor] = {}
        for node in self._nodes:
            layer = node.layer
            args = [values[id(t)] for t in node.inputs]
            x = args if node.packed else args[0]
            p = params.get(layer.name, {})
            with name_scope(layer.name):
                if id(node.output) in as_logits and layer.activation is not None:
                    z = layer.call(p, x, ctx, skip_activation=True)
                    pre_activation[id(node.output)] = z
                    y = activation(z, layer.activation)  # for layers that read it
                else:
                    y = layer.call(p, x, ctx)
            values[id(node.output)] = y
        return [pre_activation.get(id(t), values[id(t)]) for t in self._outputs]

    # -- the graph, for summary / plot / save ---------------------------------------------
    def layer_calls(self, layer: Layer) -> list[Node]:
        """``layer``'s calls in this model, in the order they were made (a shared layer's
        node index is its position here, as in Keras)."""
        mine = {id(n) for n in self._nodes} | {id(t.node) for t in self._inputs}
        return [n for n in getattr(layer, "_nodes", ()) if id(n) in mine]

    def node_indices(self) -> dict[int, int]:
        """Each recorded call's node index, by id of the node."""
        self._require_graph("the layer graph")
        return {id(n): i for layer in self.layers for i, n in enumerate(self.layer_calls(layer))}

    def inbound(self) -> dict[str, list[list[tuple[str, int, int]]]]:
        """Per layer name: each of its calls in this model (in node index order) as the
        (layer, node index, tensor index) of every input it took."""
        index = self.node_indices()
        return {
            layer.name: [
                [(t.layer.name, index[id(t.node)], 0) for t in node.inputs]
                for node in self.layer_calls(layer)
                if node.inputs
            ]
            for layer in self.layers
        }

    def tensor_ref(self, t: KerasTensor) -> tuple[str, int, int]:
        return (t.layer.name, self.node_indices()[id(t.node)], 0)

    @property
    def is_graph_network(self) -> bool:
        return self._graph

    @property
    def node_list(self) -> list[Node]:
        self._require_graph("the layer graph")
        return list(self._nodes)


def _is_input_node(node: Node, model: Model) -> bool:
    return any(node is t.node for t in model._inputs)


def _is_shape_list(shape: Any) -> bool:
    return isinstance(shape, list) and all(isinstance(s, (list, tuple)) for s in shape)


def _snake(cls: type) -> str:
    from .layer import snake_case

    return snake_case(cls.__name__)
