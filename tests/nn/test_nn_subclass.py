"""Subclassed models: layers set as attributes are tracked in assignment order, built on
the first data; call's layer calls take the params given to apply (a pure forward pass);
fit equals the same network as a functional model; weights save and load as .npz, while
a full save names what is missing."""

import numpy as np
import pytest

import nncompile as nc
from nncompile import nn, optim
from nncompile.errors import ConfigError, SerializationError

RNG = np.random.default_rng(0)
X = RNG.standard_normal((20, 5)).astype(np.float32)
LABELS = np.arange(20) % 3


class Residual(nn.Model):
    def __init__(self):
        super().__init__(name="residual")
        self.d1 = nn.Dense(8, activation="relu")
        self.norm = nn.BatchNormalization()
        self.d2 = nn.Dense(5)
        self.head = nn.Dense(3, activation="softmax")

    def call(self, x, training=False):
        h = self.d2(self.norm(self.d1(x), training=training))
        return self.head(nc.relu(x + h))  # plain nc ops between layer calls


def functional_twin():
    x = nn.Input((5,))
    h = nn.Dense(5, name="dense_1")(nn.BatchNormalization()(nn.Dense(8, activation="relu")(x)))
    h = nn.Activation("relu")(nn.Add()([x, h]))
    return nn.Model(x, nn.Dense(3, activation="softmax", name="dense_2")(h))


def test_layers_are_tracked_in_assignment_order_and_built_on_first_data():
    model = Residual()
    assert not model.built
    assert model.predict(X).shape == (20, 3)
    assert [layer.name for layer in model.layers] == [
        "dense",
        "batch_normalization",
        "dense_1",
        "dense_2",
    ]
    assert model.layers[0].params["kernel"].shape == (5, 8)
    text = model.summary(print_fn=None)
    assert "batch_normalization (BatchNormalization)" in text
    assert f"Total params: {48 + 32 + 45 + 18}" in text
    assert len(model.get_weights()) == 2 + 4 + 2 + 2  # batch norm: gamma, beta, 2 moving


def test_fit_equals_the_functional_twin_with_the_same_weights():
    sub, twin = Residual(), functional_twin()
    sub(X[:2])
    twin.set_weights(sub.get_weights())
    np.testing.assert_allclose(sub.predict(X), twin.predict(X), rtol=1e-6)
    for model in (sub, twin):
        model.compile(optim.SGD(0.1), "sparse_categorical_crossentropy", metrics=["accuracy"])
    hs = sub.fit(X, LABELS, batch_size=8, epochs=2, shuffle=False, verbose=0)
    ht = twin.fit(X, LABELS, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(sub.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)  # batch-norm statistics too
    np.testing.assert_allclose(hs.history["loss"], ht.history["loss"], rtol=1e-5)
    assert hs.history["accuracy"] == ht.history["accuracy"]


def test_apply_is_pure_and_compiles():
    model = Residual()
    model(X[:2])
    fn = nc.compile(lambda p, s, x: model.apply(p, s, x)[0], backend="llvm")
    np.testing.assert_allclose(
        fn(model.params(), model.state(), X), np.asarray(model(X)), rtol=1e-5, atol=1e-6
    )
    zero = {k: {n: np.zeros_like(a) for n, a in v.items()} for k, v in model.params().items()}
    np.testing.assert_allclose(fn(zero, model.state(), X), 1 / 3, rtol=1e-6)
    assert np.abs(model.layers[0].params["kernel"]).max() > 0  # the layers' own untouched


def test_weights_save_and_load_but_a_full_save_says_what_is_missing(tmp_path):
    model = Residual()
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(X, LABELS, epochs=1, verbose=0)
    with pytest.raises(NotImplementedError, match="save_weights"):
        model.save(str(tmp_path / "full"))
    model.save_weights(str(tmp_path / "w.npz"))
    other = Residual()
    with pytest.raises(SerializationError, match="build the model first"):
        other.load_weights(str(tmp_path / "w.npz"))
    other(X[:1])
    other.load_weights(str(tmp_path / "w.npz"))
    np.testing.assert_array_equal(other.predict(X), model.predict(X))


class TwoHeads(nn.Model):
    def __init__(self):
        super().__init__()
        self.trunk = nn.Dense(4, activation="tanh")
        self.heads = [nn.Dense(3, activation="softmax"), nn.Dense(1)]

    def call(self, inputs):
        a, b = inputs
        h = self.trunk(a) * b
        return [head(h) for head in self.heads]


def test_several_inputs_and_outputs_in_a_subclassed_model():
    model = TwoHeads()
    a, c = X[:, :3], X[:, :4]
    probs, reg = model.predict([a, c])
    assert probs.shape == (20, 3) and reg.shape == (20, 1)
    assert [layer.name for layer in model.layers] == ["dense", "dense_1", "dense_2"]
    model.compile(optim.SGD(0.0), ["sparse_categorical_crossentropy", "mse"], loss_weights=[1, 2])
    logs = model.evaluate([a, c], [LABELS, reg])
    assert logs["output_1_loss"] == pytest.approx(0.0, abs=1e-12)
    want = -np.log(probs[np.arange(20), LABELS]).mean()
    assert logs["output_0_loss"] == pytest.approx(want, rel=1e-5)
    assert logs["loss"] == pytest.approx(want, rel=1e-5)
    with pytest.raises(ConfigError, match="takes 2 inputs"):
        model.predict(a)


def test_a_model_without_call_or_graph_says_what_to_do():
    with pytest.raises(NotImplementedError, match="must be subclassed and define call"):
        nn.Model().predict(X)


def test_plot_of_a_subclassed_model_draws_only_its_training_step(tmp_path):
    model = Residual()
    model(X[:2])
    with pytest.raises(NotImplementedError, match="subclassed model's layers"):
        model.plot(str(tmp_path / "layers.svg"))
    model.compile("sgd", "sparse_categorical_crossentropy")
    message = model.plot(str(tmp_path / "step.dot"), stage="traced")
    assert "nodes at stage 'traced'" in message
