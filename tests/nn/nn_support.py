"""Small learnable datasets and models for the nn tests."""

import numpy as np

from nncompile import nn


def blobs(n=96, size=6, classes=3, seed=0):
    """Images (n, size, size, 1): class k has a bright patch in region k, plus noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.normal(0, 0.3, (n, size, size, 1)).astype(np.float32)
    band = size // classes
    for i, k in enumerate(y):
        x[i, k * band : (k + 1) * band, :, 0] += 1.5
    return x, y.astype(np.int64)


def small_cnn(input_shape=(6, 6, 1), classes=3, seed=0, **extra):
    return nn.Sequential(
        [
            nn.Conv2D(4, (3, 3), activation="relu", input_shape=input_shape),
            nn.MaxPooling2D((2, 2)),
            nn.Flatten(),
            nn.Dense(8, activation="relu"),
            nn.Dense(classes, activation="softmax"),
        ],
        seed=seed,
        **extra,
    )


def softmax_ce(probs_or_logits, y, logits=False):
    """Float64 mean cross-entropy, computed independently of nncompile."""
    z = np.asarray(probs_or_logits, np.float64)
    if logits:
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    else:
        logp = np.log(z)
    return float(-logp[np.arange(len(y)), y].mean())
