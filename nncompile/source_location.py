"""Find the user's source line: the innermost stack frame outside nncompile itself."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import TypeVar

from . import backends as _backends
from . import ir as _ir
from .ir.errors import NCError

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


F = TypeVar("F", bound=Callable)
_AT = "\n  at "


def reports_user_line(fn: F) -> F:
    """Errors raised inside ``fn`` (a user-facing op function) name the user's line,
    as errors from type inference already do."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NCError as e:
            if _AT in str(e):
                raise
            where = user_location()
            if where is None:
                raise
            raise type(e)(f"{e}{_AT}{where}") from None

    return wrapper  # type: ignore[return-value]
