"""A clear error when nncompile is imported from a source checkout that was not installed.

``ir/`` and ``backends/`` are top-level folders of the repository that install as
``nncompile.ir`` and ``nncompile.backends`` (package-dir mapping in pyproject.toml), so a
checkout imported as it is, from its root folder, has no ``nncompile.ir``: the next import
in ``nncompile/__init__.py`` would fail with "partially initialized module". This module
is imported first and says how to install instead.
"""

from __future__ import annotations

import importlib.util
import os

if importlib.util.find_spec(__package__ + ".ir") is None:
    _root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    raise ImportError(
        f"nncompile is imported from the source folder {_root} without being installed, so "
        "its ir/ and backends/ folders are not nncompile.ir and nncompile.backends yet. "
        f"Install it first: pip install -e {_root}"
    )
