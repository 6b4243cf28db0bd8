"""Datasets of the classic RNN tutorials, generated on the fly."""

from __future__ import annotations

import numpy as np

__all__ = ["generate_time_series", "stratified_split", "time_series_splits"]


def generate_time_series(batch_size, n_steps, seed=None) -> np.ndarray:
    """(batch_size, n_steps, 1) float32 series: two sines with random frequencies and phases
    plus uniform noise, 0.5·sin((t−o1)(10f1+10)) + 0.2·sin((t−o2)(20f2+20)) + 0.1·(u−0.5)."""
    rng = np.random.default_rng(seed)
    freq1, freq2, offsets1, offsets2 = rng.random((4, batch_size, 1))
    t = np.linspace(0, 1, n_steps)
    series = 0.5 * np.sin((t - offsets1) * (freq1 * 10 + 10))
    series += 0.2 * np.sin((t - offsets2) * (freq2 * 20 + 20))
    series += 0.1 * (rng.random((batch_size, n_steps)) - 0.5)
    return series[..., np.newaxis].astype(np.float32)


def time_series_splits(n_series=10000, n_steps=50, ahead=1, seed=42):
    """{"train", "valid", "test"}: (x (n, n_steps, 1), y (n, ahead)) split 70/20/10 %."""
    series = generate_time_series(n_series, n_steps + ahead, seed)
    x, y = series[:, :n_steps], series[:, n_steps:, 0]
    a, b = int(0.7 * n_series), int(0.9 * n_series)
    return {"train": (x[:a], y[:a]), "valid": (x[a:b], y[a:b]), "test": (x[b:], y[b:])}


def stratified_split(x, y, fraction, seed=0):
    """((x_a, y_a), (x_b, y_b)) with `fraction` of each class's rows in b, both shuffled,
    so a small validation set keeps the class balance of the whole."""
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y: expected 1-D class labels, got shape {y.shape}")
    if len(x) != len(y):
        raise ValueError(f"x and y: expected the same number of rows, got {len(x)} and {len(y)}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
        raise ValueError(f"fraction: expected a float in (0, 1), got {fraction!r}")
    rng = np.random.default_rng(seed)
    a_rows, b_rows = [], []
    classes, class_of_row = np.unique(y, return_inverse=True)  # (NaN labels form one class)
    for k in range(len(classes)):
        rows = rng.permutation(np.flatnonzero(class_of_row.ravel() == k))
        n_b = int(round(fraction * len(rows)))
        if len(rows) >= 2:  # every class with two rows or more appears on both sides
            n_b = min(max(n_b, 1), len(rows) - 1)
        b_rows.append(rows[:n_b])
        a_rows.append(rows[n_b:])
    a, b = (rng.permutation(np.concatenate(r)) for r in (a_rows, b_rows))
    take = (
        (lambda rows: x[rows]) if isinstance(x, np.ndarray) else (lambda rows: [x[i] for i in rows])
    )
    return (take(a), y[a]), (take(b), y[b])


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
