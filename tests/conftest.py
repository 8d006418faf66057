"""Helpers shared by the test folders.

The run uses ``--import-mode=importlib`` (pyproject.toml): test folders are not on
``sys.path``, so test files import helpers beside them relatively (``from . import
nc_passes_support``) and this file as ``from ..conftest import load_module``. Files outside
any package (benchmarks/) are loaded by path with ``load_module``.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys
from types import ModuleType

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load_module(name: str, path: str | pathlib.Path) -> ModuleType:
    """The module in the file ``path``, registered as ``name`` (loaded once per run, so
    every test file that asks shares it)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {path} as a module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]  # a failed load must not leave half a module behind
            raise
    return sys.modules[name]


def graph_sizes() -> ModuleType:
    """benchmarks/graph_sizes.py: its mlp() / cnn() / lstm() are the benchmark models."""
    return load_module("nc_benchmarks_graph_sizes", ROOT / "benchmarks" / "graph_sizes.py")
