"""ONNX op converters, one module per op family; importing this registers them all."""

from . import basic  # noqa: F401
from . import control, index, shape  # noqa: F401
from . import nn  # noqa: F401
from . import pooling  # noqa: F401
from . import math  # noqa: F401
from . import normalization  # noqa: F401
from . import reduce  # noqa: F401
from . import resize  # noqa: F401
from . import rnn  # noqa: F401
from . import einsum  # noqa: F401
from . import attention  # noqa: F401
from . import losses  # noqa: F401
from . import more_nn  # noqa: F401
from . import more_tensor  # noqa: F401
from . import trig  # noqa: F401
from . import streaming  # noqa: F401
from . import spectral  # noqa: F401
from . import grid_sample  # noqa: F401
from . import roi_align  # noqa: F401
from . import deform_conv  # noqa: F401
from . import linalg  # noqa: F401
from . import ngrams  # noqa: F401
