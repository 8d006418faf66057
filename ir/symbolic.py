"""The symbolic batch size: a dimension known as ``a*n + b`` for the run-time size ``n``.

A dynamic-batch compile (``nc.compile(fn, dynamic_batch=True)``) traces with the leading
axis of the batched arguments as the symbol ``n``; every size derived from it is affine in
``n`` (a flatten gives ``784*n``, a concatenation along the batch ``2*n``). One symbol per
graph keeps the algebra trivial: a ``Dim`` is two ints, and everything that is not affine
(``n*n``, a division that is not exact, a slice of the batch) is a ``SymbolicShapeError``
naming what could not be expressed.

Comparisons hold "for every n >= 1": ``Dim(1) >= 1`` is True, ``Dim(1) == 1`` is False
(the sizes differ for n > 1), and a comparison whose answer depends on ``n`` (``n > 5``)
raises. Turning a Dim into an int (``range(d)``, ``np.zeros(shape)``) raises too, so code
that needs a concrete size fails loudly instead of baking one example's size in.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from .errors import ExecutionError, ShapeError

SYMBOL = "n"


class SymbolicShapeError(ShapeError):
    """A shape computation cannot be expressed with the one symbolic batch size ``n``."""


class Dim:
    """The size ``scale * n + offset`` (scale >= 1 and scale + offset >= 0: never negative
    for n >= 1).
    Build them with ``dim(scale, offset)``, which gives a plain int when scale is 0."""

    __slots__ = ("scale", "offset")

    def __init__(self, scale: int = 1, offset: int = 0):
        if type(scale) is not int or type(offset) is not int or scale < 1 or scale + offset < 0:
            raise SymbolicShapeError(
                f"{scale!r}*{SYMBOL} + {offset!r} is not a size for every batch size "
                f"{SYMBOL} >= 1 (a*{SYMBOL} + b needs ints a >= 1 and a + b >= 0)"
            )
        self.scale = scale
        self.offset = offset

    # ---- what it is -----------------------------------------------------------------

    def evaluate(self, n: int) -> int:
        return self.scale * n + self.offset

    def __str__(self) -> str:
        s = SYMBOL if self.scale == 1 else f"{self.scale}{SYMBOL}"
        return f"{s}{self.offset:+d}" if self.offset else s

    __repr__ = __str__

    def __hash__(self) -> int:
        return hash(("Dim", self.scale, self.offset))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Dim):
            return self.scale == other.scale and self.offset == other.offset
        if isinstance(other, int):
            return False  # equal for at most one n
        return NotImplemented

    def __bool__(self) -> bool:
        if self.scale + self.offset > 0:
            return True  # never 0 for n >= 1
        raise SymbolicShapeError(f"whether {self} is 0 depends on the batch size {SYMBOL}")

    def __index__(self) -> int:
        raise SymbolicShapeError(
            f"the size {self} depends on the symbolic batch size {SYMBOL}; this operation "
            "needs a concrete size (compile without dynamic_batch, or keep the batch axis "
            "out of it)"
        )

    __int__ = __index__

    # ---- affine arithmetic ----------------------------------------------------------

    def __add__(self, other: Any) -> Dim | int:
        if isinstance(other, Dim):
            return dim(self.scale + other.scale, self.offset + other.offset)
        if isinstance(other, int):
            return dim(self.scale, self.offset + other)
        return NotImplemented

    __radd__ = __add__

    def __sub__(self, other: Any) -> Dim | int:
        if isinstance(other, Dim):
            return dim(self.scale - other.scale, self.offset - other.offset)
        if isinstance(other, int):
            return dim(self.scale, self.offset - other)
        return NotImplemented

    def __rsub__(self, other: Any) -> Dim | int:
        if isinstance(other, int):
            return dim(-self.scale, other - self.offset)
        return NotImplemented

    def __neg__(self) -> Dim:
        return dim(-self.scale, -self.offset)

    def __mul__(self, other: Any) -> Dim | int:
        if isinstance(other, Dim):
            raise SymbolicShapeError(
                f"{self} * {other} is not affine in the batch size {SYMBOL}: a dynamic-batch "
                "graph may carry the batch in one axis only"
            )
        if isinstance(other, int):
            return dim(self.scale * other, self.offset * other)
        return NotImplemented

    __rmul__ = __mul__

    def __floordiv__(self, other: Any) -> Dim | int:
        if isinstance(other, Dim):
            if other.offset == 0 and self.offset == 0 and self.scale % other.scale == 0:
                return self.scale // other.scale
            raise SymbolicShapeError(f"{self} // {other} is not a constant for every {SYMBOL}")
        if isinstance(other, int) and other > 0:
            if self.scale % other == 0 and self.offset % other == 0:
                return dim(self.scale // other, self.offset // other)
            raise SymbolicShapeError(
                f"{self} is not divisible by {other} for every batch size {SYMBOL}"
            )
        return NotImplemented

    def __rfloordiv__(self, other: Any) -> int:
        raise SymbolicShapeError(f"{other} // {self} depends on the batch size {SYMBOL}")

    def __mod__(self, other: Any) -> int:
        if isinstance(other, int) and other > 0 and self.scale % other == 0:
            return self.offset % other
        if isinstance(other, Dim) and not (self.offset or other.offset):
            if self.scale % other.scale == 0:
                return 0
        raise SymbolicShapeError(f"{self} % {other} depends on the batch size {SYMBOL}")

    # ---- comparisons that hold for every n >= 1 -------------------------------------

    def _compare(self, other: Any, op: str) -> bool:
        if not isinstance(other, (int, Dim)):
            return NotImplemented
        # f(n) = self - other = a*n + b takes its least (a >= 0) or greatest (a <= 0) value
        # at n = 1 and is unbounded the other way, so its sign over n >= 1 is decided there.
        a = self.scale - (other.scale if isinstance(other, Dim) else 0)
        b = self.offset - (other.offset if isinstance(other, Dim) else other)
        strict = op in (">", "<=")  # "<=" is "not >", "<" is "not >="
        always = a >= 0 and (a + b > 0 if strict else a + b >= 0)
        never = a <= 0 and (a + b <= 0 if strict else a + b < 0)
        if always or never:
            return always if op in (">", ">=") else never
        raise SymbolicShapeError(
            f"whether {self} {op} {other} depends on the batch size {SYMBOL}; this needs a "
            "concrete size"
        )

    def __lt__(self, other: Any) -> bool:
        return self._compare(other, "<")

    def __le__(self, other: Any) -> bool:
        return self._compare(other, "<=")

    def __gt__(self, other: Any) -> bool:
        return self._compare(other, ">")

    def __ge__(self, other: Any) -> bool:
        return self._compare(other, ">=")


def dim(scale: int, offset: int = 0) -> Dim | int:
    """``scale*n + offset``: a plain int when scale is 0."""
    return offset if scale == 0 else Dim(scale, offset)


N = Dim(1, 0)  # the batch size itself


def is_symbolic(shape: tuple) -> bool:
    return any(type(d) is Dim for d in shape)


def concrete(shape: tuple, n: int) -> tuple[int, ...]:
    """``shape`` at batch size ``n``."""
    return tuple(d.evaluate(n) if type(d) is Dim else d for d in shape)


def evaluate(size: Dim | int, n: int) -> int:
    return size.evaluate(n) if type(size) is Dim else size


def concrete_attrs(attrs: dict[str, Any], n: int) -> dict[str, Any]:
    """``attrs`` with the sizes in shape-like attributes (a reshape's target) at batch
    size ``n``."""
    out = dict(attrs)
    for k, v in attrs.items():
        if type(v) is tuple and is_symbolic(v):  # (only "ints" attributes hold Dims)
            out[k] = concrete(v, n)
    return out


def bind(shape: tuple, actual: tuple[int, ...]) -> int | None:
    """The n for which ``shape`` equals ``actual`` (None when no symbolic dim fixes it, or
    when no n matches: a fixed size differs, or a symbolic one fits no n >= 1)."""
    n = None
    for d, a in zip(shape, actual, strict=True):
        if type(d) is not Dim and d != a:
            return None
        if type(d) is Dim:
            q, r = divmod(a - d.offset, d.scale)
            if r or q < 1 or (n is not None and q != n):
                return None
            n = q
    return n


def encode(d: Dim | int) -> int | str:
    """JSON form: an int, or the string ``"a*n+b"``."""
    return d if type(d) is not Dim else f"{d.scale}*{SYMBOL}+{d.offset}"


_ENCODED = re.compile(rf"(\d+)\*{SYMBOL}\+(-?\d+)")


def decode(obj: object) -> Dim | int | None:
    """The size encoded by ``encode``; None when ``obj`` is neither form."""
    if isinstance(obj, int) and not isinstance(obj, bool):
        return obj
    match = _ENCODED.fullmatch(obj) if isinstance(obj, str) else None
    if match is None:
        return None
    try:
        return dim(int(match[1]), int(match[2]))
    except SymbolicShapeError:
        return None


# ---- the batch size of the graph being run (the NumPy interpreter's binding) -------------

_BOUND: contextvars.ContextVar[int | None] = contextvars.ContextVar("batch_size", default=None)


@contextlib.contextmanager
def bound_batch(n: int | None) -> Iterator[None]:
    """While running a dynamic-batch graph: ``batch_size`` nodes read ``n``."""
    token = _BOUND.set(n)
    try:
        yield
    finally:
        _BOUND.reset(token)


def bound_batch_size() -> int:
    n = _BOUND.get()
    if n is None:
        raise ExecutionError(
            "batch_size: no batch size is bound (a dynamic-batch graph runs through "
            "nc.run or a compiled function, which bind it from the batched inputs)"
        )
    return n


def batch_of(
    types: Iterable[tuple], shapes: Iterable[tuple[int, ...]], what: str = "input", numbers=None
) -> int | None:
    """The batch size n that makes the input shapes ``shapes`` match the graph's input
    ``types`` (shapes that may hold Dims); None when no input is batched. A mismatch is a
    ShapeError naming the input (its number in ``numbers``, when given)."""
    n = None
    for k, (want, got) in enumerate(zip(types, shapes, strict=True)):
        if not is_symbolic(want):
            continue
        if numbers is not None:
            k = numbers[k]
        if len(want) != len(got):
            raise ShapeError(f"{what} {k} expects shape {_show(want)}, got {tuple(got)}")
        this = bind(want, tuple(got))
        if this is None or (n is not None and this != n):
            where = "" if n is None else f" (the batched inputs before it have n = {n})"
            raise ShapeError(f"{what} {k} expects shape {_show(want)}, got {tuple(got)}{where}")
        n = this
    return n


class BatchBinding:
    """A dynamic-batch program's batch size for each call, from its inputs' shapes, and
    the input and output shapes that size gives (kept for recent sizes): what both
    native executables check a call against."""

    def __init__(self, inputs: list[tuple], outputs: list[tuple]):
        self.inputs, self.outputs = inputs, outputs
        self.batched = [i for i, s in enumerate(inputs) if is_symbolic(s)]
        self._at: dict[int, tuple[list[tuple], list[tuple]]] = {}

    def bind(self, shapes: Sequence[tuple]) -> tuple[int, list[tuple], list[tuple]]:
        """(n, input shapes, output shapes) for a call whose inputs have ``shapes``; a
        ShapeError names a batched input that fits no n or another input's n."""
        batched = self.batched
        n = batch_of(
            [self.inputs[i] for i in batched], [shapes[i] for i in batched], "input", batched
        )
        at = self._at.get(n)
        if at is None:
            if len(self._at) > 64:  # (a long run over many sizes)
                self._at.clear()
            at = self._at[n] = (
                [concrete(s, n) for s in self.inputs],
                [concrete(s, n) for s in self.outputs],
            )
        return n, at[0], at[1]


def _show(shape: tuple) -> str:
    return "(" + ", ".join(map(str, shape)) + ("," if len(shape) == 1 else "") + ")"


# ---- sizes for heuristics -------------------------------------------------------------

# Choices that only affect speed (run a loop on threads? block a GEMM how?) need a number
# where the size is symbolic: the batch size the graph was first called with, and at least
# this (a first call on one sample must not make every later batch run on one thread; the
# executable still picks one thread per call where that is faster).
DEFAULT_HINT = 64
_HINT: contextvars.ContextVar[int] = contextvars.ContextVar("batch_hint", default=DEFAULT_HINT)


@contextlib.contextmanager
def batch_hint(n: int | None) -> Iterator[None]:
    """While lowering a dynamic-batch graph: the batch size ``hint`` assumes."""
    token = _HINT.set(DEFAULT_HINT if n is None else max(n, DEFAULT_HINT))
    try:
        yield
    finally:
        _HINT.reset(token)


def hint(size: Dim | int) -> int:
    """A size for a heuristic: symbolic sizes at the hinted batch size. Never use it for
    anything that decides what the code computes."""
    return size.evaluate(_HINT.get()) if type(size) is Dim else size


def can_exceed(size: Dim | int, k: int) -> bool:
    """Whether ``size`` can be more than ``k``: a symbolic size can (for a large n). For
    choices such as "hoist the scalars out of the loop when it has more than one
    iteration", which are right for every size and only pay off for larger ones."""
    return True if type(size) is Dim else size > k
