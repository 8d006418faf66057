"""fit / evaluate / predict: learning, metrics equal to independent NumPy computations,
compiled training equal to eager training, partial batches, callbacks and progress."""

import errno
import os

import numpy as np
import pytest

import nncompile as nc
from nncompile import metrics, nn, optim
from nncompile.errors import ConfigError

from .nn_support import blobs, small_cnn, softmax_ce


def compiled_model(
    seed=0, lr=1e-2, metric_names=("accuracy",), backend="llvm", dynamic_batch=None, **kw
):
    model = small_cnn(seed=seed, **kw)
    model.compile(
        optimizer=optim.Adam(lr),
        loss="sparse_categorical_crossentropy",
        metrics=list(metric_names),
        backend=backend,
        dynamic_batch=dynamic_batch,
    )
    return model


def test_fit_learns_and_evaluate_matches_numpy():
    x, y = blobs(120)
    xt, yt = blobs(60, seed=1)
    model = compiled_model(metric_names=("accuracy", "precision", "recall", "f1"))
    history = model.fit(x, y, batch_size=16, epochs=8, verbose=0, seed=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0]
    assert history.epoch == list(range(8)) and len(history.epoch_seconds) == 8
    scores = model.evaluate(xt, yt, batch_size=25)  # batches 25, 25, 10
    probs = model.predict(xt)
    assert scores["loss"] == pytest.approx(softmax_ce(probs, yt), rel=1e-4)
    pred = probs.argmax(1)
    assert scores["accuracy"] == pytest.approx((pred == yt).mean())
    assert scores["accuracy"] > 0.9
    for name in ("precision", "recall", "f1"):
        assert scores[name] == pytest.approx(getattr(metrics, name)(yt, pred))


def test_training_metrics_of_a_frozen_epoch_equal_the_whole_data_metrics():
    """With lr = 0 nothing changes during the epoch, so the epoch's running loss and
    metrics must equal those of the data under the initial weights."""
    x, y = blobs(50)
    model = compiled_model(lr=0.0, metric_names=("accuracy", "f1"))
    probs = model.predict(x)
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # 16, 16, 16, 2
    assert history.history["loss"][0] == pytest.approx(softmax_ce(probs, y), rel=1e-5)
    assert history.history["accuracy"][0] == pytest.approx((probs.argmax(1) == y).mean())
    assert history.history["f1"][0] == pytest.approx(metrics.f1(y, probs.argmax(1)))


def test_compiled_fit_equals_eager_fit_including_partial_batches():
    x, y = blobs(70)  # batches of 32, 32, 6
    runs = []
    for eager in (False, True):
        model = small_cnn(seed=5)
        model.compile(optim.Adam(5e-3), "sparse_categorical_crossentropy", run_eagerly=eager)
        history = model.fit(x, y, batch_size=32, epochs=3, verbose=0, seed=1)
        runs.append((model, history))
    (mc, hc), (me, he) = runs
    for a, b in zip(mc.get_weights(), me.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(hc.history["loss"], he.history["loss"], rtol=1e-4)
    # one graph for every batch size: the partial batch compiles nothing new
    assert len(mc.trainer.function("train")._cache) == 1 and mc.compile_count == 1
    assert mc.trainer.steps_run == 9


def test_dropout_and_batch_norm_model_compiled_equals_eager():
    x, y = blobs(40)
    runs = []
    for eager in (False, True):
        model = nn.Sequential(
            [
                # no conv bias: before batch norm its gradient is ~0 and Adam would turn
                # rounding noise into full-size steps
                nn.Conv2D(4, 3, use_bias=False, input_shape=(6, 6, 1)),
                nn.BatchNormalization(),
                nn.Activation("relu"),
                nn.Flatten(),
                nn.Dropout(0.3),
                nn.Dense(3, activation="softmax"),
            ],
            seed=2,
        )
        model.compile(optim.Adam(1e-2), "sparse_categorical_crossentropy", run_eagerly=eager)
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=3)
        runs.append(model)
    for a, b in zip(runs[0].get_weights(), runs[1].get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    bn = runs[0].layers[1]
    assert not np.allclose(bn.state["moving_mean"], 0)  # training updated the statistics
    # inference is deterministic (no dropout) and uses the moving statistics
    p1, p2 = runs[0].predict(x), runs[0].predict(x)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_allclose(p1, np.asarray(runs[0](x)), rtol=1e-5, atol=1e-6)


def test_softmax_cross_entropy_uses_the_stable_logits_form():
    x, y = blobs(8)
    model = compiled_model()
    last = model.layers[-1]
    last.params["kernel"] = last.params["kernel"] * 1e4  # logits of order 1e4
    scores = model.evaluate(x, y)
    params, state = model.params(), model.state()
    logits = np.asarray(model.apply(params, state, x, logits=True)[0])
    assert np.isfinite(scores["loss"])
    assert scores["loss"] == pytest.approx(softmax_ce(logits, y, logits=True), rel=1e-4)
    assert scores["loss"] > 100  # a probability-space loss would be clamped at 100


def test_binary_and_regression_losses():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.float32)[:, None]
    model = nn.Sequential([nn.Dense(8, "tanh", input_shape=(4,)), nn.Dense(1, "sigmoid")])
    model.compile(optim.Adam(0.05), "binary_crossentropy", metrics=["accuracy"])
    h = model.fit(x, y, batch_size=16, epochs=10, verbose=0)
    assert h.history["accuracy"][-1] > 0.9
    probs = model.predict(x)[:, 0]
    bce = -np.mean(y[:, 0] * np.log(probs) + (1 - y[:, 0]) * np.log(1 - probs))
    assert model.evaluate(x, y)["loss"] == pytest.approx(bce, rel=1e-4)

    target = (x @ np.array([1.0, -2.0, 0.5, 0.0], np.float32))[:, None]
    reg = nn.Sequential([nn.Dense(1, input_shape=(4,))])
    reg.compile(optim.Adam(0.1), "mse", metrics=["mae"])
    h = reg.fit(x, target, batch_size=16, epochs=30, verbose=0)
    assert h.history["loss"][-1] < 0.05 * h.history["loss"][0]
    pred = reg.predict(x)
    scores = reg.evaluate(x, target)
    assert scores["loss"] == pytest.approx(np.mean((pred - target) ** 2), rel=1e-4)
    assert scores["mae"] == pytest.approx(np.mean(np.abs(pred - target)), rel=1e-4)


def test_one_unit_outputs_with_1d_targets_are_not_broadcast():
    """Dense(1) gives (n, 1); targets of shape (n,) must meet it row by row (Keras squeezes
    the trailing 1), not broadcast to (n, n), in the loss, in evaluate and in the mse/mae
    metrics, compiled and eager."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 4)).astype(np.float32)
    target = x @ np.array([1.0, -2.0, 0.5, 0.0], np.float32) + 1.5
    for eager in (False, True):
        reg = nn.Sequential([nn.Dense(1, input_shape=(4,))], seed=0)
        reg.compile(optim.SGD(0.0), "mse", metrics=["mae"], run_eagerly=eager)
        pred = reg.predict(x)[:, 0]
        history = reg.fit(x, target, batch_size=40, epochs=1, verbose=0)
        assert history.history["loss"][0] == pytest.approx(np.mean((pred - target) ** 2), 1e-5)
        scores = reg.evaluate(x, target, batch_size=16)  # padded last batch
        assert scores["loss"] == pytest.approx(np.mean((pred - target) ** 2), rel=1e-5)
        assert scores["mae"] == pytest.approx(np.mean(np.abs(pred - target)), rel=1e-5)

    y = (x[:, 0] + x[:, 1] > 0).astype(np.float32)
    clf = nn.Sequential([nn.Dense(8, "tanh", input_shape=(4,)), nn.Dense(1, "sigmoid")], seed=0)
    clf.compile(optim.Adam(0.05), "binary_crossentropy", metrics=["accuracy", "mse"])
    history = clf.fit(x, y, batch_size=8, epochs=10, verbose=0)
    assert history.history["accuracy"][-1] > 0.9
    probs = clf.predict(x)[:, 0]
    scores = clf.evaluate(x, y)
    bce = -np.mean(y * np.log(probs) + (1 - y) * np.log(1 - probs))
    assert scores["loss"] == pytest.approx(bce, rel=1e-4)
    assert scores["mse"] == pytest.approx(np.mean((probs - y) ** 2), rel=1e-4)
    assert scores["accuracy"] == pytest.approx(np.mean((probs > 0.5) == y))


@pytest.mark.parametrize("cell", [nn.SimpleRNN, nn.LSTM, nn.GRU])
def test_recurrent_classifiers_learn(cell):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 64)
    x = rng.normal(0, 0.5, (64, 5, 3)).astype(np.float32)
    x[:, 2, 0] += np.where(y == 1, 2.0, -2.0)  # the class is visible at one time step
    model = nn.Sequential([cell(8, input_shape=(5, 3)), nn.Dense(2, activation="softmax")])
    model.compile(optim.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"])
    h = model.fit(x, y, batch_size=16, epochs=6, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert h.history["accuracy"][-1] > 0.8


def test_validation_split_and_validation_data():
    x, y = blobs(100)
    model = compiled_model()
    h = model.fit(x, y, batch_size=32, epochs=2, validation_split=0.2, verbose=0)
    assert set(h.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    # validation_split holds out the last 20 samples, before shuffling
    assert h.history["val_loss"][-1] == pytest.approx(model.evaluate(x[80:], y[80:])["loss"])
    h = model.fit(x[:50], y[:50], epochs=1, validation_data=(x[50:], y[50:]), verbose=0)
    assert h.history["val_accuracy"][0] == pytest.approx(model.evaluate(x[50:], y[50:])["accuracy"])


class Scripted(nn.Callback):
    """Replaces the monitored value with a scripted sequence and snapshots the weights
    at each epoch end (runs before EarlyStopping in the callback list)."""

    def __init__(self, values):
        self.values, self.snapshots = values, []

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.values[epoch]
        self.snapshots.append(self.model.get_weights())


def fit_scripted(values, epochs, **early):
    x, y = blobs(32)
    model = compiled_model()
    script = Scripted(values)
    stop = nn.EarlyStopping(**early)
    h = model.fit(x, y, batch_size=16, epochs=epochs, verbose=0, callbacks=[script, stop])
    return model, h, script, stop


def same_weights(a, b):
    return all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))


def test_early_stopping_stops_and_restores_the_best_epoch():
    values = [1.0, 0.5, 0.6, 0.7, 0.4, 0.3]
    model, h, script, stop = fit_scripted(values, 6, patience=2, restore_best_weights=True)
    assert h.epoch == [0, 1, 2, 3]  # best at epoch 1, two epochs without improvement
    assert stop.stopped_epoch == 3 and stop.best_epoch == 1
    assert same_weights(model.get_weights(), script.snapshots[1])


def test_early_stopping_restores_even_when_it_never_triggers():
    values = [1.0, 0.5, 0.6]
    model, h, script, stop = fit_scripted(values, 3, patience=5, restore_best_weights=True)
    assert h.epoch == [0, 1, 2] and stop.stopped_epoch is None
    assert same_weights(model.get_weights(), script.snapshots[1])
    model, h, script, stop = fit_scripted(values, 3, patience=5)
    assert same_weights(model.get_weights(), script.snapshots[2])  # no restore asked


def test_early_stopping_min_delta_and_max_mode():
    values = [1.0, 0.99, 0.98, 0.97]
    _, h, _, stop = fit_scripted(values, 4, patience=1, min_delta=0.05)
    assert h.epoch == [0, 1] and stop.best == 1.0
    with pytest.raises(ConfigError, match="mode"):
        nn.EarlyStopping(mode="up")
    assert nn.EarlyStopping(monitor="val_accuracy").mode == "max"
    assert nn.EarlyStopping(monitor="val_loss").mode == "min"


def test_early_stopping_on_real_validation_loss():
    x, y = blobs(80)
    model = compiled_model(lr=0.05)
    snapshots = []
    snap = nn.Callback()
    snap.on_epoch_end = lambda epoch, logs=None: snapshots.append(model.get_weights())
    stop = nn.EarlyStopping(patience=1, restore_best_weights=True)
    h = model.fit(
        x, y, batch_size=8, epochs=15, validation_split=0.25, callbacks=[snap, stop], verbose=0
    )
    best = int(np.argmin(h.history["val_loss"]))
    assert stop.best_epoch == best
    assert same_weights(model.get_weights(), snapshots[best])


def test_model_checkpoint(tmp_path):
    x, y = blobs(32)
    model = compiled_model()
    ckpt = nn.ModelCheckpoint(str(tmp_path / "ckpt-{epoch:02d}"), monitor="loss")
    best = nn.ModelCheckpoint(str(tmp_path / "best"), monitor="loss", save_best_only=True)
    model.fit(x, y, batch_size=16, epochs=3, verbose=0, callbacks=[ckpt, best])
    assert [p.rsplit("/", 1)[1] for p in ckpt.saved] == ["ckpt-01", "ckpt-02", "ckpt-03"]
    assert (tmp_path / "ckpt-03" / "model.json").exists()
    restored = nn.load_model(str(tmp_path / "ckpt-03"))
    np.testing.assert_array_equal(restored.predict(x), model.predict(x))


def test_model_checkpoint_best_only_keeps_the_last_good_save_when_a_save_fails(
    tmp_path, monkeypatch
):
    """save_best_only rewrites one path: a save that dies midway (here the disk fills
    while the second epoch's weights are written) must leave the first epoch's save."""
    x, y = blobs(32)
    model = compiled_model()
    script = Scripted([1.0, 0.5])  # epoch 2 improves, so it is saved over epoch 1
    path = str(tmp_path / "best")
    best = nn.ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    real_savez = np.savez

    def savez(f, **arrays):
        if len(script.snapshots) == 2:  # the second epoch's save
            with open(f, "wb") if isinstance(f, (str, os.PathLike)) else f as out:
                out.write(b"PK half a zip file")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_savez(f, **arrays)

    monkeypatch.setattr(np, "savez", savez)
    with pytest.raises(OSError, match="No space left"):
        model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=[script, best])
    monkeypatch.undo()
    assert best.saved == [path]
    restored = nn.load_model(path)
    assert same_weights(restored.get_weights(), script.snapshots[0])
    assert [f for f in os.listdir(path) if not f.endswith(".npz")] == ["model.json"]


def test_custom_callback_hooks_and_stop_training():
    calls = []

    class Recorder(nn.Callback):
        def on_train_begin(self, logs=None):
            calls.append("begin")

        def on_epoch_end(self, epoch, logs=None):
            calls.append(("epoch", epoch, sorted(logs)))
            if epoch == 1:
                self.model.stop_training = True

        def on_train_batch_end(self, batch, logs=None):
            calls.append("batch")

        def on_train_end(self, logs=None):
            calls.append("end")

    x, y = blobs(32)
    model = compiled_model()
    h = model.fit(x, y, batch_size=16, epochs=5, verbose=0, callbacks=[Recorder()])
    assert h.epoch == [0, 1]
    assert calls[0] == "begin" and calls[-1] == "end"
    assert calls.count("batch") == 4
    assert ("epoch", 0, ["accuracy", "loss"]) in calls


def test_verbose_levels(capsys):
    x, y = blobs(32)
    model = compiled_model()
    model.fit(x, y, batch_size=16, epochs=2, verbose=0)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    model.fit(x, y, batch_size=16, epochs=2, verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("Epoch 2/2") and "samples/s" in lines[1]
    model.fit(x, y, batch_size=16, epochs=1, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 1/1" in out and "2/2" in out and "loss=" in out


def test_fit_errors():
    x, y = blobs(10)
    model = small_cnn()
    with pytest.raises(ConfigError, match="compile"):
        model.fit(x, y)
    with pytest.raises(ConfigError, match="unknown loss"):
        model.compile(loss="hinge-ish")
    with pytest.raises(ConfigError, match="unknown metric"):
        model.compile(loss="mse", metrics=["auc-ish"])
    with pytest.raises(ConfigError, match="unknown optimizer"):
        model.compile(optimizer="adamax-ish", loss="mse")
    with pytest.raises(ConfigError, match="backend"):
        model.compile(loss="mse", backend="tpu")
    model.compile(loss="sparse_categorical_crossentropy")
    with pytest.raises(nc.ShapeError, match="differ in length"):
        model.fit(x, y[:5], verbose=0)
    with pytest.raises(ConfigError, match="validation_split"):
        model.fit(x, y, validation_split=1.0, verbose=0)
    with pytest.raises(ConfigError, match="integer class labels"):
        model.fit(x, y + 0.5, verbose=0)
    with pytest.raises(ConfigError, match="label 3 is out of range: the model has 3"):
        model.fit(x, np.where(y == 0, 3, y), verbose=0)
    with pytest.raises(ConfigError, match="label -1"):
        model.evaluate(x, y - 1)
    with pytest.raises(ConfigError, match="batch_size"):
        model.fit(x, y, batch_size=0, verbose=0)
    model.compile()
    with pytest.raises(ConfigError, match="without a loss"):
        model.evaluate(x, y)


def test_predict_works_uncompiled_and_on_empty_input():
    model = small_cnn()
    x, _ = blobs(5)
    np.testing.assert_allclose(model.predict(x), np.asarray(model(x)), rtol=1e-5, atol=1e-6)
    assert model.predict(x[:0]).shape == (0, 3)


def test_predict_pads_short_batches_to_few_shapes_without_dynamic_batch():
    model = compiled_model(dynamic_batch=False)
    x, _ = blobs(40)
    expected = np.asarray(model(x))
    for n in (1, 2, 3, 5, 7, 9, 13):
        np.testing.assert_allclose(model.predict(x[:n]), expected[:n], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.predict(x, batch_size=16), expected, rtol=1e-5, atol=1e-6)
    shapes = {key[2][-1][0] for key in model.trainer.function("predict")._cache}
    assert shapes <= {(1, 6, 6, 1), (2, 6, 6, 1), (4, 6, 6, 1), (8, 6, 6, 1), (16, 6, 6, 1)}


def test_evaluate_pads_the_last_batch_into_one_graph_without_dynamic_batch():
    x, y = blobs(60)
    model = compiled_model(metric_names=("accuracy", "f1"), dynamic_batch=False)
    full = model.evaluate(x, y, batch_size=64)
    split = model.evaluate(x, y, batch_size=25)  # 25, 25, 10 (padded to 25)
    for k in full:
        assert split[k] == pytest.approx(full[k], rel=1e-5)
    shapes = {key[2][-2][0] for key in model.trainer.function("eval")._cache}
    assert shapes == {(64, 6, 6, 1), (25, 6, 6, 1)}


def test_a_loss_function_of_the_user_evaluates_with_exact_batches():
    def weird_loss(y_true, y_pred):
        return nc.mean(nc.square(y_pred - nc.one_hot(y_true, 3)))

    x, y = blobs(30)
    model = small_cnn()
    model.compile(optim.Adam(1e-2), weird_loss, metrics=["accuracy"])
    model.fit(x, y, batch_size=8, epochs=2, verbose=0)
    probs = model.predict(x)
    expected = np.mean((probs - np.eye(3)[y]) ** 2)
    assert model.evaluate(x, y, batch_size=8)["loss"] == pytest.approx(expected, rel=1e-5)


def test_evaluate_on_no_samples_is_an_error_not_zero_loss():
    x, y = blobs(32)
    model = compiled_model()
    with pytest.raises(ConfigError, match="at least one sample"):
        model.evaluate(x[:0], y[:0])
    with pytest.raises(ConfigError, match="validation_data holds no samples"):
        model.fit(x, y, epochs=1, validation_data=(x[:0], y[:0]), verbose=0)
