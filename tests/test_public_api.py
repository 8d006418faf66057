"""``__all__`` of the package and its public submodules: every listed name exists, and
every public name a module defines (or, for the package, re-exports) is listed, so
``from nncompile import *`` and the documentation tools see the whole API."""

import importlib
import types

import pytest

import nncompile

MODULES = [
    "nncompile",
    "nncompile.nn",
    "nncompile.optim",
    "nncompile.losses",
    "nncompile.metrics",
    "nncompile.data",
]


@pytest.mark.parametrize("name", MODULES)
def test_all_lists_existing_names_once(name):
    module = importlib.import_module(name)
    assert len(set(module.__all__)) == len(module.__all__)
    missing = [n for n in module.__all__ if not hasattr(module, n)]
    assert not missing
    namespace: dict = {}
    exec(f"from {name} import *", namespace)
    assert set(module.__all__) <= set(namespace)


@pytest.mark.parametrize("name", MODULES[1:])
def test_submodules_list_what_they_define(name):
    module = importlib.import_module(name)
    defined = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_")
        and not isinstance(v, types.ModuleType)
        and getattr(v, "__module__", name).startswith(name)  # not an imported helper
    }
    assert defined - {"annotations"} <= set(module.__all__)


def test_package_lists_every_reexported_name():
    """Functions, classes and constants bound in nncompile/__init__.py are listed; modules
    only where imported as public subpackages."""
    public = {
        n
        for n, v in vars(nncompile).items()
        if not n.startswith("_") and not isinstance(v, types.ModuleType)
    }
    assert public <= set(nncompile.__all__)
    for n in ("nn", "optim", "losses", "metrics", "data", "functional", "viz", "Tensor"):
        assert n in nncompile.__all__
