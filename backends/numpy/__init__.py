"""The NumPy reference backend: one reference implementation per primitive, and the
graph interpreter. Its results define what every compiled backend must compute."""

from . import reference_gradient  # noqa: F401  (registers the gradient primitives)
from .interpreter import call_reference, run_graph
from .reference import REFERENCE

__all__ = ["REFERENCE", "call_reference", "run_graph"]
