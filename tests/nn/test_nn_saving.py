"""model.save / nn.load_model: identical predictions, optimizer state, and broken files."""

import errno
import json
import os

import numpy as np
import pytest

from nncompile import fileio, nn, optim
from nncompile.errors import SerializationError

from .nn_support import blobs, small_cnn


def trained(tmp_path, **compile_kw):
    x, y = blobs(48)
    model = small_cnn()
    model.compile(optim.Adam(1e-2), "sparse_categorical_crossentropy", ["accuracy"], **compile_kw)
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=0)
    path = str(tmp_path / "model")
    model.save(path)
    return model, path, x, y


def saved(folder, kind="weights"):
    """The array file of ``kind`` that the save in ``folder`` names in its model.json."""
    return folder / json.loads((folder / "model.json").read_text())["files"][kind]


def test_round_trip_gives_identical_predictions_and_config(tmp_path):
    model, path, x, _ = trained(tmp_path)
    loaded = nn.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert [type(a) for a in loaded.layers] == [type(b) for b in model.layers]
    assert [a.name for a in loaded.layers] == [b.name for b in model.layers]
    assert loaded.summary(print_fn=None) == model.summary(print_fn=None)
    assert loaded.trainer.metrics == ["accuracy"]
    assert isinstance(loaded.trainer.optimizer, optim.Adam)


def test_training_continues_identically_after_loading(tmp_path):
    model, path, x, y = trained(tmp_path)
    loaded = nn.load_model(path)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, seed=7)
    loaded.fit(x, y, batch_size=16, epochs=1, verbose=0, seed=7)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_every_layer_kind_round_trips(tmp_path):
    model = nn.Sequential(
        [
            nn.Embedding(20, 4, input_shape=(6,)),
            nn.GRU(5, return_sequences=True),
            nn.LSTM(5, return_sequences=True),
            nn.SimpleRNN(3, activation="relu"),
            nn.Dense(8, activation="gelu", use_bias=False),
            nn.BatchNormalization(momentum=0.9),
            nn.Dropout(0.25),
            nn.Reshape((2, 2, 2)),
            nn.Conv2D(3, 2, padding="same", strides=1),
            nn.AveragePooling2D(2, strides=1, padding="same"),
            nn.MaxPooling2D(2),
            nn.Flatten(),
            nn.Activation("softmax"),
        ],
        name="everything",
    )
    ids = np.random.default_rng(0).integers(0, 20, (3, 6))
    model.save(str(tmp_path / "m"))
    loaded = nn.load_model(str(tmp_path / "m"))
    assert loaded.name == "everything"
    assert loaded.layers[3].get_config() == model.layers[3].get_config()
    np.testing.assert_array_equal(loaded.predict(ids), model.predict(ids))


def test_files_are_json_and_plain_npz(tmp_path):
    _, path, _, _ = trained(tmp_path)
    spec = json.loads((tmp_path / "model" / "model.json").read_text())
    assert spec["layers"][0]["class_name"] == "Conv2D"
    assert spec["compile"]["loss"] == "sparse_categorical_crossentropy"
    with np.load(saved(tmp_path / "model"), allow_pickle=False) as w:
        assert "conv2d/kernel" in w.files
    with np.load(saved(tmp_path / "model", "optimizer"), allow_pickle=False) as o:
        assert any("exp_avg" in k for k in o.files)


def test_save_without_optimizer(tmp_path):
    model, path, x, _ = trained(tmp_path)
    model.save(path, include_optimizer=False)
    loaded = nn.load_model(path)
    assert loaded.trainer.opt_state is None
    assert nn.load_model(path, compile=False).trainer is None


def edit_json(folder, change):
    spec = json.loads((folder / "model.json").read_text())
    change(spec)
    (folder / "model.json").write_text(json.dumps(spec))


def corrupt(tmp_path, edit):
    _, path, _, _ = trained(tmp_path)
    edit(tmp_path / "model")
    return path


@pytest.mark.parametrize(
    "edit, match",
    [
        (lambda d: (d / "model.json").write_text("{not json"), "not valid JSON"),
        (lambda d: (d / "model.json").unlink(), "no model.json"),
        (lambda d: (d / "model.json").write_text('{"format": "other"}'), "not an nncompile"),
        (
            lambda d: (d / "model.json").write_text(
                (d / "model.json").read_text().replace('"Conv2D"', '"Conv9D"')
            ),
            "unknown or malformed layer",
        ),
        (
            lambda d: (d / "model.json").write_text(
                (d / "model.json").read_text().replace('"filters": 4', '"filters": -4')
            ),
            "Conv2D",
        ),
        (lambda d: saved(d).write_bytes(b"garbage"), "cannot read"),
        (lambda d: saved(d).unlink(), "cannot read"),
        (
            lambda d: np.savez(
                saved(d), **{k: v for k, v in np.load(saved(d)).items() if k != "dense/bias"}
            ),
            "does not match model.json: missing 'dense/bias'",
        ),
        (
            lambda d: np.savez(saved(d), **dict(np.load(saved(d)).items(), extra=np.zeros(2))),
            r"does not match model.json: unexpected \['extra'\]",
        ),
        (lambda d: np.savez(saved(d), **{"conv2d/kernel": np.zeros(3)}), "conv2d/kernel"),
        (
            lambda d: np.savez(
                saved(d),
                **{
                    k: (np.zeros((1, 1), np.float32) if k == "dense/kernel" else v)
                    for k, v in np.load(saved(d)).items()
                },
            ),
            "dense/kernel",
        ),
        (
            lambda d: np.savez(
                saved(d),
                **{
                    k: (np.array([object()], dtype=object) if k == "dense/bias" else v)
                    for k, v in np.load(saved(d)).items()
                },
            ),
            "cannot read",
        ),
        (lambda d: np.savez(saved(d, "optimizer"), other=np.zeros(2)), "optimizer state"),
        (lambda d: edit_json(d, lambda s: s["files"].update(weights="../w.npz")), "files"),
        (lambda d: edit_json(d, lambda s: s.pop("files")), "files"),
    ],
)
def test_broken_saved_models_raise_serialization_errors(tmp_path, edit, match):
    path = corrupt(tmp_path, edit)
    with pytest.raises(SerializationError, match=match):
        nn.load_model(path)


def test_saving_an_unbuilt_model_is_an_error(tmp_path):
    with pytest.raises(SerializationError, match="not built"):
        nn.Sequential([nn.Dense(2)]).save(str(tmp_path / "m"))


def test_a_version_1_save_still_loads_and_is_replaced_cleanly(tmp_path):
    model, path, x, _ = trained(tmp_path)
    folder = tmp_path / "model"
    # the layout before model.json named its files: fixed names, version 1
    saved(folder).rename(folder / "weights.npz")
    saved(folder, "optimizer").rename(folder / "optimizer.npz")
    edit_json(folder, lambda s: (s.pop("files"), s.update(version=1)))
    loaded = nn.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.trainer.opt_state is not None
    loaded.save(path)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["model.json", saved(folder).name, saved(folder, "optimizer").name]
    )


def _fail_midway(monkeypatch, when):
    """Make the ``when``-th atomic write of a save (1: weights, 2: optimizer state,
    3: model.json) run out of disk space after writing part of its file."""
    real = fileio._fsync
    calls = []

    def fsync(f):
        calls.append(f)
        if len(calls) == when:
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real(f)

    monkeypatch.setattr(fileio, "_fsync", fsync)


@pytest.mark.parametrize("when", [1, 2, 3])
def test_a_failed_save_leaves_the_previous_save_loadable(tmp_path, monkeypatch, when):
    model, path, x, y = trained(tmp_path)
    before = sorted(os.listdir(path))
    expected = model.predict(x)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, seed=1)  # new weights to save
    _fail_midway(monkeypatch, when)
    with pytest.raises(OSError, match="No space left"):
        model.save(path)
    monkeypatch.undo()
    assert sorted(os.listdir(path)) == before  # nothing half-written left behind
    np.testing.assert_array_equal(nn.load_model(path).predict(x), expected)
    model.save(path)  # and the next save replaces it
    np.testing.assert_array_equal(nn.load_model(path).predict(x), model.predict(x))
    assert len(os.listdir(path)) == 3


def test_a_killed_save_leaves_the_previous_save_loadable(tmp_path, monkeypatch):
    model, path, x, y = trained(tmp_path)
    expected = model.predict(x)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, seed=1)

    def killed(f, **arrays):  # the process dies inside np.savez: no cleanup runs
        with open(f, "wb") if isinstance(f, (str, os.PathLike)) else f as out:
            out.write(b"PK partial zip")
        raise SystemExit(9)

    monkeypatch.setattr(fileio, "remove_quietly", lambda path: None)
    monkeypatch.setattr(np, "savez", killed)
    with pytest.raises(SystemExit):
        model.save(path)
    monkeypatch.undo()
    assert any(fileio.temp_target(name) for name in os.listdir(path))  # what a kill leaves
    np.testing.assert_array_equal(nn.load_model(path).predict(x), expected)
    model.save(path)
    assert len(os.listdir(path)) == 3  # the next save cleans up


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda c: c.update(optimizer={"class_name": "Adam", "config": {"lr": "fast"}}), "lr"),
        (lambda c: c["optimizer"]["config"].update(betas=[0.9]), "betas"),
        (lambda c: c["optimizer"]["config"].update(momentum=0.9), "momentum"),
        (lambda c: c["optimizer"]["config"].update(lr=-1.0), "learning rate"),
        (lambda c: c["optimizer"].update(class_name="Adagrad"), "unknown optimizer"),
        (lambda c: c.pop("optimizer"), "compile.optimizer"),
        (lambda c: c.update(loss=3), "compile.loss"),
        (lambda c: c.update(loss="no_such_loss"), "no_such_loss"),
        (lambda c: c.update(metrics="accuracy"), "compile.metrics"),
        (lambda c: c.update(metrics=["no_such_metric"]), "no_such_metric"),
        (lambda c: c.update(backend="tpu"), "tpu"),
        (lambda c: c.update(steps_run="7"), "compile.steps_run"),
        (lambda c: c.update(extra=1), "unknown fields"),
    ],
)
def test_an_edited_compile_section_names_the_field(tmp_path, change, field):
    _, path, _, _ = trained(tmp_path)
    edit_json(tmp_path / "model", lambda spec: change(spec["compile"]))
    with pytest.raises(SerializationError, match="model.json: compile") as info:
        nn.load_model(path)
    assert field in str(info.value)
    nn.load_model(path, compile=False)  # the architecture and weights still load


def _set_units(spec, units):
    dense = next(layer for layer in spec["layers"] if layer["class_name"] == "Dense")
    dense["config"]["units"] = units


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda s: _set_units(s, 10**12), r"dense/kernel is float32\[16, 8\], the model needs"),
        (lambda s: s["layers"][0]["config"].update(input_shape=[6, 10**12, 1]), "needs"),
        (lambda s: s["layers"][0]["config"].update(input_shape=[6, 10**12, 10**6]), "needs"),
        (lambda s: s.update(input_shape=[6, -6, 1]), "input_shape"),
        (lambda s: s.update(layers=[]), "layers"),
    ],
)
def test_sizes_in_model_json_are_checked_against_the_weights_before_allocating(
    tmp_path, change, match
):
    """Layers declare their weights, and a loaded layer's are compared with the file's
    headers before any array is made: units=10**12 is an error, not a MemoryError."""
    _, path, _, _ = trained(tmp_path)
    edit_json(tmp_path / "model", change)
    with pytest.raises(SerializationError, match=match):
        nn.load_model(path)


def test_an_array_header_larger_than_its_data_is_refused_unread(tmp_path):
    import io
    import zipfile

    _, path, _, _ = trained(tmp_path)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (10**12,)}
    )
    with zipfile.ZipFile(saved(tmp_path / "model"), "a") as z:
        z.writestr("huge.npy", header.getvalue() + b"\0" * 16)
    with pytest.raises(SerializationError, match=r"huge declares float32\[1000000000000\]"):
        nn.load_model(path)
