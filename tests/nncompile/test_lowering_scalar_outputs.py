"""A reduction kernel that also outputs one-element values (fusion puts an optimizer's
step count and bias corrections beside a bias gradient) stores them once: they were
stored at every outer index, past their one-element buffers, so an LLVM-compiled Adam
step over two parameters updated the second wrongly and corrupted the heap."""

import numpy as np
import pytest

import nncompile as nc


def _loss(p, x, y):
    return nc.mean((nc.matmul(x, nc.transpose(p["b"])) + p["a"]) ** 2)


@pytest.mark.parametrize(
    "opt", [nc.optim.Adam(lr=1e-3), nc.optim.AdamW(lr=1e-3)], ids=["adam", "adamw"]
)
def test_compiled_adam_steps_equal_eager(opt):
    rng = np.random.default_rng(0)
    params = {
        "a": rng.standard_normal(32).astype(np.float32),
        "b": rng.standard_normal((32, 9)).astype(np.float32),
    }
    x = rng.standard_normal((4, 9)).astype(np.float32)
    step = nc.train_step(_loss, opt)
    fast = nc.compile(step, backend="llvm")
    pe, se = params, opt.init(params)
    pc, sc = params, opt.init(params)
    for _ in range(3):
        pe, se, le, _ = step(pe, se, x, None, np.float32(1e-3))
        pc, sc, lc, _ = fast(pc, sc, x, None, np.float32(1e-3))
        np.testing.assert_allclose(np.asarray(lc), np.asarray(le), rtol=1e-6)
        for k in params:
            np.testing.assert_allclose(np.asarray(pc[k]), np.asarray(pe[k]), atol=1e-6, err_msg=k)
        assert float(np.asarray(sc["step"])) == float(np.asarray(se["step"]))
