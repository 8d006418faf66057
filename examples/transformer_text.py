"""A Transformer text classifier on a task only attention solves: is a sequence of tokens
in non-decreasing order? Negative examples are sorted sequences with one adjacent pair of
different tokens swapped, so every class has the same tokens in nearly the same places and
a bag-of-tokens model stays at chance (50 %). The model: token Embedding + learned position
embedding, one encoder block (MultiHeadAttention and a feed-forward network, each with a
residual connection and LayerNormalization), GlobalMaxPooling1D and a sigmoid unit; written
with the functional API and trained compiled.

    python examples/transformer_text.py [--length 12] [--vocab 16] [--epochs 20]
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np

from nncompile import nn, optim
from nncompile.argtypes import positive_int
from nncompile.nn.layer import CallContext, Weight


class PositionEmbedding(nn.Layer):
    """Adds a learned vector per position to a (batch, length, dim) sequence."""

    def weights(self, input_shape: tuple[int, ...]) -> dict[str, Weight]:
        return {"positions": Weight(tuple(input_shape), lambda s, rng: rng.normal(0, 0.05, s))}

    def forward(self, params: dict, x: Any, ctx: CallContext) -> Any:
        return x + params["positions"]


def sortedness_data(n: int, length: int, vocab: int, rng: np.random.Generator):
    """Half sorted sequences (label 1), half with one adjacent pair swapped (label 0)."""
    seqs = np.sort(rng.integers(0, vocab, (n, length)), axis=1)
    labels = np.ones(n, np.float32)
    for i in range(0, n, 2):
        # a swap of two equal tokens changes nothing: redraw until some neighbours differ
        while not (steps := np.flatnonzero(np.diff(seqs[i]))).size:
            seqs[i] = np.sort(rng.integers(0, vocab, length))
        j = rng.choice(steps)
        seqs[i, j], seqs[i, j + 1] = seqs[i, j + 1], seqs[i, j]
        labels[i] = 0.0
    return seqs.astype(np.int64), labels


def classifier(length: int, vocab: int, dim: int = 32, heads: int = 4) -> nn.Model:
    tokens = nn.Input((length,), dtype="int64", name="tokens")
    x = nn.Embedding(vocab, dim, name="token_embedding")(tokens)
    x = PositionEmbedding(name="position_embedding")(x)
    attended = nn.MultiHeadAttention(heads, dim // heads, name="attention")(x, x)
    x = nn.LayerNormalization(name="norm1")(nn.Add(name="residual1")([x, attended]))
    hidden = nn.Dense(2 * dim, activation="relu", name="ffn_in")(x)
    x = nn.LayerNormalization(name="norm2")(
        nn.Add(name="residual2")([x, nn.Dense(dim, name="ffn_out")(hidden)])
    )
    x = nn.GlobalMaxPooling1D(name="pool")(x)
    return nn.Model(tokens, nn.Dense(1, activation="sigmoid", name="sorted")(x), name="encoder")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--length", type=positive_int, default=12)
    p.add_argument("--vocab", type=positive_int, default=16)
    p.add_argument("--train", type=positive_int, default=20000, help="training sequences")
    p.add_argument("--epochs", type=positive_int, default=20)
    args = p.parse_args()
    if args.length < 2 or args.vocab < 2:  # no sequence could be put out of order
        p.error("--length and --vocab must be at least 2")

    rng = np.random.default_rng(0)
    x_train, y_train = sortedness_data(args.train, args.length, args.vocab, rng)
    x_test, y_test = sortedness_data(1000, args.length, args.vocab, rng)
    model = classifier(args.length, args.vocab)
    model.compile(optim.Adam(2e-3), "binary_crossentropy", metrics=["accuracy"])
    model.summary()
    history = model.fit(x_train, y_train, batch_size=64, epochs=args.epochs, verbose=2, seed=0)
    result = model.evaluate(x_test, y_test)
    print(history.timing())
    print("test:", {k: round(v, 4) for k, v in result.items()}, "(chance: 0.5)")


if __name__ == "__main__":
    main()
