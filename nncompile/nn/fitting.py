"""Training and inference for Keras-style models: ``compile`` builds a ``Trainer``; its
``fit``/``evaluate``/``predict`` run compiled graphs.

The training step is one graph (forward, loss, backward, optimizer update, and the batch's
predicted classes for the metrics) taking ``(params, frozen, opt_state, state, x, y, lr,
key)``. Parameters, optimizer state and layer state are donated, so the LLVM backend
updates them in place. The learning rate and the dropout key are inputs, so neither a
schedule nor a new epoch recompiles; a last partial batch compiles once more (its own
shape) and is then reused every epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import losses, ops, optim
from ..autodiff import value_and_grad
from ..backend import get_backend
from ..compiler import BACKENDS, compile, precision_for
from ..data.split import batch_slices, check_same_length, split_tail
from ..dispatch import name_scope
from ..functional import activation
from ..ir.errors import ConfigError
from ..metrics import CLASS_METRICS
from .callbacks import Callback, CallbackList, History
from .fit_data import copied, data_dtype, eager, pad_rows, to_device, to_host
from .metrics_accumulator import EpochMetrics
from .outputs import OutputsMetrics, loss_weights_for, metrics_for, per_output
from .progress import ProgressBar

# (last activation, loss) pairs computed from logits: log-softmax / log-sigmoid forms that
# stay finite where probabilities round to 0 or 1.
LOGIT_FORMS = {
    ("softmax", "sparse_categorical_crossentropy"),
    ("softmax", "categorical_crossentropy"),
    ("sigmoid", "binary_crossentropy"),
}
GRAPH_METRICS = ("mse", "mae")
METRIC_NAMES = {"acc": "accuracy", **{m: m for m in CLASS_METRICS + GRAPH_METRICS}}
EVAL_BATCH = 256


def _metric_names(metrics: Iterable[str] | None) -> list[str]:
    names = []
    for m in metrics or ():
        if m not in METRIC_NAMES:
            raise ConfigError(f"unknown metric {m!r}; known: {sorted(METRIC_NAMES)}")
        if METRIC_NAMES[m] not in names:
            names.append(METRIC_NAMES[m])
    return names


def _positive(name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


@dataclass
class OutputSettings:
    """Loss, weight, metrics and logits form of each model output (known once the model
    is built: a subclassed model learns its outputs from its first data)."""

    names: list[str]
    losses: list[Any]  # the loss as given (a name or a function), None: not trained
    fns: list[Any]
    weights: list[float]
    metrics: list[list[str]]
    logits: list[bool]


class Trainer:
    def __init__(
        self,
        model: Any,
        optimizer: Any = "adam",
        loss: Any = None,
        metrics: Any = None,
        backend: str = "llvm",
        run_eagerly: bool = False,
        threads: int | None = None,
        check: bool | None = None,
        loss_weights: Any = None,
        dynamic_batch: bool | None = None,
        matmul_precision: str | None = None,
    ):
        if backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
        # bf16 products: mixed precision training, the weights and optimizer state float32
        self.matmul_precision = precision_for(backend, matmul_precision)
        if run_eagerly and self.matmul_precision != "float32":
            if matmul_precision is not None:
                raise NotImplementedError(
                    "run_eagerly=True computes float32 products (NumPy); matmul_precision="
                    f"{self.matmul_precision!r} needs a compiled step"
                )
            self.matmul_precision = "float32"  # the environment's default: compiles only
        try:
            self.optimizer = optim.get(optimizer)
            structured = isinstance(loss, (list, tuple, dict))
            entries = (loss.values() if isinstance(loss, dict) else loss) if structured else []
            fns = [losses.get(entry) for entry in entries if entry is not None]
            if structured and not fns:
                raise ConfigError(f"compile: loss {loss!r} gives no output a loss")
            self.loss_fn = fns if structured else losses.get(loss) if loss is not None else None
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self.model = model
        self.loss = loss
        self.loss_weights = loss_weights
        flat = metrics is None or (
            not isinstance(metrics, dict) and all(isinstance(m, str) for m in metrics)
        )
        self.metrics_spec = metrics
        # the metric names when one list applies to every output (also what is saved)
        self.metrics = _metric_names(metrics) if flat else []
        self.backend = backend
        self.run_eagerly = run_eagerly
        self.threads = threads
        self.check = check
        # one graph per step for every batch size
        self.dynamic_batch = True if dynamic_batch is None else bool(dynamic_batch)
        self.opt_state: dict[str, Any] | None = None
        self.steps_run = 0  # also the dropout key of the next step
        self._functions: dict[str, Callable[..., Any]] = {}
        self._settings: OutputSettings | None = None

    # -- per-output settings --------------------------------------------------------------
    @property
    def outputs(self) -> OutputSettings:
        if self._settings is None:
            model = self.model
            names = model.output_names
            given = per_output(self.loss, names, "loss") if self.loss is not None else []
            given = given or [None] * len(names)
            try:
                fns = [losses.get(g) if g is not None else None for g in given]
            except ValueError as e:
                raise ConfigError(str(e)) from None
            self._settings = OutputSettings(
                names,
                given,
                fns,
                loss_weights_for(self.loss_weights, names),
                [_metric_names(m) for m in metrics_for(self.metrics_spec, names)],
                [
                    (act, g) in LOGIT_FORMS
                    for act, g in zip(model.output_activations, given, strict=True)
                ],
            )
        return self._settings

    @property
    def single(self) -> bool:
        return self.model.single_output

    @property
    def from_logits(self) -> bool:
        """The (first) output trains from logits (see LOGIT_FORMS)."""
        return self.outputs.logits[0]

    def _logits_arg(self) -> Any:
        flags = self.outputs.logits
        return flags[0] if self.single else list(flags)

    def _as_list(self, value: Any) -> list[Any]:
        return [value] if self.single else list(value)

    def _loss(self, i: int, y: Any, out: Any) -> Any:
        fn = self.outputs.fns[i]
        if self.outputs.logits[i]:
            return fn(y, out, from_logits=True)
        return fn(y, out)

    def _batch_outputs(self, i: int, out: Any, y: Any, per_sample: bool = False) -> dict[str, Any]:
        """What output ``i``'s metrics need from a batch: predicted classes, and the graph
        metrics (batch means, or one value per sample with ``per_sample``)."""
        result: dict[str, Any] = {}
        metrics, logits = self.outputs.metrics[i], self.outputs.logits[i]
        if any(m in CLASS_METRICS for m in metrics):
            if out.shape[-1] > 1:
                result["classes"] = ops.argmax(out, axis=-1)
            else:  # one sigmoid unit: the threshold is 0.5 on probabilities, 0 on logits
                result["classes"] = ops.astype(out > (0.0 if logits else 0.5), "int64")
        probs = activation(out, self.model.output_activations[i]) if logits else out
        for name in ("mse", "mae"):
            if name in metrics:
                values = losses.PER_SAMPLE[name](y, probs)
                result[name] = values if per_sample else ops.mean(values)
        return result

    def _total_loss(self, ys: list[Any], outs: list[Any], per_sample: bool) -> tuple[Any, list]:
        """The weighted sum of the outputs' losses, and each output's (None: no loss)."""
        s = self.outputs
        parts: list[Any] = []
        total = None
        for i, (y, out) in enumerate(zip(ys, outs, strict=True)):
            if s.fns[i] is None:
                parts.append(None)
                continue
            if per_sample:
                part = losses.per_sample(s.losses[i])(y, out, s.logits[i])
            else:
                part = self._loss(i, y, out)
            parts.append(part)
            term = part if s.weights[i] == 1.0 else part * s.weights[i]
            total = term if total is None else total + term
        return total, parts

    def _aux(self, ys: list, outs: list, parts: list, per_sample: bool = False) -> Any:
        batch = [
            self._batch_outputs(i, o, y, per_sample)
            for i, (o, y) in enumerate(zip(outs, ys, strict=True))
        ]
        if self.single:
            return batch[0]
        return [
            {**b, "loss": part} if part is not None else b
            for b, part in zip(batch, parts, strict=True)
        ]

    # -- the graphs -----------------------------------------------------------------------
    def _grad_fn(self, params, frozen, state, x, y, key):
        """Forward, loss and backward: (grads, new layer state, loss, batch outputs)."""

        def objective(p: Any) -> tuple[Any, Any]:
            out, new_state = self.model.apply(
                {**frozen, **p}, state, x, training=True, key=key, logits=self._logits_arg()
            )
            outs, ys = self._as_list(out), self._as_list(y)
            with name_scope("loss"):
                loss, parts = self._total_loss(ys, outs, False)
            with name_scope("metrics"):
                return loss, (new_state, self._aux(ys, outs, parts))

        (loss, (new_state, outputs)), grads = value_and_grad(objective, has_aux=True)(params)
        return grads, new_state, loss, outputs

    def _train_fn(self, params, frozen, opt_state, state, x, y, lr, key):
        grads, new_state, loss, outputs = self._grad_fn(params, frozen, state, x, y, key)
        new_params, new_opt_state = self.optimizer.update(params, grads, opt_state, lr)
        return new_params, new_opt_state, new_state, loss, outputs

    @property
    def _per_sample_eval(self) -> bool:
        """Every loss has a per-sample form (built-in losses): evaluate pads its batches."""
        return all(
            losses.per_sample(g) is not None
            for g, fn in zip(self.outputs.losses, self.outputs.fns, strict=True)
            if fn is not None
        )

    def _eval_fn(self, params, state, x, y):
        """Per-sample losses and metrics for built-in losses (evaluate pads its last
        batch and counts the real rows); the batch mean for a user's loss function."""
        out, _ = self.model.apply(params, state, x, training=False, logits=self._logits_arg())
        outs, ys = self._as_list(out), self._as_list(y)
        per_sample = self._per_sample_eval
        loss, parts = self._total_loss(ys, outs, per_sample)
        return loss, self._aux(ys, outs, parts, per_sample)

    def _predict_fn(self, params, state, x):
        return self.model.apply(params, state, x, training=False)[0]

    def _graph_functions(self) -> dict[str, tuple[Callable[..., Any], tuple[int, ...]]]:
        """The graphs ``function`` compiles, by kind: (function, donated arguments). The
        training step updates params, opt_state and layer state in place."""
        return {
            "train": (self._train_fn, (0, 2, 3)),
            "eval": (self._eval_fn, ()),
            "predict": (self._predict_fn, ()),
        }

    def _batched_arguments(self, kind: str) -> tuple[int, ...] | None:
        """The arguments of graph ``kind`` that hold the batch (x and y), when compiled
        with a symbolic batch size."""
        if not self.dynamic_batch:
            return None
        return {"train": (4, 5), "eval": (2, 3), "predict": (2,)}.get(kind)

    def function(self, kind: str) -> Callable[..., Any]:
        """The (compiled, cached) function of ``kind`` (train, eval, predict)."""
        if kind not in self._functions:
            fn, donate = self._graph_functions()[kind]
            self._functions[kind] = (
                eager(fn)
                if self.run_eagerly
                else compile(
                    fn,
                    self.backend,
                    donate_argnums=donate,
                    threads=self.threads,
                    check=self.check,
                    device_outputs=kind == "train" and self._on_device,
                    dynamic_batch=self._batched_arguments(kind),
                    matmul_precision=self.matmul_precision,
                )
            )
        return self._functions[kind]

    @property
    def compile_count(self) -> int:
        """Native compilations of this trainer's graphs (0 when running eagerly)."""
        return sum(getattr(f, "compile_count", 0) for f in self._functions.values())

    # -- data -----------------------------------------------------------------------------
    def _inputs(self, x: Any) -> list[np.ndarray]:
        """The arrays of each model input (the model built for them if it was not)."""
        model = self.model
        xs = model.input_list(x)
        dtypes = list(model.input_dtypes)
        dtypes += [None] * (len(xs) - len(dtypes))
        xs = [
            np.ascontiguousarray(a, dtype=d if d is not None else data_dtype(a))
            for a, d in zip(xs, dtypes, strict=False)
        ]
        model.ensure_built(model.pack_inputs(xs))
        return xs

    def _labels(self, y: Any) -> list[np.ndarray]:
        ys = self.model.label_list(y)
        return [self._output_labels(i, t) for i, t in enumerate(ys)]

    def _output_labels(self, i: int, y: Any) -> np.ndarray:
        y = np.asarray(y)
        loss = self.outputs.losses[i]
        if loss == "sparse_categorical_crossentropy":
            if not np.issubdtype(y.dtype, np.integer) and not np.all(np.mod(y, 1) == 0):
                raise ConfigError("sparse_categorical_crossentropy needs integer class labels")
            shape = self.model.output_shapes[i]
            classes = shape[-1] if shape else None
            if y.size and classes and (y.min() < 0 or y.max() >= classes):
                bad = int(y.min()) if y.min() < 0 else int(y.max())
                raise ConfigError(
                    f"label {bad} is out of range: the model has {classes} output classes"
                )
            return y.astype(np.int64)
        if not isinstance(loss, str) and np.issubdtype(y.dtype, np.integer):
            return y.astype(np.int64)  # a user's loss may take class ids
        return np.ascontiguousarray(y, dtype=np.float32)

    def _pack_y(self, ys: list[Any]) -> Any:
        return ys[0] if self.single else list(ys)

    def step_arguments(self, x: Any, y: Any) -> tuple:
        """The training step's arguments for one batch ``(params, frozen, opt_state, state,
        x, y, lr, key)``, on copies of the model's weights and a fresh optimizer state (a
        compiled step updates its inputs in place). For benchmarks and pictures."""
        xs = self._inputs(x)
        params = copied(self.model.params(trainable=True))
        return (
            params,
            self.model.params(trainable=False),
            self.optimizer.init(params),
            copied(self.model.state()),
            self.model.pack_inputs(xs),
            self._pack_y(self._labels(y)),
            np.float32(self.optimizer.lr),
            np.int64(self.steps_run),
        )

    @property
    def _on_device(self) -> bool:
        """Training keeps parameters, optimizer and layer state on the GPU for a whole
        epoch (each step updates them in place there); only batches cross per step."""
        return get_backend(self.backend).device_outputs and not self.run_eagerly

    def _epoch_metrics(self) -> Any:
        s = self.outputs
        per = []
        for i, shape in enumerate(self.model.output_shapes):
            classes = shape[-1] if shape else 1
            wanted = [m for m in s.metrics[i] if m in CLASS_METRICS]
            graph = [m for m in s.metrics[i] if m in GRAPH_METRICS]
            per.append(EpochMetrics(wanted, graph, classes))
        if self.single:
            return per[0]
        return OutputsMetrics(s.names, per, [fn is not None for fn in s.fns])

    def _require_loss(self) -> None:
        if self.loss_fn is None:
            raise ConfigError("this model was compiled without a loss; compile(loss=...) first")

    def _data(self, x: Any, y: Any) -> tuple[list[np.ndarray], list[np.ndarray], int]:
        xs, ys = self._inputs(x), self._labels(y)
        return xs, ys, check_same_length(*xs, *ys)

    # -- Keras API ------------------------------------------------------------------------
    def fit(
        self,
        x: Any,
        y: Any,
        batch_size: int | None = 32,
        epochs: int = 1,
        verbose: int | str = "auto",
        callbacks: list[Callback] | None = None,
        validation_split: float = 0.0,
        validation_data: tuple[Any, Any] | None = None,
        shuffle: bool = True,
        seed: int | None = None,
        initial_epoch: int = 0,
        validation_batch_size: int | None = None,
    ) -> History:
        """Train for ``epochs``; returns the ``History`` (also ``model.history``). With
        several inputs or outputs, ``x`` and ``y`` are lists (model order) or dicts by
        name; every batch takes the same rows of each."""
        self._require_loss()
        batch_size = _positive("batch_size", 32 if batch_size is None else batch_size)
        epochs = _positive("epochs", epochs)
        model = self.model
        xs, ys, n = self._data(x, y)
        if validation_data is not None:
            if len(validation_data) != 2:
                raise ConfigError("validation_data must be a pair (x_val, y_val)")
            val = validation_data
            if self._data(*val)[2] == 0:
                raise ConfigError("validation_data holds no samples")
        elif validation_split:
            (train_idx, _), (val_idx, _) = split_tail(np.arange(n), np.arange(n), validation_split)
            val = (
                model.pack_inputs([a[val_idx] for a in xs]),
                self._pack_y([t[val_idx] for t in ys]),
            )
            xs, ys = [a[train_idx] for a in xs], [t[train_idx] for t in ys]
            n = len(train_idx)
        else:
            val = None
        if n == 0:
            raise ConfigError("fit needs at least one training sample")
        verbose = 1 if verbose == "auto" else int(verbose)
        history = History()
        cbs = CallbackList([history, *(callbacks or [])], model)
        step_rows = self._step_rows(batch_size)
        progress = ProgressBar(self._shown(verbose), epochs, math.ceil(n / step_rows))
        rng = self._shuffle_rng(seed)
        model.stop_training = False
        model.history = history
        if self.opt_state is None:
            self.opt_state = self.optimizer.init(model.params(trainable=True))
        self._begin_fit()
        cbs.on_train_begin()
        for epoch in range(initial_epoch, epochs):
            cbs.on_epoch_begin(epoch)
            progress.epoch_begin(epoch)
            # The step updates its donated arguments in place: it gets copies, and the
            # model takes them at the end of the epoch. An epoch that raises leaves the
            # model's weights and the optimizer's state as they were before it.
            params, frozen = copied(model.params(trainable=True)), model.params(trainable=False)
            state = copied(model.state())
            opt_state_before = self.opt_state
            self.opt_state = copied(self.opt_state)
            if self._on_device:
                params, state = to_device(params), to_device(state)
                self.opt_state = to_device(self.opt_state)
            epoch_metrics = self._epoch_metrics()
            start = time.perf_counter()
            for step, idx in enumerate(batch_slices(n, step_rows, shuffle, rng)):
                try:
                    params, state, loss = self._fit_step(
                        params, frozen, state, xs, ys, idx, epoch_metrics
                    )
                except BaseException:
                    self.opt_state = opt_state_before
                    raise
                self.steps_run += 1
                if progress.showing:  # the running figures only when a bar shows them
                    rate = epoch_metrics.samples / (time.perf_counter() - start)
                    progress.batch_end(epoch_metrics.running(), rate)
                cbs.on_train_batch_end(step, {"loss": float(loss)})
            if self._on_device:
                params, state = to_host(params), to_host(state)
                self.opt_state = to_host(self.opt_state)
            model.assign(params, state)
            logs = self._epoch_result(epoch_metrics)
            if val is not None:
                scores = self.evaluate(*val, batch_size=validation_batch_size or EVAL_BATCH)
                logs.update({f"val_{k}": v for k, v in scores.items()})
            seconds = time.perf_counter() - start
            history.epoch_seconds.append(seconds)
            progress.epoch_end(epoch, logs, seconds, n)
            cbs.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
        cbs.on_train_end()
        return history

    # -- what data-parallel training (nncompile.distributed) changes -----------------------
    def _step_rows(self, batch_size: int) -> int:
        """Rows of the data one training step takes."""
        return batch_size

    def _shown(self, verbose: int) -> int:
        return verbose

    def _shuffle_rng(self, seed: int | None) -> np.random.Generator:
        return np.random.default_rng(seed)

    def _begin_fit(self) -> None:
        """Called once per fit, after the optimizer state exists."""

    def _epoch_result(self, epoch_metrics: Any) -> dict[str, float]:
        return epoch_metrics.result()

    def _eval_rows(self, n: int) -> tuple[int, int]:
        """The rows [first, last) of ``n`` that evaluate computes here."""
        return 0, n

    def _fit_step(
        self, params: Any, frozen: Any, state: Any, xs: list, ys: list, idx: np.ndarray, metrics
    ) -> tuple[Any, Any, Any]:
        """One training step on rows ``idx``: updates ``self.opt_state``, adds the batch to
        ``metrics`` and returns (params, layer state, loss)."""
        xb = self.model.pack_inputs([a[idx] for a in xs])
        labels = self._pack_y([t[idx] for t in ys])  # the same rows of every input and target
        lr, key = np.float32(self.optimizer.lr), np.int64(self.steps_run)
        params, self.opt_state, state, loss, outputs = self.function("train")(
            params, frozen, self.opt_state, state, xb, labels, lr, key
        )
        if self._on_device:
            loss, outputs = to_host(loss), to_host(outputs)
        metrics.add(len(idx), loss, outputs, labels)
        return params, state, loss

    def evaluate(
        self, x: Any, y: Any, batch_size: int | None = None, verbose: int = 0
    ) -> dict[str, float]:
        """Loss and metrics over the whole data, batched, in inference mode."""
        self._require_loss()
        xs, ys, n = self._data(x, y)
        if n == 0:  # a mean over no samples is undefined, not 0.0
            raise ConfigError("evaluate needs at least one sample; the data holds none")
        batch_size = _positive("batch_size", EVAL_BATCH if batch_size is None else batch_size)
        run = self.function("eval")
        params, state = self.model.params(), self.model.state()
        epoch_metrics = self._epoch_metrics()
        # one graph for every batch: a symbolic batch size, or batches padded to one size
        per_sample = self._per_sample_eval
        padded = per_sample and not self.dynamic_batch
        pack_x, pack_y = self.model.pack_inputs, self._pack_y
        first, last = self._eval_rows(n)
        for start in range(first, last, batch_size):
            stop = min(start + batch_size, last)
            xb = [a[start:stop] for a in xs]
            yb = [t[start:stop] for t in ys]
            real = len(yb[0])
            if per_sample:
                xs_in, ys_in = xb, yb
                if padded:
                    xs_in = [pad_rows(a, batch_size, True) for a in xb]
                    ys_in = [pad_rows(t, batch_size, True) for t in yb]
                values, outputs = run(params, state, pack_x(xs_in), pack_y(ys_in))
                epoch_metrics.add_rows(real, values, outputs, pack_y(yb))
            else:
                loss, outputs = run(params, state, pack_x(xb), pack_y(yb))
                epoch_metrics.add(real, loss, outputs, pack_y(yb))
        scores = self._epoch_result(epoch_metrics)
        if self._shown(verbose):
            print(" - ".join(f"{k}: {v:.4f}" for k, v in scores.items()))
        return scores

    def predict(self, x: Any, batch_size: int | None = None, verbose: int = 0) -> Any:
        """The model's outputs (after its last activation), batched, in inference mode:
        one array, or a list (a dict for outputs given by name) for several outputs.
        With a symbolic batch size (the default) every batch runs as it is, through one
        compiled graph. Without it a short batch is padded with zeros to a power of two
        (at most ``batch_size``): inference treats samples independently, and predicting
        on 1, 3, 5, ... samples then reuses a few compiled graphs."""
        model = self.model
        xs = self._inputs(x)
        batch_size = _positive("batch_size", EVAL_BATCH if batch_size is None else batch_size)
        run = self.function("predict")
        params, state = model.params(), model.state()
        n = check_same_length(*xs)
        outs: list[list[np.ndarray]] = [[] for _ in model.output_shapes]
        for start in range(0, n, batch_size):
            chunk = [a[start : start + batch_size] for a in xs]
            real = len(chunk[0])
            if not self.dynamic_batch:
                chunk = [pad_rows(a, batch_size) for a in chunk]
            out = run(params, state, model.pack_inputs(chunk))
            for i, o in enumerate(self._as_list(out)):
                outs[i].append(o[:real])
        results = [
            np.concatenate(parts) if parts else np.zeros((0, *shape), np.float32)
            for parts, shape in zip(outs, model.output_shapes, strict=True)
        ]
        return model.pack_outputs(results)
