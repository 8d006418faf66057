"""Compiling makes the collector's full collections rare (gc_defer.py) and leaves its
thresholds as it found them: after a compile, after a failed one, after several threads
compiled at once; and a compile-and-drop loop does not grow."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest

import nncompile as nc
from nncompile.gc_defer import FULL_COLLECTION_EVERY, full_collections_deferred


def test_full_collections_are_rare_only_while_compiling():
    before = gc.get_threshold()
    with full_collections_deferred():
        assert gc.get_threshold()[2] >= FULL_COLLECTION_EVERY
        with full_collections_deferred():  # nested (a compile inside a compile)
            assert gc.get_threshold()[2] >= FULL_COLLECTION_EVERY
        assert gc.get_threshold()[2] >= FULL_COLLECTION_EVERY
    assert gc.get_threshold() == before


def test_a_compile_and_a_failed_one_leave_the_collector_as_it_was():
    before, enabled = gc.get_threshold(), gc.isenabled()
    nc.compile(lambda x: nc.tanh(x) * 2)(np.ones(3, np.float32))
    with pytest.raises(nc.NCError):
        nc.compile(lambda x: x @ x)(np.ones((2, 3), np.float32))
    assert gc.get_threshold() == before and gc.isenabled() == enabled


def test_threads_compiling_at_once_restore_once_all_finish():
    before = gc.get_threshold()
    errors = []

    def work(k: int) -> None:
        try:
            f = nc.compile(lambda x: nc.exp(x) + k)
            np.testing.assert_allclose(f(np.zeros(4, np.float32)), np.full(4, 1.0 + k))
        except Exception as e:  # reported below: a thread's exception is otherwise lost
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and gc.get_threshold() == before
