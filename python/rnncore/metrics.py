"""Metrics for compile(metrics=[...]), by name or as Keras's classes.

Each metric turns a batch into a few sums (`sums`), which add up over an epoch (and over the
ranks of a DataParallel), and computes its value from the totals (`result`): a weighted mean
for most, TP / (TP + FP) for Precision, areas over confusion counts for AUC. "accuracy"
picks the variant that fits the loss, as Keras does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import losses as losses_mod

__all__ = [
    "AUC",
    "BinaryAccuracy",
    "CategoricalAccuracy",
    "MeanAbsolutePercentageError",
    "Metric",
    "Precision",
    "Recall",
    "RootMeanSquaredError",
    "SparseCategoricalAccuracy",
    "TopKCategoricalAccuracy",
    "get",
    "mean_absolute_error",
    "mean_squared_error",
]


def binary_accuracy(t, p, loss):
    threshold = 0.0 if loss.from_logits else 0.5
    return ((p > threshold) == (t > 0.5)).mean(axis=-1)


def categorical_accuracy(t, p, loss):
    return (p.argmax(axis=-1) == t.argmax(axis=-1)).astype(p.dtype)


def mse(t, p, loss):
    return ((p - t) ** 2).mean(axis=-1)


def mae(t, p, loss):
    return np.abs(p - t).mean(axis=-1)


def mape(t, p, loss):
    return 100.0 * (np.abs(t - p) / np.maximum(np.abs(t), 1e-7)).mean(axis=-1)


class Metric:
    """A named metric averaging one value per sample (and step): `values(y_true, y_pred)`.

    Subclasses with other totals override `size`, `sums` and `result`."""

    size = 2  # floats in `sums`

    def __init__(self, name, fn, loss, raw=False):
        self.name, self._fn, self._loss, self._raw = name, fn, loss, raw

    def sums(self, y_true, y_pred, weights) -> np.ndarray:
        """This batch's totals (`size` floats); `weights` (y_pred.shape[:-1]) mask steps."""
        v = self.values(y_true, y_pred)
        w = weights if weights is not None and weights.shape == v.shape else np.ones_like(v)
        return np.array([float((v * w).sum()), float(w.sum())])

    def result(self, sums) -> float:
        """The metric from totals of `sums`."""
        return float(sums[0] / max(sums[1], 1e-12))

    def bind(self, loss):
        """This metric for a model compiled with `loss` (labels converted as it converts them)."""
        self._loss = loss
        return self

    def values(self, y_true, y_pred):
        """The metric per sample (and step)."""
        if self._raw:  # a user's function sees the labels as given, as in Keras
            return np.asarray(self._fn(np.asarray(y_true), y_pred), dtype=np.float64)
        # The loss already validated the labels; reuse its conversion (e.g. sparse -> one-hot).
        y_pred = self._loss.check_prediction(y_pred)
        t = self._loss.check(y_true, y_pred)
        return self._fn(t, y_pred, self._loss)


class _MeanOf(Metric):
    """A Keras metric class that averages a per-sample function."""

    _fn_default: Any = None
    default_name = ""

    def __init__(self, name=None):
        super().__init__(name or self.default_name, type(self)._fn_default, None)


class BinaryAccuracy(_MeanOf):
    """How often predictions above `threshold` match binary labels ("binary_accuracy")."""

    default_name = "binary_accuracy"

    def __init__(self, name=None, threshold=0.5):
        super().__init__(name)
        self.threshold = threshold

    def values(self, y_true, y_pred):
        """1 per matching entry, averaged over the last axis."""
        t = self._loss.check(y_true, self._loss.check_prediction(y_pred))
        return ((np.asarray(y_pred) > self.threshold) == (t > 0.5)).mean(axis=-1)


class CategoricalAccuracy(_MeanOf):
    """How often the argmax matches one-hot labels ("categorical_accuracy")."""

    default_name = "categorical_accuracy"
    _fn_default = staticmethod(categorical_accuracy)


class SparseCategoricalAccuracy(_MeanOf):
    """How often the argmax matches integer labels ("sparse_categorical_accuracy")."""

    default_name = "sparse_categorical_accuracy"

    def values(self, y_true, y_pred):
        """1 where argmax(y_pred) equals the label."""
        t = np.asarray(y_true)
        if t.ndim == y_pred.ndim:
            t = t[..., 0]
        return (np.asarray(y_pred).argmax(axis=-1) == t.astype(np.int64)).astype(np.float64)


class TopKCategoricalAccuracy(_MeanOf):
    """How often the one-hot label is among the k largest predictions."""

    default_name = "top_k_categorical_accuracy"

    def __init__(self, k=5, name=None):
        super().__init__(name)
        self.k = int(k)

    def values(self, y_true, y_pred):
        """1 where the label's prediction ranks in the top k."""
        p = np.asarray(y_pred)
        label = np.asarray(y_true).argmax(axis=-1)
        score = np.take_along_axis(p, label[..., None], axis=-1)
        return ((p > score).sum(axis=-1) < self.k).astype(np.float64)


class MeanAbsolutePercentageError(_MeanOf):
    """100 · mean(|y_true − y_pred| / |y_true|) ("mean_absolute_percentage_error")."""

    default_name = "mean_absolute_percentage_error"
    _fn_default = staticmethod(mape)


class RootMeanSquaredError(_MeanOf):
    """sqrt of the mean squared error over all values ("root_mean_squared_error")."""

    default_name = "root_mean_squared_error"
    _fn_default = staticmethod(mse)

    def result(self, sums):
        """sqrt(mean)."""
        return float(np.sqrt(sums[0] / max(sums[1], 1e-12)))


def _confusion(y_true, y_pred, thresholds, weights):
    """[TP, FP, TN, FN] (each per threshold) of predictions above each threshold."""
    shape = np.shape(y_pred)
    t = np.asarray(y_true, np.float64).reshape(shape).ravel() > 0.5
    p = np.asarray(y_pred, np.float64).ravel()
    w = np.ones_like(p)
    if weights is not None:  # a weight per sample (and step), the same for every output
        w = np.asarray(weights, np.float64)
        w = np.broadcast_to(w.reshape(w.shape + (1,) * (len(shape) - w.ndim)), shape).ravel()
    above = p[None, :] > np.asarray(thresholds)[:, None]  # [thresholds, values]
    tp = (above & t) @ w
    fp = (above & ~t) @ w
    return np.concatenate([tp, fp, (w * ~t).sum() - fp, (w * t).sum() - tp])


class _Thresholded(Metric):
    def __init__(self, name, thresholds):
        super().__init__(name, None, None)
        self.thresholds = np.atleast_1d(np.asarray(thresholds, np.float64))
        self.size = 4 * len(self.thresholds)

    def sums(self, y_true, y_pred, weights):
        """Confusion counts [TP, FP, TN, FN] per threshold."""
        return _confusion(y_true, y_pred, self.thresholds, weights)

    def _counts(self, sums):
        return np.asarray(sums, np.float64).reshape(4, len(self.thresholds))


def _ratio(a, b):
    return float(a / b) if b > 0 else 0.0


class Precision(_Thresholded):
    """TP / (TP + FP) of predictions above `thresholds` (0.5) ("precision")."""

    def __init__(self, thresholds=0.5, name=None):
        super().__init__(name or "precision", thresholds)

    def result(self, sums):
        """TP / (TP + FP)."""
        tp, fp, _, _ = self._counts(sums)
        return _ratio(tp[0], tp[0] + fp[0])


class Recall(_Thresholded):
    """TP / (TP + FN) of predictions above `thresholds` (0.5) ("recall")."""

    def __init__(self, thresholds=0.5, name=None):
        super().__init__(name or "recall", thresholds)

    def result(self, sums):
        """TP / (TP + FN)."""
        tp, _, _, fn = self._counts(sums)
        return _ratio(tp[0], tp[0] + fn[0])


class AUC(_Thresholded):
    """Area under the ROC or precision-recall curve over `num_thresholds` evenly spaced
    thresholds, as Keras computes it (trapezoids for ROC, Davis & Goadrich's interpolation
    for PR) ("auc")."""

    def __init__(self, num_thresholds=200, curve="ROC", name=None):
        if curve not in ("ROC", "PR"):
            raise ValueError(f"curve: expected 'ROC' or 'PR', got {curve!r}")
        if int(num_thresholds) < 2:
            raise ValueError(f"num_thresholds: expected > 1, got {num_thresholds!r}")
        inner = [(i + 1) / (num_thresholds - 1) for i in range(num_thresholds - 2)]
        super().__init__(name or "auc", [-1e-7, *inner, 1.0 + 1e-7])
        self.curve = curve

    def result(self, sums):
        """The area from the confusion counts."""
        tp, fp, tn, fn = self._counts(sums)
        if self.curve == "PR":
            return _pr_auc(tp, fp, fn)
        recall = np.divide(tp, tp + fn, out=np.zeros_like(tp), where=tp + fn > 0)
        fpr = np.divide(fp, fp + tn, out=np.zeros_like(fp), where=fp + tn > 0)
        return float(((fpr[:-1] - fpr[1:]) * (recall[:-1] + recall[1:]) / 2).sum())


def _pr_auc(tp, fp, fn) -> float:
    """Keras's interpolated area under the precision-recall curve."""
    dtp = tp[:-1] - tp[1:]
    p = tp + fp
    dp = np.maximum(p[:-1] - p[1:], 0)
    slope = np.divide(dtp, dp, out=np.zeros_like(dtp), where=dp != 0)
    intercept = tp[1:] - slope * p[1:]
    both = (p[:-1] > 0) & (p[1:] > 0)
    ratio = np.ones_like(dtp)
    np.divide(p[:-1], np.maximum(p[1:], 0), out=ratio, where=both & (p[1:] > 0))
    positives = np.maximum(tp[1:] + fn[1:], 0)
    top = slope * (dtp + intercept * np.log(ratio))
    return float(np.divide(top, positives, out=np.zeros_like(top), where=positives != 0).sum())


_CLASSES = {"auc": AUC, "AUC": AUC, "precision": Precision, "Precision": Precision,
            "recall": Recall, "Recall": Recall,
            "top_k_categorical_accuracy": TopKCategoricalAccuracy,
            "mape": MeanAbsolutePercentageError,
            "mean_absolute_percentage_error": MeanAbsolutePercentageError,
            "RootMeanSquaredError": RootMeanSquaredError, "rmse": RootMeanSquaredError,
            "root_mean_squared_error": RootMeanSquaredError}  # fmt: skip


def get(name, loss: losses_mod.Loss, output_dim: int) -> Metric:
    """The metric called `name` for a model compiled with `loss` and `output_dim` outputs.

    "accuracy" picks the binary, categorical or sparse form from the loss, as Keras does.

    Raises:
        ValueError: an unknown metric name.
    """
    if isinstance(name, Metric):  # a Keras-style metric object, under its own name
        return name.bind(loss)
    if name in _CLASSES:  # the history key is the name the user gave
        metric = _CLASSES[name]()
        metric.name = name  # Keras keeps the string given as the history key
        return metric.bind(loss)
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
    known = ["accuracy", "acc", *table, *_CLASSES]
    raise ValueError(f"metrics: unknown metric {name!r}; expected a function or one of {known}")


def mean_squared_error(y_true, y_pred) -> np.ndarray:
    """Keras's function form: mean((y_true - y_pred)^2) over the last axis, per sample."""
    return mse(np.asarray(y_true), np.asarray(y_pred), None)


def mean_absolute_error(y_true, y_pred) -> np.ndarray:
    """Keras's function form: mean(|y_true - y_pred|) over the last axis, per sample."""
    return mae(np.asarray(y_true), np.asarray(y_pred), None)


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
