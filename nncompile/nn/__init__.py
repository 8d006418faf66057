"""Keras-style models: layers, ``Sequential`` with compile / fit / evaluate / predict /
summary / save, callbacks, and ``load_model``.

    from nncompile import nn, optim
    model = nn.Sequential([nn.Conv2D(32, (3, 3), activation="relu", input_shape=(28, 28, 1)),
                           nn.MaxPooling2D((2, 2)), nn.Flatten(),
                           nn.Dense(64, activation="relu"), nn.Dense(10, activation="softmax")])
    model.compile(optimizer=optim.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=64, epochs=10, validation_split=0.1)
"""

from .callbacks import Callback, EarlyStopping, History, ModelCheckpoint
from .functional_model import Model
from .layer import CallContext, Layer
from .layers import (
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Embedding,
    Flatten,
    MaxPooling2D,
    Reshape,
)
from .layers_attention import MultiHeadAttention
from .layers_conv import DepthwiseConv2D, SeparableConv2D
from .layers_conv1d import AveragePooling1D, Conv1D, MaxPooling1D
from .layers_conv_transpose import Conv2DTranspose
from .layers_normalization import LayerNormalization
from .layers_pooling import (
    GlobalAveragePooling1D,
    GlobalAveragePooling2D,
    GlobalMaxPooling1D,
    GlobalMaxPooling2D,
)
from .layers_shape import Cropping2D, UpSampling2D, ZeroPadding2D
from .layers_wrappers import Bidirectional, TimeDistributed
from .merge import Add, Average, Concatenate, Maximum, Minimum, Multiply, Subtract
from .model import Sequential
from .recurrent import GRU, LSTM, SimpleRNN
from .saving import load_model, save_model
from .symbolic import Input, InputLayer, KerasTensor, set_random_seed

__all__ = [
    "GRU",
    "LSTM",
    "Activation",
    "Add",
    "Average",
    "AveragePooling1D",
    "AveragePooling2D",
    "BatchNormalization",
    "Bidirectional",
    "CallContext",
    "Callback",
    "Concatenate",
    "Conv1D",
    "Conv2D",
    "Conv2DTranspose",
    "Cropping2D",
    "Dense",
    "DepthwiseConv2D",
    "Dropout",
    "EarlyStopping",
    "Embedding",
    "Flatten",
    "GlobalAveragePooling1D",
    "GlobalAveragePooling2D",
    "GlobalMaxPooling1D",
    "GlobalMaxPooling2D",
    "History",
    "Input",
    "InputLayer",
    "KerasTensor",
    "Layer",
    "LayerNormalization",
    "MaxPooling1D",
    "MaxPooling2D",
    "Maximum",
    "Minimum",
    "Model",
    "ModelCheckpoint",
    "MultiHeadAttention",
    "Multiply",
    "Reshape",
    "SeparableConv2D",
    "Sequential",
    "SimpleRNN",
    "Subtract",
    "TimeDistributed",
    "UpSampling2D",
    "ZeroPadding2D",
    "load_model",
    "save_model",
    "set_random_seed",
]
