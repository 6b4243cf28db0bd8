"""Metrics for compile(metrics=[...]): per-sample values averaged over an epoch.

"accuracy" picks the variant that fits the loss, as Keras does.
"""

from __future__ import annotations

import numpy as np

from . import losses as losses_mod

__all__ = ["get", "mean_absolute_error", "mean_squared_error"]


def binary_accuracy(t, p, loss):
    threshold = 0.0 if loss.from_logits else 0.5
    return ((p > threshold) == (t > 0.5)).mean(axis=-1)


def categorical_accuracy(t, p, loss):
    return (p.argmax(axis=-1) == t.argmax(axis=-1)).astype(p.dtype)


def mse(t, p, loss):
    return ((p - t) ** 2).mean(axis=-1)


def mae(t, p, loss):
    return np.abs(p - t).mean(axis=-1)


class Metric:
    """A named metric: `values(y_true, y_pred)` gives one value per sample (and step)."""

    def __init__(self, name, fn, loss, raw=False):
        self.name, self._fn, self._loss, self._raw = name, fn, loss, raw

    def values(self, y_true, y_pred):
        """The metric per sample (and step)."""
        if self._raw:  # a user's function sees the labels as given, as in Keras
            return np.asarray(self._fn(np.asarray(y_true), y_pred), dtype=np.float64)
        # The loss already validated the labels; reuse its conversion (e.g. sparse -> one-hot).
        y_pred = self._loss.check_prediction(y_pred)
        t = self._loss.check(y_true, y_pred)
        return self._fn(t, y_pred, self._loss)


def get(name, loss: losses_mod.Loss, output_dim: int) -> Metric:
    """The metric called `name` for a model compiled with `loss` and `output_dim` outputs.

    "accuracy" picks the binary, categorical or sparse form from the loss, as Keras does.

    Raises:
        ValueError: an unknown metric name.
    """
    if callable(name):  # a function (y_true, y_pred) -> values per sample, named as it is
        return Metric(getattr(name, "__name__", "metric"), name, loss, raw=True)
    if name in ("accuracy", "acc"):  # the history key is the name the user gave
        if isinstance(loss, losses_mod.CategoricalCrossentropy):
            return Metric(name, categorical_accuracy, loss)
        if isinstance(loss, losses_mod.BinaryCrossentropy) or output_dim == 1:
            return Metric(name, binary_accuracy, loss)
        return Metric(name, categorical_accuracy, loss)
    table = {"mse": mse, "mean_squared_error": mse, "mae": mae, "mean_absolute_error": mae,
             "binary_accuracy": binary_accuracy, "categorical_accuracy": categorical_accuracy,
             "sparse_categorical_accuracy": categorical_accuracy}  # fmt: skip
    if name in table:
        return Metric(name, table[name], loss)
    known = ["accuracy", "acc", *table]
    raise ValueError(f"metrics: unknown metric {name!r}; expected a function or one of {known}")


def mean_squared_error(y_true, y_pred) -> np.ndarray:
    """Keras's function form: mean((y_true - y_pred)^2) over the last axis, per sample."""
    return mse(np.asarray(y_true), np.asarray(y_pred), None)


def mean_absolute_error(y_true, y_pred) -> np.ndarray:
    """Keras's function form: mean(|y_true - y_pred|) over the last axis, per sample."""
    return mae(np.asarray(y_true), np.asarray(y_pred), None)


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
