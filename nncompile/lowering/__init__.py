"""Lowering: fusion groups -> kernel IR, plus the static memory plan."""

from .program import Program, lower_graph

__all__ = ["Program", "lower_graph"]
