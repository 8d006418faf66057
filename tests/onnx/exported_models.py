"""Small PyTorch models exported to ONNX with both of torch's exporters, for the tests that
compare imported models with ONNX Runtime and with PyTorch (and for
benchmarks/onnx_vs_ort.py). Every model has a dynamic batch axis.

    spec = MODELS["cnn"]
    module = spec.build()                       # seeded weights, eval mode
    path = export(module, spec, "torchscript", tmp_dir)
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

EXPORTERS = ("torchscript", "dynamo")


@dataclass(frozen=True)
class ModelSpec:
    """A model: its builder, one example's input shape (without the batch axis) and how
    it is fine-tuned: "classify" (cross-entropy over ``classes``) or "reconstruct" (MSE
    against targets in [0, 1] of shape ``target_shape``)."""

    name: str
    build_module: Callable[[], nn.Module]
    example_shape: tuple[int, ...]
    task: str
    classes: int = 0
    target_shape: tuple[int, ...] = ()

    def build(self, seed: int = 0) -> nn.Module:
        torch.manual_seed(seed)
        module = self.build_module()
        _randomize_normalization(module, seed)
        return module.eval()

    def inputs(self, batch: int, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return rng.standard_normal((batch, *self.example_shape)).astype(np.float32)

    def targets(self, batch: int, seed: int = 1) -> np.ndarray:
        """Labels (int64 class ids) or a reconstruction target for ``batch`` examples."""
        rng = np.random.default_rng(seed)
        if self.task == "classify":
            return rng.integers(0, self.classes, batch).astype(np.int64)
        return rng.uniform(0, 1, (batch, *self.target_shape)).astype(np.float32)


def _randomize_normalization(module: nn.Module, seed: int) -> None:
    """Running statistics and affine terms away from (0, 1), so a normalization that
    ignored them would be caught (and no two parameters are equal: the TorchScript
    exporter would share equal initializers between parameters)."""
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(0.2 * torch.randn(c, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))
                m.weight.copy_(1 + 0.2 * torch.randn(c, generator=gen))
                m.bias.copy_(0.2 * torch.randn(c, generator=gen))
            elif isinstance(m, nn.LayerNorm):
                m.weight.copy_(1 + 0.2 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.2 * torch.randn(m.bias.shape, generator=gen))


# -- the models ---------------------------------------------------------------------------
class SeedCNN(nn.Module):
    """The seed CNN: Conv2d 32 3x3 relu, MaxPool 2, Flatten, Linear 64 relu, Linear 10."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(32 * 13 * 13, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        return self.fc2(torch.relu(self.fc1(torch.flatten(x, 1))))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class SmallResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8))
        self.layer1 = BasicBlock(8, 8, 1)
        self.layer2 = BasicBlock(8, 16, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = self.layer2(self.layer1(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def _separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False),
        nn.BatchNorm2d(cin),
        nn.ReLU6(),
        nn.Conv2d(cin, cout, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU6(),
    )


class MobileNetish(nn.Module):
    """Depthwise-separable blocks with ReLU6, global average pooling, a classifier."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6()
        )
        self.blocks = nn.Sequential(_separable(8, 16, 1), _separable(16, 24, 2))
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.fc(x.mean(dim=(2, 3)))


class Decoder(nn.Module):
    """A conv-transpose / upsample decoder: (N, 8, 4, 4) codes to (N, 1, 32, 32) images."""

    def __init__(self):
        super().__init__()
        self.up1 = nn.ConvTranspose2d(8, 16, 4, 2, 1)
        self.up2 = nn.Upsample(scale_factor=2, mode="nearest")
        self.conv = nn.Conv2d(16, 8, 3, 1, 1)
        self.up3 = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.out = nn.Conv2d(8, 1, 3, 1, 1)

    def forward(self, z):
        x = torch.relu(self.up1(z))
        x = torch.relu(self.conv(self.up2(x)))
        return torch.sigmoid(self.out(self.up3(x)))


class LSTMClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(6, 16, batch_first=True)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


class TransformerClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.TransformerEncoderLayer(
            16, 4, dim_feedforward=32, dropout=0.0, activation="gelu", batch_first=True
        )
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc(self.encoder(x).mean(dim=1))


MODELS: dict[str, ModelSpec] = {
    s.name: s
    for s in (
        ModelSpec("cnn", SeedCNN, (1, 28, 28), "classify", 10),
        ModelSpec("resnet", SmallResNet, (3, 16, 16), "classify", 10),
        ModelSpec("mobilenet", MobileNetish, (3, 16, 16), "classify", 10),
        ModelSpec("decoder", Decoder, (8, 4, 4), "reconstruct", target_shape=(1, 32, 32)),
        ModelSpec("lstm", LSTMClassifier, (7, 6), "classify", 5),
        ModelSpec("transformer", TransformerClassifier, (5, 16), "classify", 3),
    )
}


# -- exporting ----------------------------------------------------------------------------
def dynamo_available() -> bool:
    try:
        import onnxscript  # noqa: F401
    except ImportError:
        return False
    return True


def export(module: nn.Module, spec: ModelSpec, exporter: str, directory: str) -> str:
    """Export ``module`` (eval mode) with a dynamic batch axis; returns the .onnx path.
    The TorchScript exporter runs without constant folding so BatchNormalization stays a
    node and the initializers keep the parameters' names."""
    path = os.path.join(directory, f"{spec.name}_{exporter}.onnx")
    example = torch.from_numpy(spec.inputs(2))
    with _quiet(), _no_fastpath(), torch.no_grad():
        if exporter == "torchscript":
            torch.onnx.export(
                module,
                (example,),
                path,
                dynamo=False,
                input_names=["x"],
                output_names=["y"],
                dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}},
                do_constant_folding=False,
                training=torch.onnx.TrainingMode.EVAL,
                opset_version=17,
            )
        elif exporter == "dynamo":
            program = torch.onnx.export(
                module,
                (example,),
                dynamo=True,
                input_names=["x"],
                output_names=["y"],
                dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},),
                verbose=False,
            )
            program.save(path)
        else:
            raise ValueError(f"unknown exporter {exporter!r}; one of {EXPORTERS}")
    return path


@contextlib.contextmanager
def _no_fastpath():
    """nn.TransformerEncoderLayer's fused fast path exports an op ONNX lacks."""
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


@contextlib.contextmanager
def _quiet():
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield
