"""Graph input names come from argument names and dict keys; backends use them as
identifiers (CUDA C parameters), so keys such as "query/kernel" are cleaned and clashes
made unique."""

import numpy as np

import nncompile as nc


def test_dict_keys_give_identifier_input_names():
    def f(params, x):
        return params["query/kernel"] * params["query_kernel"] + params["a b-c"] + x

    one = np.ones(2, np.float32)
    graph = nc.trace(f, {"query/kernel": one, "query_kernel": one, "a b-c": one}, one)
    names = [v.name for v in graph.inputs]
    assert all(name.isidentifier() for name in names), names
    assert len(set(names)) == len(names)
    assert "params_a_b_c" in names
