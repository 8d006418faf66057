"""nncompile's environment variables: setting one for a block of code, reading a path."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def override(name: str, value: str | None) -> Iterator[None]:
    """``name`` set to ``value`` inside the block (unchanged when ``value`` is None), and
    restored after it."""
    if value is None:
        yield
        return
    previous = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = previous


def path_variable(name: str) -> str | None:
    """The path an environment variable holds, ``~`` expanded as a shell would (a quoted
    ``"~/x"`` is not expanded by the shell); None when unset or blank."""
    value = os.environ.get(name, "").strip()
    return os.path.expanduser(value) if value else None
