"""nc.optim against torch.optim: 5 steps on the same params and gradient sequence in
float64 (rtol 1e-10), eagerly and as a traced graph with the learning rate as an input."""

import numpy as np
import pytest

import nncompile as nc
from nncompile import optim

torch = pytest.importorskip("torch")

RTOL = 1e-10
STEPS = 5


def make_problem(seed=0):
    rng = np.random.default_rng(seed)
    params = {
        "w": rng.standard_normal((3, 4)),
        "b": rng.standard_normal(4),
        "nested": [rng.standard_normal((2, 2))],
    }
    grads = [
        {
            "w": rng.standard_normal((3, 4)),
            "b": rng.standard_normal(4),
            "nested": [rng.standard_normal((2, 2))],
        }
        for _ in range(STEPS)
    ]
    return params, grads


def leaves(tree):
    return [tree["w"], tree["b"], tree["nested"][0]]


def state_leaves(state):
    out = []
    for k in sorted(state):
        out += [state[k]] if k == "step" else leaves(state[k])
    return out


CASES = [
    ("SGD", {}),
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "dampening": 0.5}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.1, "weight_decay": 0.05}),
    ("SGD", {"lr": 0.1, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.05}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.05}),
    ("Adam", {}),
    ("Adam", {"lr": 0.05}),
    ("Adam", {"lr": 0.05, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.05, "betas": (0.8, 0.95), "eps": 1e-3}),
    ("AdamW", {}),
    ("AdamW", {"lr": 0.05}),
    ("AdamW", {"lr": 0.05, "weight_decay": 0.3, "betas": (0.85, 0.99)}),
    ("AdamW", {"lr": 0.05, "weight_decay": 0.0}),
    ("RMSprop", {}),
    ("RMSprop", {"lr": 0.01, "alpha": 0.9}),
    ("RMSprop", {"lr": 0.01, "centered": True}),
    ("RMSprop", {"lr": 0.01, "momentum": 0.9}),
    ("RMSprop", {"lr": 0.01, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.01, "centered": True, "momentum": 0.5, "weight_decay": 0.1, "eps": 1e-4}),
]
IDS = [f"{name}-{'-'.join(f'{k}={v}' for k, v in kw.items()) or 'defaults'}" for name, kw in CASES]


def torch_run(name, kw, params, grads, lrs=None):
    """Parameters and optimizer state after each step of torch.optim.<name>."""
    ts = [torch.tensor(p, requires_grad=True) for p in leaves(params)]
    opt = getattr(torch.optim, name)(ts, **kw)
    history = []
    for k, g in enumerate(grads):
        if lrs is not None:
            opt.param_groups[0]["lr"] = lrs[k]
        for t, gl in zip(ts, leaves(g), strict=True):
            t.grad = torch.tensor(gl)
        opt.step()
        state = [
            {
                key: v.detach().numpy().copy()
                for key, v in opt.state[t].items()
                if isinstance(v, torch.Tensor)
            }
            for t in ts
        ]
        history.append(([t.detach().numpy().copy() for t in ts], state))
    return history


def assert_matches_torch(p, s, want_p, want_s, step):
    for k, (got, want) in enumerate(zip(leaves(p), want_p, strict=True)):
        np.testing.assert_allclose(
            np.asarray(got), want, rtol=RTOL, atol=1e-14, err_msg=f"param {k} after step {step}"
        )
        assert np.asarray(got).dtype == np.float64
    assert float(np.asarray(s["step"])) == step
    for name, tree in s.items():
        if name == "step":
            continue
        for k, got in enumerate(leaves(tree)):
            np.testing.assert_allclose(
                np.asarray(got),
                want_s[k][name],
                rtol=RTOL,
                atol=1e-14,
                err_msg=f"{name} of param {k} after step {step}",
            )


@pytest.mark.parametrize("name, kw", CASES, ids=IDS)
def test_optimizer_matches_torch_eager(name, kw):
    params, grads = make_problem()
    opt = getattr(optim, name)(**kw)
    state = opt.init(params)
    history = torch_run(name, kw, params, grads)
    p = params
    for step, (g, (want_p, want_s)) in enumerate(zip(grads, history, strict=True), 1):
        p, state = opt.update(p, g, state, np.float64(opt.lr))
        assert_matches_torch(p, state, want_p, want_s, step)


@pytest.mark.parametrize("name, kw", CASES[2::2], ids=IDS[2::2])
def test_optimizer_traced_equals_eager_and_torch_with_lr_schedule(name, kw):
    """One graph, lr as an input: 5 runs with a changing lr equal eager exactly and torch
    with the same schedule; nothing is retraced."""
    params, grads = make_problem(1)
    opt = getattr(optim, name)(**kw)
    state0 = opt.init(params)

    def update(p, g, s, lr):
        return opt.update(p, g, s, lr)

    graph = nc.trace(update, params, grads[0], state0, np.float64(0.1))
    # params, grads, step, buffers, and lr: a graph input, not a constant
    assert len(graph.inputs) == 3 + 3 + 1 + 3 * len(opt.buffers) + 1
    lrs = [0.1, 0.05, 0.02, 0.2, 0.01]
    history = torch_run(name, kw, params, grads, lrs)
    pe, se, pt, st = params, state0, params, state0
    for step, (g, lr, (want_p, want_s)) in enumerate(zip(grads, lrs, history, strict=True), 1):
        pe, se = opt.update(pe, g, se, np.float64(lr))
        pt, st = nc.run(graph, pt, g, st, np.float64(lr))
        assert sorted(se) == sorted(st)
        for a, b in zip(leaves(pe) + state_leaves(se), leaves(pt) + state_leaves(st), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        assert_matches_torch(pt, st, want_p, want_s, step)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop"])
def test_lr_input_changes_result_of_same_graph(name):
    params, grads = make_problem(2)
    opt = getattr(optim, name)(lr=0.1)
    state = opt.init(params)
    graph = nc.trace(
        lambda p, g, s, lr: opt.update(p, g, s, lr), params, grads[0], state, np.float64(0.1)
    )
    runs = {lr: nc.run(graph, params, grads[0], state, np.float64(lr)) for lr in (0.1, 0.01)}
    for lr, (p, _) in runs.items():
        eager, _ = opt.update(params, grads[0], state, np.float64(lr))
        for a, b in zip(leaves(eager), leaves(p), strict=True):
            np.testing.assert_array_equal(np.asarray(a), b)
    # first step of every optimizer here is p - lr * d with d independent of lr
    # (except AdamW, where the decay term lr * wd * p is linear in lr as well)
    d_big = params["w"] - runs[0.1][0]["w"]
    d_small = params["w"] - runs[0.01][0]["w"]
    assert not np.allclose(d_big, d_small)
    np.testing.assert_allclose(d_big, 10 * d_small, rtol=1e-9)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop"])
@pytest.mark.parametrize("how", ["default", "python_float"])
def test_python_float_lr_keeps_float64_precision(name, how):
    """The default lr (and a Python float lr) must act at the parameters' precision: the
    float64 update equals the one with np.float64(lr) exactly and torch within 1e-10."""
    params, grads = make_problem(4)
    opt = getattr(optim, name)(lr=0.1)
    state = opt.init(params)
    want, _ = opt.update(params, grads[0], state, np.float64(0.1))
    got, _ = (
        opt.update(params, grads[0], state)
        if how == "default"
        else opt.update(params, grads[0], state, 0.1)
    )
    np.testing.assert_array_equal(np.asarray(got["w"]), np.asarray(want["w"]))
    (torch_p, _), *_ = torch_run(name, {"lr": 0.1}, params, grads[:1])
    np.testing.assert_allclose(np.asarray(got["w"]), torch_p[0], rtol=RTOL, atol=1e-14)


def test_default_lr_is_used_without_lr_argument():
    params, grads = make_problem(3)
    opt = optim.Adam(lr=0.02)
    state = opt.init(params)
    a, _ = opt.update(params, grads[0], state)
    b, _ = opt.update(params, grads[0], state, 0.02)
    np.testing.assert_array_equal(np.asarray(a["w"]), np.asarray(b["w"]))


def test_optimizer_validation_and_lookup():
    with pytest.raises(ValueError):
        optim.SGD(lr=-1.0)
    with pytest.raises(ValueError):
        optim.SGD(lr=0.1, nesterov=True)
    with pytest.raises(ValueError):
        optim.SGD(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)
    assert isinstance(optim.get("adamw"), optim.AdamW)
    opt = optim.RMSprop()
    assert optim.get(opt) is opt
    with pytest.raises(ValueError, match="unknown optimizer"):
        optim.get("lamb")
