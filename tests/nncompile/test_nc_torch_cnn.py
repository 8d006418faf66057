"""The seed CNN trained for 5 Adam steps with nc.train_step (eager and as one traced graph)
against the same model in PyTorch, float32.

Conv2D(32, 3x3, relu) -> MaxPool(2x2) -> Flatten -> Dense(64, relu) -> Dense(10) ->
sparse cross-entropy from logits; a batch of 16 fixed 28x28x1 images. nncompile runs NHWC
and flattens (H, W, C); torch runs NCHW and flattens (C, H, W), so the first dense weight
is permuted between the two."""

import numpy as np
import pytest

import nncompile as nc
from nncompile import functional as fn
from nncompile import init, losses, optim

torch = pytest.importorskip("torch")
F = torch.nn.functional

N, HW, C, HID, CLASSES, STEPS = 16, 28, 32, 64, 10, 5
P = (HW - 2) // 2  # 13: spatial size after conv (valid) and pool
LR = 1e-3
# Adam divides by sqrt(v) + 1e-8, so a gradient that is nonzero but below ~1e-6 (float32
# cancellation noise, ~1e-8 here) moves its weight by an amount decided by that noise in
# both frameworks. Such elements (a handful out of 350k) are compared only loosely.
NOISE_FLOOR = 1e-6


def nc_to_torch_dense(k):
    """(P*P*C, HID) kernel over (H, W, C)-flattened inputs -> torch (HID, C*P*P) weight."""
    return k.reshape(P, P, C, HID).transpose(3, 2, 0, 1).reshape(HID, C * P * P)


def torch_to_nc_dense(w):
    return w.reshape(HID, C, P, P).transpose(2, 3, 1, 0).reshape(P * P * C, HID)


def make_data_and_params():
    rng = np.random.default_rng(2024)
    x = rng.standard_normal((N, HW, HW, 1)).astype(np.float32)
    y = rng.integers(0, CLASSES, N).astype(np.int64)
    params = {
        "conv_w": init.glorot_uniform((C, 1, 3, 3), rng),
        "conv_b": rng.uniform(-0.1, 0.1, C).astype(np.float32),
        "d1_k": init.glorot_uniform((P * P * C, HID), rng, layout="in_out"),
        "d1_b": rng.uniform(-0.1, 0.1, HID).astype(np.float32),
        "d2_k": init.glorot_uniform((HID, CLASSES), rng, layout="in_out"),
        "d2_b": rng.uniform(-0.1, 0.1, CLASSES).astype(np.float32),
    }
    return x, y, params


def loss_fn(p, x, y):
    h = fn.conv2d_layer(x, p["conv_w"], p["conv_b"], act="relu")
    h = fn.flatten(fn.max_pool(h, 2))
    h = fn.dense(h, p["d1_k"], p["d1_b"], act="relu")
    logits = fn.dense(h, p["d2_k"], p["d2_b"])
    loss = losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    acc = nc.mean(nc.astype(nc.equal(nc.argmax(logits, axis=-1), y), "float32"))
    return loss, {"accuracy": acc}


class TorchCNN(torch.nn.Module):
    def __init__(self, p):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, C, 3)
        self.fc1 = torch.nn.Linear(C * P * P, HID)
        self.fc2 = torch.nn.Linear(HID, CLASSES)
        with torch.no_grad():
            self.conv.weight.copy_(torch.from_numpy(p["conv_w"]))
            self.conv.bias.copy_(torch.from_numpy(p["conv_b"]))
            self.fc1.weight.copy_(torch.from_numpy(nc_to_torch_dense(p["d1_k"])))
            self.fc1.bias.copy_(torch.from_numpy(p["d1_b"]))
            self.fc2.weight.copy_(torch.from_numpy(p["d2_k"].T.copy()))
            self.fc2.bias.copy_(torch.from_numpy(p["d2_b"]))

    def forward(self, x):  # x: NCHW
        h = F.max_pool2d(F.relu(self.conv(x)), 2)
        return self.fc2(F.relu(self.fc1(torch.flatten(h, 1))))

    def as_nc_params(self, grads=False):
        def d(t):
            return (t.grad if grads else t).detach().numpy().copy()

        return {
            "conv_w": d(self.conv.weight),
            "conv_b": d(self.conv.bias),
            "d1_k": torch_to_nc_dense(d(self.fc1.weight)),
            "d1_b": d(self.fc1.bias),
            "d2_k": d(self.fc2.weight).T,
            "d2_b": d(self.fc2.bias),
        }


@pytest.fixture(scope="module")
def runs():
    x, y, params = make_data_and_params()
    opt = optim.Adam()
    step = nc.train_step(loss_fn, opt)
    lr = np.float32(LR)

    eager, p, s = [], params, opt.init(params)
    for _ in range(STEPS):
        p, s, loss, metrics = step(p, s, x, y, lr)
        eager.append((p, s, loss, metrics))

    graph = nc.trace(step, params, opt.init(params), x, y, lr)
    traced, p, s = [], params, opt.init(params)
    for _ in range(STEPS):
        p, s, loss, metrics = nc.run(graph, p, s, x, y, lr)
        traced.append((p, s, loss, metrics))

    model = TorchCNN(params)
    topt = torch.optim.Adam(model.parameters(), lr=LR)
    tx, ty = torch.from_numpy(x).permute(0, 3, 1, 2), torch.from_numpy(y)
    reference, noisy = [], {k: np.zeros(v.shape, bool) for k, v in params.items()}
    for _ in range(STEPS):
        topt.zero_grad()
        tloss = F.cross_entropy(model(tx), ty)
        tloss.backward()
        for name, g in model.as_nc_params(grads=True).items():
            noisy[name] |= (g != 0) & (np.abs(g) < NOISE_FLOOR)
        topt.step()
        reference.append(
            (model.as_nc_params(), tloss.item(), {k: v.copy() for k, v in noisy.items()})
        )
    return {"eager": eager, "traced": traced, "torch": reference, "graph": graph}


def test_flatten_orders_agree_at_init():
    x, y, params = make_data_and_params()
    loss, _ = loss_fn(params, x, y)
    model = TorchCNN(params)
    want = F.cross_entropy(model(torch.from_numpy(x).permute(0, 3, 1, 2)), torch.from_numpy(y))
    np.testing.assert_allclose(np.asarray(loss), want.item(), rtol=1e-6)
    grads = nc.grad(lambda p: loss_fn(p, x, y)[0])(params)
    want.backward()
    np.testing.assert_allclose(
        np.asarray(grads["d1_k"]),
        torch_to_nc_dense(model.fc1.weight.grad.numpy()),
        rtol=1e-4,
        atol=1e-7,
    )


@pytest.mark.parametrize("mode", ["eager", "traced"])
def test_params_and_losses_match_torch_adam(runs, mode):
    for k, ((p, _, loss, metrics), (want_p, want_loss, noisy)) in enumerate(
        zip(runs[mode], runs["torch"], strict=True)
    ):
        np.testing.assert_allclose(np.asarray(loss), want_loss, rtol=1e-5, err_msg=f"step {k}")
        assert set(metrics) == {"accuracy"}
        assert 0 <= float(np.asarray(metrics["accuracy"])) <= 1
        for name, want in want_p.items():
            got = np.asarray(p[name])
            assert got.dtype == np.float32 and got.shape == want.shape, name
            assert noisy[name].mean() < 1e-3, (name, noisy[name].sum())
            clean = ~noisy[name]
            np.testing.assert_allclose(
                got[clean], want[clean], rtol=1e-5, atol=1e-5, err_msg=f"{name} after step {k + 1}"
            )
            assert np.all(np.abs(got - want) <= 2 * LR * (k + 1)), name
    # the loss went down under Adam on a fixed batch
    losses_ = [float(np.asarray(r[2])) for r in runs[mode]]
    assert losses_[-1] < losses_[0]


def test_traced_equals_eager_exactly(runs):
    for (pe, se, le, me), (pt, st, lt, mt) in zip(runs["eager"], runs["traced"], strict=True):
        np.testing.assert_array_equal(np.asarray(le), lt)
        np.testing.assert_array_equal(np.asarray(me["accuracy"]), mt["accuracy"])
        for name in pe:
            np.testing.assert_array_equal(np.asarray(pe[name]), pt[name])
            np.testing.assert_array_equal(np.asarray(se["exp_avg"][name]), st["exp_avg"][name])
            np.testing.assert_array_equal(
                np.asarray(se["exp_avg_sq"][name]), st["exp_avg_sq"][name]
            )
        np.testing.assert_array_equal(np.asarray(se["step"]), st["step"])


def test_one_graph_holds_forward_backward_and_update(runs):
    g = runs["graph"]
    assert g.verify() is g
    ops = g.op_counts()
    for op in ["conv2d", "max_pool2d", "conv2d_backward_weight", "max_pool2d_backward"]:
        assert ops.get(op) == 1, (op, ops)
    assert "conv2d_backward_input" not in ops  # the images are not differentiated
    assert ops.get("sqrt", 0) >= 6  # Adam's denominators
    # inputs: 6 params, step + 2 x 6 moments, x, y, lr; outputs: params, state, loss, accuracy
    assert (len(g.inputs), len(g.outputs)) == (6 + 13 + 3, 6 + 13 + 2)
