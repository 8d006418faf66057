"""What every Keras-style model shares (``Sequential`` and ``Model``): weights gathered
from its layers by layer name, and the Keras API (summary, compile, fit, evaluate,
predict, save, plot) on top of a pure ``apply``. A model describes its inputs and outputs
(names, shapes, dtypes, last activations) so that the ``Trainer`` handles one or several
of each the same way."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from ..ir.errors import ConfigError, ShapeError
from .layer import Layer, Shape

Weights = dict[str, dict[str, np.ndarray]]


class BaseModel:
    """Subclasses set ``layers`` (each layer once) and implement ``apply``,
    ``ensure_built`` and the input/output description below."""

    def _init_model(self, name: str, seed: int) -> None:
        self.name = name
        self.seed = seed
        self.layers: list[Layer] = []
        self.built = False
        self.trainer = None  # set by compile()
        self._predictor = None  # predict() before compile()
        self.stop_training = False

    # -- inputs and outputs (one each unless a subclass says otherwise) --------------------
    @property
    def input_names(self) -> list[str]:
        return ["input"]

    @property
    def input_shapes(self) -> list[Shape]:
        return [self.input_shape]

    @property
    def input_dtypes(self) -> list[Any]:
        return [self.input_dtype]

    @property
    def single_input(self) -> bool:
        """``apply`` takes one array (not a list of them)."""
        return True

    @property
    def output_names(self) -> list[str]:
        return [self.layers[-1].name] if self.layers else ["output"]

    @property
    def output_shapes(self) -> list[Shape]:
        return [self.output_shape]

    @property
    def output_activations(self) -> list[Any]:
        return [self.last_activation]

    @property
    def single_output(self) -> bool:
        """``apply`` returns one Tensor (not a list of them)."""
        return True

    def input_list(self, x: Any) -> list[Any]:
        """The data for each input, in the model's input order."""
        return [x]

    def pack_inputs(self, xs: list[Any]) -> Any:
        return xs[0] if self.single_input else list(xs)

    def label_list(self, y: Any) -> list[Any]:
        """The targets of each output, in the model's output order: a list or tuple (one
        per output) or a dict by output name for several outputs."""
        names = self.output_names
        if self.single_output:
            if isinstance(y, dict):
                return [_pick(y, names, "targets")[0]]
            return [y]
        if isinstance(y, dict):
            return _pick(y, names, "targets")
        if len(names) == 1 and not isinstance(y, (list, tuple)):
            return [y]  # one output given in a list or dict: one array is unambiguous
        if not isinstance(y, (list, tuple)) or len(y) != len(names):
            got = f"{len(y)} arrays" if isinstance(y, (list, tuple)) else "one array"
            raise ConfigError(
                f"model {self.name!r} has {len(names)} outputs {names}: give their targets "
                f"as a list or a dict by output name, got {got}"
            )
        return list(y)

    def pack_outputs(self, outs: list[Any]) -> Any:
        """What ``predict`` returns: one array, a list, or a dict by output name."""
        return outs[0] if self.single_output else list(outs)

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

    def get_layer(self, name: str | None = None, index: int | None = None) -> Layer:
        """A layer by name (or by position in ``layers``)."""
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ConfigError(
            f"model {self.name!r} has no layer {name!r}; it has {[la.name for la in self.layers]}"
        )

    def save_weights(self, path: str) -> None:
        """The weights alone, as one .npz keyed ``layer/array`` (any model, subclassed too)."""
        from .weights_file import save_weights

        save_weights(self, path)

    def load_weights(self, path: str) -> None:
        """Weights saved by ``save_weights`` into this (built) model; every name and shape
        is checked before any is assigned."""
        from .weights_file import load_weights

        load_weights(self, path)

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
        raise NotImplementedError(f"{type(self).__name__}.apply")

    def ensure_built(self, x: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__}.ensure_built")

    def __call__(self, x: Any, training: bool = False) -> Any:
        """Eager (or traced) forward pass with the current weights."""
        from .symbolic import KerasTensor

        parts = x if isinstance(x, (list, tuple)) else [x]
        if any(isinstance(t, KerasTensor) for t in parts):
            raise NotImplementedError(
                f"calling {type(self).__name__} {self.name!r} on symbolic tensors (a model "
                "used as a layer of another functional model)"
            )
        self.ensure_built(x)
        out, _ = self.apply(self.params(), self.state(), x, training)
        return out

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
        metrics: Any = None,
        backend: str = "llvm",
        run_eagerly: bool = False,
        threads: int | None = None,
        check: bool | None = None,
        loss_weights: Any = None,
        distributed: bool = False,
        dynamic_batch: bool | None = None,
        matmul_precision: str | None = None,
    ) -> None:
        """Choose optimizer, loss and metrics; ``backend`` compiles the training and
        inference steps ("llvm", "cuda", "numpy"); ``run_eagerly`` runs them op by op;
        ``check`` compares every compiled buffer with the reference (nc.compile's check).
        With several outputs, ``loss``, ``metrics`` and ``loss_weights`` may be lists (one
        entry per output) or dicts by output name; the loss minimized is the weighted sum.
        ``distributed=True`` trains data-parallel over the MPI world (nncompile.distributed:
        fit's batch_size is per rank, gradients are averaged across ranks).
        ``dynamic_batch`` (default: on) compiles each step once for every
        batch size (nc.compile's dynamic_batch): a ragged last batch, ``evaluate`` and
        ``predict`` on any number of rows reuse it, with no padding.
        ``matmul_precision="bf16"`` trains in mixed precision: matmul and convolution
        operands rounded to bfloat16, float32 sums, float32 weights, optimizer state,
        losses and everything else (nc.compile's matmul_precision)."""
        from .fitting import Trainer

        kind = Trainer
        if distributed:
            from ..distributed.trainer import DistributedTrainer

            kind = DistributedTrainer
        self.trainer = kind(
            self,
            optimizer,
            loss,
            metrics,
            backend,
            run_eagerly,
            threads,
            check,
            loss_weights,
            dynamic_batch,
            matmul_precision,
        )

    @property
    def compile_count(self) -> int:
        """Native compilations this model's training and inference steps have made."""
        return sum(t.compile_count for t in (self.trainer, self._predictor) if t is not None)

    def _trainer(self):
        if self.trainer is None:
            raise ConfigError("call model.compile(optimizer=..., loss=...) first")
        return self.trainer

    def fit(self, x: Any, y: Any, **kwargs: Any):
        """Train; see ``Trainer.fit`` for the arguments. Returns a ``History``."""
        return self._trainer().fit(x, y, **kwargs)

    def evaluate(self, x: Any, y: Any, **kwargs: Any) -> dict[str, float]:
        return self._trainer().evaluate(x, y, **kwargs)

    def predict(self, x: Any, batch_size: int = 256, verbose: int = 0) -> Any:
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
        return (
            f"<{type(self).__name__} {self.name!r}: {len(self.layers)} layers, built={self.built}>"
        )


def _pick(data: dict, names: list[str], what: str) -> list[Any]:
    missing = [n for n in names if n not in data]
    extra = sorted(set(data) - set(names))
    if missing or extra:
        raise ConfigError(
            f"{what} by name: the model's are {names}; missing {missing}, unknown {extra}"
        )
    return [data[n] for n in names]


def check_layer_names(layers: Iterable[Layer]) -> None:
    """Name unnamed layers Keras' way (dense, dense_1, ...) and refuse two layers with one
    name: weights are kept by layer name."""
    from .layer import snake_case

    taken: dict[str, Layer] = {}
    for layer in layers:
        if layer.name is not None:
            if layer.name in taken and taken[layer.name] is not layer:
                raise ConfigError(f"two layers are named {layer.name!r}")
            taken[layer.name] = layer
    for layer in layers:
        if layer.name is None:
            base = snake_case(type(layer).__name__)
            name, k = base, 0
            while name in taken:
                k += 1
                name = f"{base}_{k}"
            layer.name = name
            taken[name] = layer
