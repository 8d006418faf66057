"""Compiling freezes the objects that existed before (gc.freeze) so that collections do not
rescan the whole process, and leaves the collector as it found it: after a compile, after
a failed one, and after several threads compiled at once."""

from __future__ import annotations

import gc
import threading

import numpy as np
import pytest

import nncompile as nc
from nncompile.gc_freeze import outside_objects_frozen


def test_objects_are_frozen_only_while_compiling():
    assert gc.get_freeze_count() == 0
    with outside_objects_frozen():
        assert gc.get_freeze_count() > 0
        with outside_objects_frozen():  # nested (a compile inside a compile)
            assert gc.get_freeze_count() > 0
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


def test_a_compile_and_a_failed_one_leave_the_collector_as_it_was():
    enabled = gc.isenabled()
    nc.compile(lambda x: nc.tanh(x) * 2)(np.ones(3, np.float32))
    with pytest.raises(nc.NCError):
        nc.compile(lambda x: x @ x)(np.ones((2, 3), np.float32))
    assert gc.get_freeze_count() == 0 and gc.isenabled() == enabled


def test_threads_compiling_at_once_unfreeze_once_all_finish():
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
    assert not errors and gc.get_freeze_count() == 0
