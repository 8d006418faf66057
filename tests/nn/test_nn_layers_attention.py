"""MultiHeadAttention with Keras' weight layout: against torch's multi-head attention
(weights mapped) in float64 for self-attention, cross-attention with a key, attention
masks and the causal mask (outputs and gradients of inputs and every weight), against
NumPy where torch has no counterpart (value_dim != key_dim, output_shape, no bias),
compiled float32 against eager, dropout, saving and a short fit."""

import numpy as np
import pytest

from nncompile import nn, optim
from nncompile.errors import ConfigError, ShapeError

from .layer_checks import (
    as_function,
    check,
    check_compiled,
    normal,
    round_trip,
    summary_rows,
    torch,
)

F = torch.nn.functional


def made(layer, input_shape, seed=0):
    """Weights for ``input_shape`` (a list: [query, value(, key)]) without Layer.build,
    so list inputs work whatever the model classes support; biases made nonzero."""
    layer.name = layer.name or "mha"
    layer.create(input_shape, np.random.default_rng(seed))
    layer.params = {k: normal(*v.shape) * 0.5 for k, v in layer.params.items()}
    return layer


def torch_mha(heads, query, value, key, w, mask=None):
    """torch's multi_head_attention_forward with Keras' weights ``w`` (by name); ``mask``
    (batch, T, S) True where attention is allowed."""
    qk = w["query/kernel"]
    dim = qk.shape[1] * qk.shape[2]

    def proj(name):
        kernel = w[f"{name}/kernel"]
        return kernel.reshape(kernel.shape[0], -1).T

    bias = torch.cat([w[f"{n}/bias"].reshape(-1) for n in ("query", "key", "value")])
    torch_mask = None if mask is None else ~torch.tensor(np.array(mask)).repeat_interleave(heads, 0)
    out, _ = F.multi_head_attention_forward(
        query.transpose(0, 1),
        key.transpose(0, 1),
        value.transpose(0, 1),
        dim,
        heads,
        None,
        bias,
        None,
        None,
        False,
        0.0,
        w["attention_output/kernel"].reshape(dim, -1).T,
        w["attention_output/bias"],
        training=False,
        need_weights=False,
        attn_mask=torch_mask,
        use_separate_proj_weight=True,
        q_proj_weight=proj("query"),
        k_proj_weight=proj("key"),
        v_proj_weight=proj("value"),
    )
    return out.transpose(0, 1)


def check_vs_torch(layer, xs, mask=None, causal=None):
    """The layer (called with the list ``xs``, or one self-attention input) against torch:
    outputs and gradients of the inputs and weights."""
    names = list(layer.params)
    inputs = len(xs)

    def ours(*args):
        params = dict(zip(names, args[inputs:], strict=True))
        x = args[:inputs]
        if mask is None and causal is None:
            return layer.call(params, list(x) if inputs > 1 else x[0], nn.CallContext(False))
        return layer.attend(params, x[0], x[1], *x[2:], attention_mask=mask, use_causal_mask=causal)

    def theirs(*args):
        x = list(args[:inputs]) * (3 if inputs == 1 else 1)
        query, value, key = x[0], x[1], x[2] if len(x) > 2 else x[1]
        full = mask
        if layer.use_causal_mask if causal is None else causal:
            tril = np.tril(np.ones((query.shape[1], key.shape[1]), bool))
            full = tril[None] if mask is None else np.logical_and(mask, tril)
            full = np.broadcast_to(full, (query.shape[0], *tril.shape))
        w = dict(zip(names, args[inputs:], strict=True))
        return torch_mha(layer.num_heads, query, value, key, w, full)

    args = [*xs, *(layer.params[k] for k in names)]
    check(ours, theirs, args, list(range(len(args))), np.float64)


def test_self_attention_matches_torch():
    layer = made(nn.MultiHeadAttention(num_heads=2, key_dim=3), (5, 6))
    check_vs_torch(layer, [normal(3, 5, 6)])


def test_causal_self_attention_matches_torch():
    layer = made(nn.MultiHeadAttention(3, 2, use_causal_mask=True), (4, 6))
    check_vs_torch(layer, [normal(2, 4, 6)])
    plain = made(nn.MultiHeadAttention(3, 2), (4, 6))
    check_vs_torch(plain, [normal(2, 4, 6)] * 2, causal=True)


def test_cross_attention_with_key_and_mask_matches_torch():
    layer = made(nn.MultiHeadAttention(2, 2), [(3, 4), (5, 7), (5, 3)])
    mask = np.random.default_rng(0).random((2, 3, 5)) < 0.6
    mask[:, :, 0] = True  # every query sees a key: torch gives NaN rows otherwise
    check_vs_torch(layer, [normal(2, 3, 4), normal(2, 5, 7), normal(2, 5, 3)])
    check_vs_torch(layer, [normal(2, 3, 4), normal(2, 5, 7), normal(2, 5, 3)], mask=mask)
    check_vs_torch(layer, [normal(2, 3, 4), normal(2, 5, 7), normal(2, 5, 3)], mask, True)


def numpy_mha(w, query, value, key, key_dim, mask=None):
    """Keras' computation written with einsum (float64)."""

    def proj(x, name):
        y = np.einsum("bsd,dhk->bshk", x, w[f"{name}/kernel"])
        return y + w[f"{name}/bias"] if f"{name}/bias" in w else y

    q, k, v = proj(query, "query") / np.sqrt(key_dim), proj(key, "key"), proj(value, "value")
    scores = np.einsum("bthk,bshk->bhts", q, k)
    if mask is not None:
        scores = scores + (1 - mask[:, None].astype(float)) * -1e9
    e = np.exp(scores - scores.max(-1, keepdims=True))
    attended = np.einsum("bhts,bshv->bthv", e / e.sum(-1, keepdims=True), v)
    out = np.einsum(
        "bthv,hvo->bto",
        attended,
        w["attention_output/kernel"].reshape(*w["attention_output/kernel"].shape[:2], -1),
    )
    if "attention_output/bias" in w:
        out = out + w["attention_output/bias"].reshape(-1)
    return out.reshape(*out.shape[:2], *w["attention_output/kernel"].shape[2:])


@pytest.mark.parametrize("use_bias", [True, False])
def test_value_dim_output_shape_and_no_bias_match_numpy(use_bias):
    layer = nn.MultiHeadAttention(3, 2, value_dim=4, use_bias=use_bias, output_shape=(2, 5))
    made(layer, [(4, 6), (3, 5)])
    assert layer.params["attention_output/kernel"].shape == (3, 4, 2, 5)
    query, value = normal(2, 4, 6), normal(2, 3, 5)
    mask = np.array([[1, 0, 1], [1, 1, 0], [0, 0, 0], [0, 1, 1]])[None].repeat(2, 0)
    for m in (None, mask):  # the all-masked row attends to every key, as in Keras
        got = layer.attend(layer.params, query, value, attention_mask=m)
        want = numpy_mha(layer.params, query, value, value, 2, m)
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-10, atol=1e-10)
    assert np.asarray(layer.call(layer.params, [query, value], nn.CallContext(False))).shape == (
        2,
        4,
        2,
        5,
    )


def test_keras_weights_shapes_and_initialization():
    model = nn.Sequential([nn.MultiHeadAttention(4, 8, input_shape=(10, 16))])
    layer = model.layers[0]
    assert {k: v.shape for k, v in layer.params.items()} == {
        "query/kernel": (16, 4, 8),
        "query/bias": (4, 8),
        "key/kernel": (16, 4, 8),
        "key/bias": (4, 8),
        "value/kernel": (16, 4, 8),
        "value/bias": (4, 8),
        "attention_output/kernel": (4, 8, 16),
        "attention_output/bias": (16,),
    }
    # Keras' fans for (dim, heads, key_dim): heads * dim in, key_dim * dim out
    limit = np.sqrt(6 / (4 * 16 + 8 * 16))
    assert 0.8 * limit < np.abs(layer.params["query/kernel"]).max() <= limit
    assert not layer.params["query/bias"].any()
    assert summary_rows(model)["multi_head_attention"] == (
        "MultiHeadAttention",
        "(None, 10, 16)",
        "2,160",  # 3 * (16 * 32 + 32) + 32 * 16 + 16
    )


def test_dropout_only_while_training_and_keyed():
    layer = made(nn.MultiHeadAttention(2, 3, dropout=0.5), (5, 4))
    f, weights = as_function(layer)
    x = normal(2, 5, 4)
    ctx = nn.CallContext(False)
    plain = np.asarray(layer.call(layer.params, x, ctx))
    np.testing.assert_array_equal(np.asarray(f(x, *weights)), plain)

    def training(key):
        return np.asarray(layer.call(layer.params, x, nn.CallContext(True, np.int64(key))))

    assert not np.allclose(training(1), plain)
    np.testing.assert_array_equal(training(1), training(1))
    assert not np.allclose(training(1), training(2))


def sequence_model(seed=0):
    return nn.Sequential(
        [
            nn.Dense(8, input_shape=(6, 3)),
            nn.MultiHeadAttention(2, 4, use_causal_mask=True),
            nn.LayerNormalization(),
            nn.GlobalAveragePooling1D(),
            nn.Dense(2, activation="softmax"),
        ],
        name="attention",
        seed=seed,
    )


def sequences(n=96, seed=0):
    """Class 1: the sequence's first feature rises over time; class 0: it falls."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    ramp = np.linspace(-1, 1, 6)
    x = rng.normal(0, 0.3, (n, 6, 3))
    x[:, :, 0] += np.where(y[:, None] == 1, ramp, -ramp)
    return x.astype(np.float32), y.astype(np.int64)


def test_compiled_forward_and_gradient_equal_eager():
    layer = made(nn.MultiHeadAttention(2, 3, use_causal_mask=True), [(4, 5), (6, 3)])
    check_compiled(layer, [normal(2, 4, 5), normal(2, 6, 3)])


def test_save_load_and_fit(tmp_path):
    model = sequence_model()
    x, y = sequences()
    model.compile(optim.Adam(1e-2), "sparse_categorical_crossentropy")
    before = model.evaluate(x, y, batch_size=32)["loss"]
    model.fit(x, y, batch_size=16, epochs=2, verbose=0, seed=0)
    assert model.evaluate(x, y, batch_size=32)["loss"] < 0.8 * before
    loaded = round_trip(model, x[:5], tmp_path)
    assert loaded.layers[1].use_causal_mask and loaded.layers[1].num_heads == 2


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: nn.MultiHeadAttention(2, 3, attention_axes=(1,)), NotImplementedError, "axes"),
        (lambda: nn.MultiHeadAttention(2, 3, dropout=1.0), ConfigError, "dropout"),
        (lambda: nn.MultiHeadAttention(0, 3), ConfigError, "num_heads"),
        (lambda: made(nn.MultiHeadAttention(2, 3), (4, 5, 6)), ShapeError, "steps, features"),
        (lambda: made(nn.MultiHeadAttention(2, 3), [(4, 5), (3, 5), (2, 5)]), ShapeError, "same"),
        (lambda: made(nn.MultiHeadAttention(2, 3), [(4, 5)] * 4), ShapeError, "query, value"),
    ],
)
def test_bad_arguments_raise_project_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_a_mask_of_the_wrong_shape_names_the_shapes():
    layer = made(nn.MultiHeadAttention(2, 3), (4, 5))
    x = normal(2, 4, 5)
    with pytest.raises(ShapeError, match=r"\(2, 4, 4\)"):
        layer.attend(layer.params, x, x, attention_mask=np.ones((2, 4, 3), bool))


def test_cross_attention_in_a_functional_model(tmp_path):
    """[query, value] inputs through nn.Input / nn.Model: Layer.build gets a list of
    shapes, and the saved model reloads with the same predictions."""
    query, value = nn.Input((4, 6)), nn.Input((5, 3))
    mha = nn.MultiHeadAttention(2, 3)
    pooled = nn.GlobalAveragePooling1D()(mha(query, value))
    model = nn.Model([query, value], nn.Dense(2, activation="softmax")(pooled))
    assert mha.input_shape == [(4, 6), (5, 3)]
    assert mha.params["key/kernel"].shape == (3, 2, 3)
    xq, xv = normal(8, 4, 6).astype(np.float32), normal(8, 5, 3).astype(np.float32)
    direct = mha.attend(mha.params, xq, xv)
    np.testing.assert_allclose(np.asarray(mha(xq, xv)), np.asarray(direct), rtol=1e-6)
    model.compile(optim.Adam(1e-2), "sparse_categorical_crossentropy")
    model.fit([xq, xv], np.arange(8) % 2, epochs=1, verbose=0)
    model.save(str(tmp_path / "cross"))
    loaded = nn.load_model(str(tmp_path / "cross"))
    np.testing.assert_array_equal(loaded.predict([xq, xv]), model.predict([xq, xv]))
