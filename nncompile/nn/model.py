"""``nn.Sequential``: a stack of layers with Keras' model API (summary, compile, fit,
evaluate, predict, save). This module holds the structure and the forward pass; training
lives in ``fitting.py``, saving in ``saving.py``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..dispatch import name_scope
from ..ir.errors import ConfigError, ShapeError
from ..tensor import Tensor
from .layer import CallContext, Layer, Shape, snake_case

Weights = dict[str, dict[str, np.ndarray]]


class Sequential:
    """Layers applied in order. The first layer's ``input_shape`` (batch excluded) builds
    the model at once; otherwise it is built on the first ``fit``/``predict``/call."""

    def __init__(
        self, layers: Iterable[Layer] | None = None, name: str = "sequential", seed: int = 0
    ):
        self.name = name
        self.seed = seed
        self.layers: list[Layer] = []
        self.built = False
        self.input_shape: Shape | None = None
        self.output_shape: Shape | None = None
        self.trainer = None  # set by compile()
        self._predictor = None  # predict() before compile()
        self.stop_training = False
        for layer in layers or ():
            self.add(layer)

    # -- structure ------------------------------------------------------------------------
    def add(self, layer: Layer) -> None:
        if not isinstance(layer, Layer):
            raise ConfigError(f"Sequential takes nn layers, got {type(layer).__name__}")
        taken = {existing.name for existing in self.layers}
        if layer.name is None:
            base = snake_case(type(layer).__name__)
            layer.name, k = base, 0
            while layer.name in taken:
                k += 1
                layer.name = f"{base}_{k}"
        elif layer.name in taken:
            raise ConfigError(f"two layers are named {layer.name!r}")
        self.layers.append(layer)
        if self.built:  # as in Keras: a built model builds each layer as it is added
            self.output_shape = layer.build(self.output_shape, self._rng)
        elif len(self.layers) == 1 and layer.input_shape is not None:
            self.build(layer.input_shape)

    def build(self, input_shape: Shape) -> None:
        """Create every layer's weights for samples of ``input_shape`` (batch excluded)."""
        if not self.layers:
            raise ConfigError("a Sequential model needs at least one layer")
        self._rng = np.random.default_rng(self.seed)
        shape = self.input_shape = tuple(int(d) for d in input_shape)
        for layer in self.layers:
            shape = layer.build(shape, self._rng)
        self.output_shape = shape
        self.built = True

    def ensure_built(self, x: np.ndarray) -> None:
        if not self.built:
            self.build(np.shape(x)[1:])
        elif tuple(np.shape(x)[1:]) != self.input_shape:
            raise ShapeError(
                f"model {self.name!r} takes samples of shape {self.input_shape}, "
                f"got data of shape {np.shape(x)} (batch first)"
            )

    @property
    def input_dtype(self) -> Any:
        return self.layers[0].input_dtype

    # -- weights --------------------------------------------------------------------------
    def params(self, trainable: bool | None = None) -> Weights:
        """Parameters by layer name (only the trainable or frozen ones when asked)."""
        return {
            layer.name: layer.params
            for layer in self.layers
            if layer.params and (trainable is None or layer.trainable == trainable)
        }

    def state(self) -> Weights:
        """Non-trained arrays the forward pass updates (batch-norm statistics)."""
        return {layer.name: layer.state for layer in self.layers if layer.state}

    def assign(self, params: Weights | None = None, state: Weights | None = None) -> None:
        by_name = {layer.name: layer for layer in self.layers}
        for name, arrays in (params or {}).items():
            by_name[name].params = dict(arrays)
        for name, arrays in (state or {}).items():
            by_name[name].state = dict(arrays)

    def get_weights(self) -> list[np.ndarray]:
        return [a for layer in self.layers for a in layer.get_weights()]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        weights = list(weights)
        expected = sum(len(layer.params) + len(layer.state) for layer in self.layers)
        if len(weights) != expected:
            raise ShapeError(f"set_weights: model has {expected} arrays, got {len(weights)}")
        it = iter(weights)
        # Checked whole before anything is assigned: a bad array leaves the model as it was.
        # C-ordered copies: compiled steps read weights as contiguous buffers.
        assignments = []
        for layer in self.layers:
            for group in (layer.params, layer.state):
                for key, old in group.items():
                    new = np.array(next(it), dtype=old.dtype, order="C")
                    if new.shape != old.shape:
                        raise ShapeError(
                            f"set_weights: {layer.name}/{key} has shape {old.shape}, "
                            f"got {new.shape}"
                        )
                    assignments.append((group, key, new))
        for group, key, new in assignments:
            group[key] = new

    def count_params(self) -> int:
        return sum(layer.param_count + layer.state_count for layer in self.layers)

    # -- forward --------------------------------------------------------------------------
    def apply(
        self,
        params: Weights,
        state: Weights,
        x: Any,
        training: bool = False,
        key: Any = None,
        logits: bool = False,
    ) -> tuple[Tensor, Weights]:
        """The forward pass as a pure function: ``(output, new_state)``. With ``logits``
        the last layer's activation is left out (the loss applies it in a stable form)."""
        ctx = CallContext(training, key, state, {})
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            with name_scope(layer.name):
                x = layer.call(
                    params.get(layer.name, {}), x, ctx, skip_activation=logits and i == last
                )
        new_state = {name: ctx.state_out.get(name, arrays) for name, arrays in state.items()}
        return x, new_state

    def __call__(self, x: Any, training: bool = False) -> Tensor:
        """Eager (or traced) forward pass with the current weights."""
        self.ensure_built(x)
        out, _ = self.apply(self.params(), self.state(), x, training)
        return out

    @property
    def last_activation(self) -> Any:
        return self.layers[-1].activation if self.layers else None

    # -- Keras API ------------------------------------------------------------------------
    def summary(self, print_fn: Callable[[str], Any] | None = print) -> str:
        from .summary import summary_table

        text = summary_table(self)
        if print_fn is not None:
            print_fn(text)
        return text

    def compile(
        self,
        optimizer: Any = "adam",
        loss: Any = None,
        metrics: Iterable[str] | None = None,
        backend: str = "llvm",
        run_eagerly: bool = False,
        threads: int | None = None,
        check: bool | None = None,
    ) -> None:
        """Choose optimizer, loss and metrics; ``backend`` compiles the training and
        inference steps ("llvm", "cuda", "numpy"); ``run_eagerly`` runs them op by op;
        ``check`` compares every compiled buffer with the reference (nc.compile's check)."""
        from .fitting import Trainer

        self.trainer = Trainer(self, optimizer, loss, metrics, backend, run_eagerly, threads, check)

    def _trainer(self):
        if self.trainer is None:
            raise ConfigError("call model.compile(optimizer=..., loss=...) first")
        return self.trainer

    def fit(self, x: Any, y: Any, **kwargs: Any):
        """Train; see ``Trainer.fit`` for the arguments. Returns a ``History``."""
        return self._trainer().fit(x, y, **kwargs)

    def evaluate(self, x: Any, y: Any, **kwargs: Any) -> dict[str, float]:
        return self._trainer().evaluate(x, y, **kwargs)

    def predict(self, x: Any, batch_size: int = 256, verbose: int = 0) -> np.ndarray:
        if self.trainer is None:  # predict works on an uncompiled model, as in Keras
            if self._predictor is None:  # kept, so its compiled graphs are reused
                from .fitting import Trainer

                self._predictor = Trainer(self)
            return self._predictor.predict(x, batch_size, verbose)
        return self.trainer.predict(x, batch_size, verbose)

    def plot(self, path: str = "model.svg", stage: str | None = None) -> str:
        """Draw the layers (Keras' plot_model) or, with ``stage`` ("traced", "optimized",
        "fused"), the compiled training step. Returns what was written."""
        from .plot import plot_model

        return plot_model(self, path, stage)

    def save(self, path: str, include_optimizer: bool = True) -> None:
        from .saving import save_model

        save_model(self, path, include_optimizer)

    def __repr__(self) -> str:
        return f"<Sequential {self.name!r}: {len(self.layers)} layers, built={self.built}>"
