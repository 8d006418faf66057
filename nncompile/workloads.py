"""Workloads for ``nncompile bench`` / ``viz`` / ``dump``: the built-in ones (mlp, cnn,
lstm, elementwise chain, matmul) and user targets (``file.py:name`` or ``module:name``).

A workload is a pure function of arrays with example arguments, how much work one call
is (samples, bytes or flops), and optionally a PyTorch twin for ``--vs torch``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import nn, ops, optim
from .ir.errors import ConfigError

BUILTIN = ("mlp", "cnn", "lstm", "elementwise", "matmul")


@dataclass
class Workload:
    name: str
    description: str
    fn: Callable[..., Any]
    args: tuple
    work: float  # per call, in `unit`'s numerator (samples, bytes, flops)
    unit: str  # "samples/s" | "GB/s" | "GFLOP/s"
    donate: tuple[int, ...] = ()
    batched: tuple[int, ...] = ()  # the arguments holding the batch (dynamic_batch)
    # torch(compiled, device) builds a zero-argument PyTorch step (torch.compile'd if
    # asked) on "cpu" or "cuda"
    torch: Callable[[bool, str], Callable[[], Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def throughput(self, seconds: float) -> float:
        scale = {"samples/s": 1.0, "GB/s": 1e-9, "GFLOP/s": 1e-9}[self.unit]
        return self.work * scale / seconds


def model_workload(model: nn.Sequential, batch: int, name: str, description: str) -> Workload:
    """One training step of a compiled Keras-style model on a random batch."""
    if model.trainer is None:
        model.compile(optim.Adam(1e-3), "sparse_categorical_crossentropy")
    trainer = model.trainer
    rng = np.random.default_rng(0)
    x = rng.random((batch, *model.input_shape)).astype(model.input_dtype)
    classes = model.output_shape[-1]
    if trainer.loss == "sparse_categorical_crossentropy":
        y = rng.integers(0, classes, batch)
    else:
        y = rng.random((batch, *model.output_shape)).astype(np.float32)
    args = trainer.step_arguments(x, y)
    return Workload(
        name, description, trainer._train_fn, args, batch, "samples/s", (0, 2, 3), (4, 5)
    )


def _torch_training(model_fn: Callable[[], Any], x_shape: tuple, batch: int):
    def build(compiled: bool, device: str = "cpu") -> Callable[[], Any]:
        import torch

        model = model_fn().to(device)
        if compiled:
            model = torch.compile(model)
        x = torch.rand(batch, *x_shape, device=device)
        y = torch.randint(0, 10, (batch,), device=device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

        return step

    return build


def _torch_mlp():
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(784, 256),
        torch.nn.ReLU(),
        torch.nn.Linear(256, 128),
        torch.nn.ReLU(),
        torch.nn.Linear(128, 10),
    )


def torch_cnn_model():
    """The seed CNN in PyTorch (the peer of benchmarks and `nncompile bench`)."""
    import torch

    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 3),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(5408, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 10),
    )


def _torch_lstm():
    import torch

    class RowLSTM(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = torch.nn.LSTM(28, 64, batch_first=True)
            self.out = torch.nn.Linear(64, 10)

        def forward(self, x):
            return self.out(self.lstm(x)[0][:, -1])

    return RowLSTM()


def chain(x: Any) -> Any:
    """The elementwise benchmark: five ops that fuse into one pass over memory."""
    return ops.tanh(0.5 * x + 1) * ops.sigmoid(x) + x * x


def builtin(name: str, batch: int = 64, size: int | None = None) -> Workload:
    """``size``: elements of the elementwise chain (default 4M), or n of an n^3 matmul
    (default 1024)."""
    if name == "mlp":
        model = nn.Sequential(
            [
                nn.Dense(256, "relu", input_shape=(784,)),
                nn.Dense(128, "relu"),
                nn.Dense(10, "softmax"),
            ]
        )
        w = model_workload(model, batch, "mlp", f"MLP 784-256-128-10 Adam step, batch {batch}")
        w.torch = _torch_training(_torch_mlp, (784,), batch)
        return w
    if name == "cnn":
        from .demo import seed_cnn

        w = model_workload(
            seed_cnn((28, 28, 1)), batch, "cnn", f"seed CNN (28x28) Adam step, batch {batch}"
        )
        w.torch = _torch_training(torch_cnn_model, (1, 28, 28), batch)
        return w
    if name == "lstm":
        model = nn.Sequential([nn.LSTM(64, input_shape=(28, 28)), nn.Dense(10, "softmax")])
        w = model_workload(model, batch, "lstm", f"LSTM(64) x 28 rows Adam step, batch {batch}")
        w.torch = _torch_training(_torch_lstm, (28, 28), batch)
        return w
    if name == "elementwise":
        n = size or 4 * 2**20
        x = np.random.default_rng(0).standard_normal(n).astype(np.float32)

        def torch_chain(compiled: bool, device: str = "cpu"):
            import torch

            tx = torch.from_numpy(x).to(device)

            def f(t):
                return torch.tanh(0.5 * t + 1) * torch.sigmoid(t) + t * t

            g = torch.compile(f) if compiled else f
            return lambda: g(tx)

        desc = f"tanh(0.5x+1)*sigmoid(x)+x*x over {n:,} float32"
        return Workload("elementwise", desc, chain, (x,), 8.0 * n, "GB/s", torch=torch_chain)
    if name == "matmul":
        n = size or 1024
        rng = np.random.default_rng(0)
        a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))

        def torch_matmul(compiled: bool, device: str = "cpu"):
            import torch

            ta, tb = torch.from_numpy(a).to(device), torch.from_numpy(b).to(device)
            g = torch.compile(torch.matmul) if compiled else torch.matmul
            return lambda: g(ta, tb)

        return Workload(
            "matmul",
            f"{n}x{n} @ {n}x{n} float32",
            ops.matmul,
            (a, b),
            2.0 * n**3,
            "GFLOP/s",
            torch=torch_matmul,
        )
    raise ConfigError(f"unknown workload {name!r}; built in: {', '.join(BUILTIN)}")


def _import_target(spec: str) -> tuple[Any, Any]:
    """(module, object) for ``path/to/file.py:name`` or ``package.module:name``."""
    if ":" not in spec:
        raise ConfigError(
            f"target {spec!r}: give a built-in workload ({', '.join(BUILTIN)}) or "
            "file.py:name / module:name"
        )
    where, name = spec.rsplit(":", 1)
    if where.endswith(".py"):
        if not os.path.exists(where):
            raise ConfigError(f"target {spec!r}: no file {where}")
        module_name = f"nncompile_target_{abs(hash(os.path.abspath(where)))}"
        loader = importlib.util.spec_from_file_location(module_name, where)
        module = importlib.util.module_from_spec(loader)
        sys.modules[module_name] = module
        loader.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    if not hasattr(module, name):
        raise ConfigError(f"target {spec!r}: {where} has no {name!r}")
    return module, getattr(module, name)


def resolve(spec: str, batch: int = 64, size: int | None = None) -> Workload:
    """A built-in name, or ``file.py:name`` / ``module:name`` naming an ``nn.Sequential``
    (or a zero-argument function returning one: its training step is the workload), or a
    function whose example arguments come from ``<name>_example_args()`` or
    ``example_args()`` in the same module."""
    for what, value in (("batch", batch), ("size", size)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    if spec in BUILTIN:
        return builtin(spec, batch, size)
    module, obj = _import_target(spec)
    name = spec.rsplit(":", 1)[1]
    if callable(obj) and not isinstance(obj, nn.Sequential):
        try:
            import inspect

            takes_none = not inspect.signature(obj).parameters
        except (TypeError, ValueError):
            takes_none = False
        if takes_none:
            made = obj()
            if isinstance(made, nn.Sequential):
                obj = made
    if isinstance(obj, nn.Sequential):
        if not obj.built:
            raise ConfigError(f"target {spec!r}: the model is not built (give input_shape)")
        return model_workload(obj, batch, name, f"{obj.name} training step, batch {batch}")
    examples = getattr(module, f"{name}_example_args", None) or getattr(
        module, "example_args", None
    )
    if examples is None:
        raise ConfigError(
            f"target {spec!r} is a function: define {name}_example_args() (or example_args()) "
            "in its module, returning the example arguments as a tuple"
        )
    args = examples()
    args = args if isinstance(args, tuple) else (args,)
    first = np.asarray(args[0]) if args and not isinstance(args[0], dict) else None
    items = first.shape[0] if first is not None and first.ndim else 1
    fn = getattr(obj, "fn", obj)  # an nc.jit-compiled function: its Python function
    return Workload(name, f"{name} from {spec}", fn, args, items, "samples/s")
