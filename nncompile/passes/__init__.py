"""Graph passes: each a pure function Graph -> Graph, ordered by ``pipeline``."""

from .cse import eliminate_common_subexpressions
from .dce import eliminate_dead_code
from .flatten_weights import flatten_into_weights
from .fold import fold_constants
from .fusion import FusedGraph, FusionGroup, NotFused, copy_graph, format_fusion, fuse, op_class
from .layout import sink_transposes
from .pipeline import optimize, passes_for
from .simplify import simplify

__all__ = [
    "FusedGraph",
    "FusionGroup",
    "NotFused",
    "eliminate_common_subexpressions",
    "eliminate_dead_code",
    "copy_graph",
    "flatten_into_weights",
    "fold_constants",
    "format_fusion",
    "fuse",
    "op_class",
    "optimize",
    "passes_for",
    "simplify",
    "sink_transposes",
]
