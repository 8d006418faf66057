"""Drawing graphviz graphs to files: ``render(drawing, path)`` and the ``Picture`` it returns.

The ``graphviz`` package runs the ``dot`` program; its output is taken in memory
(``pipe``) and written with ``atomic_write``, so a failed or killed drawing never leaves
half a file. Without ``dot`` (``graphviz.ExecutableNotFound``) the DOT text is written as
a .dot file and the message says how to install graphviz and finish the drawing.
"""

from __future__ import annotations

import os
from typing import Any

import graphviz

from .fileio import atomic_write
from .ir.errors import ConfigError

FORMATS = ("svg", "png", "pdf", "dot")
INSTALL_HINT = (
    "Install graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install graphviz; "
    "conda: conda install graphviz)"
)

# A graph built with the graphviz package, or DOT text (kept for callers that have text).
Drawing = graphviz.Digraph | graphviz.Graph | graphviz.Source | str


def _source(drawing: Drawing) -> graphviz.Digraph | graphviz.Graph | graphviz.Source:
    return graphviz.Source(drawing) if isinstance(drawing, str) else drawing


def dot_text(drawing: Drawing) -> str:
    """The DOT text of ``drawing``."""
    return drawing if isinstance(drawing, str) else drawing.source


def draw(drawing: Drawing, fmt: str) -> bytes:
    """``drawing`` drawn by ``dot`` as ``fmt`` bytes, in memory. Raises
    ``graphviz.ExecutableNotFound`` without ``dot``, ``ConfigError`` when ``dot`` fails."""
    try:
        # quiet: dot's warnings would interleave with the caller's output; failures carry
        # stderr in the error below.
        return _source(drawing).pipe(format=fmt, quiet=True)
    except graphviz.CalledProcessError as e:
        stderr = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr
        raise ConfigError(f"dot failed drawing {fmt}: {(stderr or '')[:500]}") from None


class Picture(str):
    """The path a picture was written to: a plain ``str`` to every caller, which Jupyter
    shows as the picture itself (``nc.viz(...)`` as a cell's last line draws the graph)."""

    drawing: Drawing | None
    _svg: str | None

    def __new__(cls, path: str, drawing: Drawing | None = None) -> Picture:
        # drawing defaults to None so that copies and pickles (str(path) only) still work
        self = super().__new__(cls, path)
        self.drawing = drawing
        self._svg = None
        return self

    def svg(self) -> str | None:
        """The picture as SVG text, or None when it cannot be drawn (no ``dot``)."""
        if self._svg is None and self.drawing is not None:
            try:
                self._svg = draw(self.drawing, "svg").decode("utf-8")
            except (graphviz.ExecutableNotFound, ConfigError):
                return None
        return self._svg

    def _repr_svg_(self) -> str | None:
        return self.svg()

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str] | None:
        svg = self.svg()
        return None if svg is None else {"image/svg+xml": svg, "text/plain": repr(str(self))}


def render(drawing: Drawing, path: str) -> tuple[Picture, str]:
    """Write ``drawing`` as ``path`` (format from the extension). Returns (written path,
    message). Without the ``dot`` program a .dot file is written instead."""
    base, ext = os.path.splitext(path)
    fmt = ext.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ConfigError(f"graph pictures are {', '.join(FORMATS)}; got {path!r}")
    if fmt == "dot":
        atomic_write(path, dot_text(drawing))
        return Picture(path, drawing), f"wrote {path}"
    try:
        data = draw(drawing, fmt)
    except graphviz.ExecutableNotFound:
        fallback = base + ".dot"
        atomic_write(fallback, dot_text(drawing))
        return Picture(fallback, drawing), (
            f"the graphviz 'dot' program is not installed, so {path} was not drawn; wrote "
            f"{fallback} instead. {INSTALL_HINT} and run: dot -T{fmt} {fallback} -o {path}"
        )
    atomic_write(path, data)
    return Picture(path, drawing), f"wrote {path}"
