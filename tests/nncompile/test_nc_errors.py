"""Errors: the project's exception types, messages that name the op and the operand
shapes/dtypes, and (while tracing) the user's file:line of the offending call.

Each offending call below sits on the first line of its function's body, so its line
number is ``fn.__code__.co_firstlineno + 1``.
"""

import os
import re

import numpy as np
import pytest

import nncompile as nc

THIS_FILE = os.path.basename(__file__)

F23 = np.ones((2, 3), np.float32)
F43 = np.ones((4, 3), np.float32)
B23 = np.ones((2, 3), bool)
IMG = np.ones((1, 3, 5, 5), np.float32)
W_BAD = np.ones((2, 4, 3, 3), np.float32)
W_OK = np.ones((2, 3, 3, 3), np.float32)
LOGITS = np.ones((4, 5), np.float32)


def _add_broadcast(x, y):
    return nc.add(x, y)


def _add_operator(x, y):
    return nc.asarray(x) + y


def _matmul(x, y):
    return nc.matmul(x, y)


def _matmul_operator(x, y):
    return nc.asarray(x) @ y


def _conv2d_channels(x, w):
    return nc.conv2d(x, w)


def _reshape(x):
    return nc.reshape(x, (4, 2))


def _reshape_minus_one(x):
    return nc.reshape(x, (-1, 4))


def _concat(x, y):
    return nc.concatenate([x, y], axis=1)


def _where(c, x, y):
    return nc.where(c, x, y)


def _add_bool(x, y):
    return nc.add(x, y)


def _matmul_bool(x, y):
    return nc.matmul(x, y)


def _one_hot_float(i):
    return nc.one_hot(i, 3)


def _conv2d_bias(x, w, b):
    return nc.conv2d(x, w, b)


def _max_pool_rank(x):
    return nc.max_pool2d(x, 2)


def _softmax_int(x):
    return nc.softmax(x)


def _cross_entropy_labels(logits, labels):
    return nc.cross_entropy(logits, labels)


def _getitem_out_of_bounds(x):
    return nc.asarray(x)[5]


# name: (fn, args, exception, op named in the message, shapes named, dtypes named)
CASES = {
    "add": (_add_broadcast, (F23, F43), nc.ShapeError, "add", [(2, 3), (4, 3)], ["float32"]),
    "add_operator": (_add_operator, (F23, F43), nc.ShapeError, "add", [(2, 3), (4, 3)], []),
    "matmul": (_matmul, (F23, F23), nc.ShapeError, "matmul", [(2, 3)], ["float32"]),
    "matmul_operator": (_matmul_operator, (F23, F43), nc.ShapeError, "matmul", [(2, 3)], []),
    "conv2d": (
        _conv2d_channels,
        (IMG, W_BAD),
        nc.ShapeError,
        "conv2d",
        [(1, 3, 5, 5), (2, 4, 3, 3)],
        ["float32"],
    ),
    "reshape": (_reshape, (F23,), nc.ShapeError, "reshape", [(2, 3), (4, 2)], []),
    "reshape_minus_one": (_reshape_minus_one, (F23,), nc.ShapeError, "reshape", [(2, 3)], []),
    "concat": (_concat, (F23, F43), nc.ShapeError, "concat", [(2, 3), (4, 3)], []),
    "where": (
        _where,
        (B23, F23, np.ones(4, np.float32)),
        nc.ShapeError,
        "where",
        [(2, 3), (4,)],
        ["bool"],
    ),
    "add_bool": (_add_bool, (B23, B23), nc.DTypeError, "add", [(2, 3)], ["bool"]),
    "matmul_bool": (_matmul_bool, (B23, B23), nc.DTypeError, "matmul", [(2, 3)], ["bool"]),
    "one_hot_float": (
        _one_hot_float,
        (np.ones(2, np.float32),),
        nc.DTypeError,
        "one_hot",
        [(2,)],
        ["float32"],
    ),
    "conv2d_bias": (
        _conv2d_bias,
        (IMG, W_OK, np.ones(3, np.float32)),
        nc.ShapeError,
        "conv2d",
        [(3,)],
        [],
    ),
    "max_pool2d_rank": (_max_pool_rank, (F23,), nc.ShapeError, "max_pool2d", [(2, 3)], []),
    "softmax_int": (
        _softmax_int,
        (np.ones(3, np.int32),),
        nc.DTypeError,
        "softmax",
        [],
        ["int32"],
    ),
    "cross_entropy_labels": (
        _cross_entropy_labels,
        (LOGITS, np.ones(3, np.int64)),
        nc.ShapeError,
        "cross_entropy",
        [(4, 5), (3,)],
        [],
    ),
    "getitem": (_getitem_out_of_bounds, (F23,), nc.ShapeError, None, [], []),
}


def _shape_patterns(shape):
    inner_tight = ",".join(map(str, shape))
    return [f"[{inner_tight}]", str(tuple(shape)), str(list(shape))]


def assert_message(msg, op, shapes, dtypes):
    if op is not None:
        assert re.search(rf"\b{op}\b", msg), f"op {op!r} not named in: {msg}"
    for s in shapes:
        assert any(p in msg for p in _shape_patterns(s)), f"shape {s} not named in: {msg}"
    for d in dtypes:
        assert d in msg, f"dtype {d} not named in: {msg}"


def assert_location(msg, fn):
    line = fn.__code__.co_firstlineno + 1
    assert re.search(rf"{re.escape(THIS_FILE)}:{line}\b", msg), (
        f"expected {THIS_FILE}:{line} in: {msg}"
    )


@pytest.mark.parametrize("name", list(CASES))
def test_eager_error_names_op_and_operands(name):
    fn, args, exc, op, shapes, dtypes = CASES[name]
    with pytest.raises(exc) as info:
        fn(*args)
    assert isinstance(info.value, nc.NCError)
    assert_message(str(info.value), op, shapes, dtypes)


@pytest.mark.parametrize("name", list(CASES))
def test_traced_error_names_op_operands_and_user_line(name):
    fn, args, exc, op, shapes, dtypes = CASES[name]
    with pytest.raises(exc) as info:
        nc.trace(fn, *args)
    msg = str(info.value)
    assert_message(msg, op, shapes, dtypes)
    assert_location(msg, fn)


def _convert_in_trace(x):
    return np.asarray(nc.exp(x))


def _bool_in_trace(x):
    return x if nc.sum(x) > 0 else -x


def test_trace_error_names_user_line():
    for fn in (_convert_in_trace, _bool_in_trace):
        with pytest.raises(nc.TraceError) as info:
            nc.trace(fn, F23)
        assert_location(str(info.value), fn)


def test_exception_hierarchy():
    for exc in (nc.ShapeError, nc.DTypeError, nc.TraceError, nc.ExecutionError, nc.GraphError):
        assert issubclass(exc, nc.NCError)
        assert issubclass(exc, Exception)
    assert issubclass(nc.ShapeError, ValueError)
    assert issubclass(nc.DTypeError, TypeError)
    assert not issubclass(nc.ShapeError, nc.DTypeError)


def test_run_input_errors_name_the_mismatch():
    g = nc.trace(lambda x: nc.exp(x), F23)
    with pytest.raises(nc.ShapeError) as info:
        nc.run(g, F43)
    assert "(4, 3)" in str(info.value) and "(2, 3)" in str(info.value)
    with pytest.raises(nc.DTypeError) as info:
        nc.run(g, F23.astype(np.float64))
    assert "float64" in str(info.value) and "float32" in str(info.value)


def test_unsupported_dtype_message_lists_supported():
    with pytest.raises(nc.DTypeError) as info:
        nc.asarray(np.zeros(2, np.float16))
    msg = str(info.value)
    assert "float16" in msg and "float32" in msg


def test_gather_index_out_of_range_raises_project_error():
    with pytest.raises(nc.NCError) as info:
        nc.take(F23, np.array([7]), axis=1)
    assert "7" in str(info.value)


def test_unsupported_pool_options():
    with pytest.raises(NotImplementedError):
        nc.max_pool2d(IMG, 2, ceil_mode=True)
