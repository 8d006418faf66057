"""A small ResNet written with the functional API (nn.Input, layers called on symbolic
tensors, nn.Add for the skip connections, nn.Model), trained compiled on the LLVM backend.

    python examples/resnet_digits.py                 # offline 8x8 digits (scikit-learn ships them)
    python examples/resnet_digits.py --data DIR      # the four MNIST IDX files in DIR
"""

from __future__ import annotations

import argparse

import nncompile as nc
from nncompile import nn, optim
from nncompile.argtypes import positive_int

# Keras' default 0.99 averages the batch statistics over ~100 steps; a run of a few hundred
# steps whose weights still move fast then evaluates with stale statistics (on the digits:
# 100 % training accuracy, 62 % test). 0.9 follows the weights closely enough.
BN_MOMENTUM = 0.9


def residual_block(x, filters: int, stride: int, name: str):
    """conv-BN-relu-conv-BN plus the input (projected by a 1x1 convolution when the shape
    changes), then relu: the basic block of He et al. (2016)."""
    y = nn.Conv2D(filters, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_a")(x)
    y = nn.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_a_bn")(y)
    y = nn.Activation("relu", name=f"{name}_a_relu")(y)
    y = nn.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_b")(y)
    y = nn.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_b_bn")(y)
    if stride != 1 or x.shape[-1] != filters:
        x = nn.Conv2D(filters, 1, strides=stride, use_bias=False, name=f"{name}_proj")(x)
        x = nn.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_proj_bn")(x)
    return nn.Activation("relu", name=f"{name}_out")(nn.Add(name=f"{name}_add")([x, y]))


def resnet(input_shape: tuple[int, ...], widths: tuple[int, ...]) -> nn.Model:
    inputs = nn.Input(input_shape, name="image")
    x = nn.Conv2D(widths[0], 3, padding="same", use_bias=False, name="stem")(inputs)
    x = nn.Activation("relu", name="stem_relu")(
        nn.BatchNormalization(momentum=BN_MOMENTUM, name="stem_bn")(x)
    )
    for i, width in enumerate(widths):
        x = residual_block(x, width, 1 if i == 0 else 2, f"block{i + 1}")
    x = nn.GlobalAveragePooling2D(name="pool")(x)
    outputs = nn.Dense(10, activation="softmax", name="classes")(x)
    return nn.Model(inputs, outputs, name="resnet")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", help="folder with the MNIST IDX files (default: offline digits)")
    p.add_argument("--epochs", type=positive_int, help="default: 2 on MNIST, 15 on the digits")
    p.add_argument("--limit", type=positive_int, help="use only the first N images of each split")
    args = p.parse_args()

    name, (x_train, y_train), (x_test, y_test) = nc.data.load_images(args.data, args.limit)
    epochs = args.epochs or (2 if name == "mnist" else 15)
    model = resnet(x_train.shape[1:], (16, 32))
    model.compile(optim.Adam(1e-3), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()
    history = model.fit(x_train, y_train, batch_size=64, epochs=epochs, verbose=2, seed=0)
    result = model.evaluate(x_test, y_test)
    print(f"{name}: {history.timing()}")
    print(f"{name} test:", {k: round(v, 4) for k, v in result.items()})


if __name__ == "__main__":
    main()
