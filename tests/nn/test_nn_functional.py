"""Keras' functional API: nn.Input, nn.Model(inputs, outputs). Training equals the same
model written as plain nc functions and trained by hand; several inputs and outputs with
weighted losses; shared layers; save/load; summary; plot; the errors."""

import json
import warnings

import numpy as np
import pytest

import nncompile as nc
from nncompile import nn, optim
from nncompile.errors import ConfigError, DTypeError, SerializationError, ShapeError
from nncompile.nn.plot import layer_dot

RNG = np.random.default_rng(0)
X = RNG.standard_normal((24, 6)).astype(np.float32)
Y = RNG.standard_normal((24, 3)).astype(np.float32)


def residual_model():
    nn.set_random_seed(1)
    x = nn.Input((6,), name="x")
    h = nn.Dense(8, activation="relu", name="d1")(x)
    h = nn.Dense(6, name="d2")(h)
    h = nn.Add(name="skip")([x, h])
    return nn.Model(x, nn.Dense(3, name="out")(h), name="residual")


def residual_by_hand(p, x):
    h = nc.relu(nc.matmul(x, p["d1"]["kernel"]) + p["d1"]["bias"])
    h = x + nc.matmul(h, p["d2"]["kernel"]) + p["d2"]["bias"]
    return nc.matmul(h, p["out"]["kernel"]) + p["out"]["bias"]


def copy(tree):
    return {k: {n: np.array(a) for n, a in v.items()} for k, v in tree.items()}


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_residual_fit_equals_the_same_model_trained_by_hand(opt):
    model = residual_model()
    assert [layer.name for layer in model.layers] == ["x", "d1", "d2", "skip", "out"]
    p = copy(model.params())
    make = (lambda: optim.SGD(0.05)) if opt == "sgd" else (lambda: optim.Adam(0.01))
    model.compile(make(), "mse")
    history = model.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0)

    hand = make()
    state = hand.init(p)

    def loss(p, x, y):
        return nc.mean(nc.square(residual_by_hand(p, x) - y))

    losses = []
    for _ in range(2):
        for start in range(0, 24, 8):
            xb, yb = X[start : start + 8], Y[start : start + 8]
            value, grads = nc.value_and_grad(loss)(p, xb, yb)
            losses.append(float(value))
            p, state = hand.update(p, grads, state)
            p = {k: {n: np.asarray(a) for n, a in v.items()} for k, v in p.items()}
    for name, arrays in model.params().items():
        for key, array in arrays.items():
            np.testing.assert_allclose(array, p[name][key], rtol=1e-5, atol=1e-6)
    want = [np.mean(losses[:3]), np.mean(losses[3:])]
    np.testing.assert_allclose(history.history["loss"], want, rtol=1e-5)


def two_in_two_out():
    nn.set_random_seed(2)
    a, b = nn.Input((4,), name="a"), nn.Input((3,), name="b")
    h = nn.Concatenate(name="join")([nn.Dense(5, activation="tanh", name="ha")(a), b])
    cls = nn.Dense(3, activation="softmax", name="cls")(h)
    reg = nn.Dense(2, name="reg")(h)
    return nn.Model([a, b], [cls, reg])


def two_by_hand(p, a, b):
    h = nc.concatenate([nc.tanh(nc.matmul(a, p["ha"]["kernel"]) + p["ha"]["bias"]), b], axis=1)
    logits = nc.matmul(h, p["cls"]["kernel"]) + p["cls"]["bias"]
    return logits, nc.matmul(h, p["reg"]["kernel"]) + p["reg"]["bias"]


def hand_losses(p, a, b, labels, targets):
    logits, reg = two_by_hand(p, a, b)
    z = np.asarray(logits, np.float64)
    logp = z - z.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    ce = -logp[np.arange(len(labels)), labels].mean()
    mse = np.mean((np.asarray(reg, np.float64) - targets) ** 2)
    return ce, mse


def test_several_inputs_and_outputs_train_on_the_weighted_loss():
    model = two_in_two_out()
    a, b = X[:, :4], X[:, 4:] @ np.ones((2, 3), np.float32)
    labels, targets = np.arange(24) % 3, Y[:, :2]
    p = copy(model.params())
    model.compile(
        optim.SGD(0.1),
        loss={"cls": "sparse_categorical_crossentropy", "reg": "mse"},
        loss_weights=[1.0, 0.5],
        metrics={"cls": ["accuracy"]},
    )
    # dicts by name give the same as lists in model order
    history = model.fit(
        {"b": b, "a": a}, [labels, targets], batch_size=24, epochs=1, shuffle=False, verbose=0
    )
    ce, mse = hand_losses(p, a, b, labels, targets)
    logs = {k: v[0] for k, v in history.history.items()}
    assert list(logs) == ["loss", "cls_loss", "reg_loss", "cls_accuracy"]
    assert logs["cls_loss"] == pytest.approx(ce, rel=1e-5)
    assert logs["reg_loss"] == pytest.approx(mse, rel=1e-5)
    assert logs["loss"] == pytest.approx(ce + 0.5 * mse, rel=1e-5)

    def total(p):
        logits, reg = two_by_hand(p, a, b)
        return nc.cross_entropy(logits, labels) + 0.5 * nc.mean(nc.square(reg - targets))

    grads = nc.grad(total)(p)
    for name in ("ha", "cls", "reg"):
        for key in ("kernel", "bias"):
            want = p[name][key] - 0.1 * np.asarray(grads[name][key])
            np.testing.assert_allclose(model.params()[name][key], want, rtol=1e-5, atol=1e-6)
    scores = model.evaluate([a, b], {"cls": labels, "reg": targets}, batch_size=10)
    ce, mse = hand_losses(model.params(), a, b, labels, targets)
    assert scores["loss"] == pytest.approx(ce + 0.5 * mse, rel=1e-5)
    probs, reg = model.predict([a, b], batch_size=7)
    assert scores["cls_accuracy"] == pytest.approx(np.mean(probs.argmax(1) == labels))
    np.testing.assert_allclose(reg, two_by_hand(model.params(), a, b)[1], rtol=1e-5, atol=1e-6)


def test_fit_batches_take_the_same_rows_of_every_input_and_target():
    """Targets equal to an input: a row mismatch would make the loss far from zero."""
    a = nn.Input((2,), name="a")
    b = nn.Input((2,), name="b")
    zero = nn.Dense(2, name="zero")(a)  # something to train (at lr 0)
    model = nn.Model([a, b], nn.Add()([nn.Subtract()([a, b]), zero]))
    model.get_layer("zero").params["kernel"][:] = 0
    model.compile(optim.SGD(0.0), "mse")
    xa = RNG.standard_normal((40, 2)).astype(np.float32)
    xb = RNG.standard_normal((40, 2)).astype(np.float32)
    history = model.fit([xa, xb], xa - xb, batch_size=8, epochs=2, seed=3, verbose=0)
    assert max(history.history["loss"]) < 1e-12
    assert len(model.trainer.function("train")._cache) == 1  # one graph for the step


def shared_model():
    nn.set_random_seed(3)
    a, b = nn.Input((5,), name="left"), nn.Input((5,), name="right")
    shared = nn.Dense(4, activation="relu", name="shared")
    merged = nn.Concatenate(name="both")([shared(a), shared(b)])
    merged = nn.Multiply(name="gate")([merged, nn.Dense(8, activation="sigmoid")(merged)])
    return nn.Model({"left": a, "right": b}, {"score": nn.Dense(1, name="score")(merged)})


def test_a_shared_layer_has_one_set_of_weights():
    model = shared_model()
    assert list(model.params()) == ["shared", "dense", "score"]
    assert model.count_params() == 24 + 72 + 9
    xa, xb = X[:4, :5], X[4:8, :5]
    swapped = model.predict({"left": xb, "right": xa})["score"]
    assert swapped.shape == (4, 1)
    assert model.get_layer("shared") is model.layers[2]


def test_save_and_load_round_trip_gives_identical_predictions(tmp_path):
    model = shared_model()
    model.compile(optim.Adam(1e-2), loss="mse", loss_weights={"score": 2.0})
    x = {"left": X[:, :5], "right": X[:, 1:]}
    model.fit(x, Y[:, :1], epochs=1, verbose=0)
    model.save(str(tmp_path / "m"))
    spec = json.loads((tmp_path / "m" / "model.json").read_text())
    shared = next(entry for entry in spec["layers"] if entry["config"]["name"] == "shared")
    assert shared["inbound_nodes"] == [
        {"args": [["left", 0, 0]], "packed": False},
        {"args": [["right", 0, 0]], "packed": False},
    ]
    both = next(entry for entry in spec["layers"] if entry["config"]["name"] == "both")
    assert both["inbound_nodes"][0]["args"] == [["shared", 0, 0], ["shared", 1, 0]]
    loaded = nn.load_model(str(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.predict(x)["score"], model.predict(x)["score"])
    assert loaded.trainer.loss_weights == {"score": 2.0}
    # training continues identically (optimizer state restored)
    for m in (model, loaded):
        m.fit(x, Y[:, :1], epochs=1, shuffle=False, verbose=0)
    for want, got in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_load_replays_a_shared_layer_called_after_later_layers(tmp_path):
    nn.set_random_seed(4)
    x = nn.Input((3,), name="x")
    square = nn.Dense(3, activation="tanh", name="square")
    y = square(nn.Dense(3, name="mid")(square(x)))  # shared's second call needs "mid"
    model = nn.Model(x, y)
    model.save(str(tmp_path / "m"))
    loaded = nn.load_model(str(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.predict(X[:, :3]), model.predict(X[:, :3]))


def test_a_broken_connection_in_model_json_is_a_serialization_error(tmp_path):
    model = residual_model()
    model.save(str(tmp_path / "m"))
    path = tmp_path / "m" / "model.json"
    spec = json.loads(path.read_text())
    spec["layers"][-1]["inbound_nodes"][0]["args"] = [["nowhere", 0, 0]]
    path.write_text(json.dumps(spec))
    with pytest.raises(SerializationError, match="out call 0"):
        nn.load_model(str(tmp_path / "m"))


def test_summary_shows_the_connections():
    text = shared_model().summary(print_fn=None)
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith(" Layer (type)"))
    assert header.split()[-2:] == ["Connected", "to"]
    row = lines.index(next(line for line in lines if line.startswith(" both (Concatenate)")))
    assert lines[row].split()[-1] == "shared[0][0]"
    assert lines[row + 1].strip() == "shared[1][0]"
    assert next(line for line in lines if line.startswith(" left (InputLayer)")).endswith("-")
    assert "Total params: 105" in text


def test_plot_draws_the_layer_graph():
    dot = layer_dot(shared_model())
    assert '"layer/left" -> "layer/shared"' in dot
    assert '"layer/right" -> "layer/shared"' in dot
    assert dot.count('"layer/shared" -> "layer/both"') == 2


def test_compiled_apply_equals_eager_and_is_pure():
    model = two_in_two_out()
    xs = [X[:5, :4], X[:5, 3:]]
    fn = nc.compile(lambda p, s, x: model.apply(p, s, x)[0], backend="llvm")
    for got, want in zip(fn(model.params(), model.state(), xs), model(xs), strict=True):
        np.testing.assert_allclose(got, np.asarray(want), rtol=1e-5, atol=1e-6)
    zero = {k: {n: np.zeros_like(a) for n, a in v.items()} for k, v in model.params().items()}
    probs, reg = fn(zero, {}, xs)  # the params given, not the layers' own
    np.testing.assert_allclose(probs, 1 / 3, rtol=1e-6)
    assert not np.asarray(reg).any()


def test_model_errors():
    a, b = nn.Input((4,), name="a"), nn.Input((4,), name="b")
    model = nn.Model([a, b], nn.Add()([a, b]))
    with pytest.raises(ConfigError, match=r"takes 2 inputs \['a', 'b'\]: give a list"):
        model.predict(X[:, :4])
    with pytest.raises(ConfigError, match=r"takes 2 inputs \['a', 'b'\], got 3 arrays"):
        model.predict([X[:, :4]] * 3)
    with pytest.raises(ShapeError, match="input 'b' takes samples of shape"):
        model.predict([X[:, :4], X[:, :5]])
    with pytest.raises(ConfigError, match=r"missing \['b'\]"):
        model.predict({"a": X[:, :4]})
    with pytest.raises(ConfigError, match="not among the model's inputs"):
        nn.Model(a, nn.Dense(2)(nn.Add()([a, b])))
    with pytest.raises(ConfigError, match="must be nn.Input tensors"):
        nn.Model(nn.Dense(2)(a), b)
    with pytest.raises(ShapeError, match="built for inputs of shape"):
        shared = nn.Dense(2)
        shared(a), shared(nn.Input((5,)))
    with pytest.raises(DTypeError, match="takes int64 inputs"):
        nn.Embedding(10, 2)(a)
    with pytest.raises(NotImplementedError, match="model used as a layer"):
        model([a, b])
    with pytest.raises(NotImplementedError, match="model used as a layer"):
        nn.Sequential([nn.Dense(2, input_shape=(4,))])(a)
    with pytest.warns(UserWarning, match=r"inputs \['b'\] are not connected"):
        nn.Model([a, b], nn.Dense(2)(a))
    model.compile("sgd", loss=["mse", "mse"])
    with pytest.raises(ConfigError, match=r"loss: 2 entries for 1 outputs"):
        model.fit([X[:, :4], X[:, :4]], X[:, :4], verbose=0)
    model.compile("sgd", loss={"nope": "mse"})
    with pytest.raises(ConfigError, match="no output"):
        model.fit([X[:, :4], X[:, :4]], X[:, :4], verbose=0)


def test_unused_input_is_kept_and_still_needs_its_data():
    a, b = nn.Input((4,), name="a"), nn.Input((2,), name="b")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = nn.Model([a, b], nn.Dense(2)(a))
    assert model.predict([X[:, :4], X[:, :2]]).shape == (24, 2)
    with pytest.raises(ConfigError, match="takes 2 inputs"):
        model.predict(X[:, :4])


def test_validation_split_takes_the_last_rows_of_every_input_and_target():
    model = two_in_two_out()
    a, b = X[:, :4], X[:, 3:]
    labels, targets = np.arange(24) % 3, Y[:, :2]
    model.compile(optim.SGD(0.0), ["sparse_categorical_crossentropy", "mse"], loss_weights=[1, 3])
    history = model.fit([a, b], [labels, targets], validation_split=0.25, epochs=1, verbose=0)
    want = model.evaluate([a[18:], b[18:]], [labels[18:], targets[18:]])
    logs = {k: v[0] for k, v in history.history.items()}
    for key in ("loss", "cls_loss", "reg_loss"):
        assert logs[f"val_{key}"] == pytest.approx(want[key], rel=1e-6)
    train = model.evaluate([a[:18], b[:18]], [labels[:18], targets[:18]])
    assert logs["loss"] == pytest.approx(train["loss"], rel=1e-5)
