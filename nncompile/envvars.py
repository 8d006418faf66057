"""Setting an environment variable for a block of code (config.py reads them)."""

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
