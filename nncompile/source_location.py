"""Find the user's source line: the innermost stack frame outside nncompile itself."""

from __future__ import annotations

import os
import sys

from . import backends as _backends
from . import ir as _ir

# nncompile/, ir/ and backends/ may live in different folders (package-dir mapping).
_PACKAGE_DIRS = tuple(
    os.path.dirname(os.path.abspath(f)) + os.sep
    for f in (__file__, _ir.__file__, _backends.__file__)
)


def _is_internal(filename: str) -> bool:
    return os.path.abspath(filename).startswith(_PACKAGE_DIRS)


def user_location() -> str | None:
    """'file:line in function' of the first caller outside the nncompile packages."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not _is_internal(filename) and not filename.startswith("<frozen"):
            try:
                shown = os.path.relpath(filename)
                if shown.startswith(".." + os.sep + ".."):
                    shown = filename
            except ValueError:
                shown = filename
            return f"{shown}:{frame.f_lineno} in {frame.f_code.co_name}"
        frame = frame.f_back
    return None
