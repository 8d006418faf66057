"""A functional model with two inputs and two outputs (shared layer, merge, weighted
losses) trained on the CUDA backend equals the LLVM backend step for step; without a GPU
it runs on the CPU emulation of the generated CUDA C (see conftest.py)."""

import numpy as np

from nncompile import nn, optim


def two_in_two_out():
    nn.set_random_seed(5)
    a, b = nn.Input((4,), name="a"), nn.Input((4,), name="b")
    shared = nn.Dense(5, activation="relu", name="shared")
    h = nn.Concatenate(name="join")([shared(a), nn.Multiply()([shared(b), shared(a)])])
    cls = nn.Dense(3, activation="softmax", name="cls")(h)
    return nn.Model([a, b], [cls, nn.Dense(1, name="reg")(h)])


def test_functional_fit_and_predict_on_cuda_equal_llvm():
    rng = np.random.default_rng(0)
    x = [rng.standard_normal((20, 4)).astype(np.float32) for _ in range(2)]
    y = [np.arange(20) % 3, rng.standard_normal((20, 1)).astype(np.float32)]
    results = {}
    for backend in ("cuda", "llvm"):
        model = two_in_two_out()
        model.compile(
            optim.SGD(0.1),
            ["sparse_categorical_crossentropy", "mse"],
            loss_weights=[1.0, 0.5],
            backend=backend,
        )
        history = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        results[backend] = (model.get_weights(), history.history, model.predict(x))
    (w_cuda, h_cuda, p_cuda), (w_llvm, h_llvm, p_llvm) = results["cuda"], results["llvm"]
    for got, want in zip(w_cuda, w_llvm, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    for key in ("loss", "cls_loss", "reg_loss"):
        np.testing.assert_allclose(h_cuda[key], h_llvm[key], rtol=1e-4)
    for got, want in zip(p_cuda, p_llvm, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
