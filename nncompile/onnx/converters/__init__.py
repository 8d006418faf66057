"""ONNX op converters, one module per op family; importing this registers them all."""

from . import basic  # noqa: F401
from . import control, index, shape  # noqa: F401
from . import math  # noqa: F401
