"""Losses with Keras's names and formulas, each giving its value and its gradient.

Every loss reduces the last axis per sample (like Keras), then averages the per-sample values
over the batch (and over unmasked time steps when the output carries a mask).
"""

from __future__ import annotations

import numpy as np

from ._registry import Registry
from ._validate import integer_ids

__all__ = [
    "mean_absolute_error",
    "mean_squared_error",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "FunctionLoss",
    "Huber",
    "Loss",
    "MeanAbsoluteError",
    "MeanSquaredError",
    "SparseCategoricalCrossentropy",
    "get",
]

EPSILON = 1e-7  # Keras's clipping of probabilities
# Keras 3's reductions: how a loss turns its weighted per-sample values into one number.
REDUCTIONS = ("sum_over_batch_size", "mean", "mean_with_sample_weight", "sum", "none", None)


def _shape(a):
    return tuple(int(s) for s in a.shape)


class Loss:
    """Base class of the losses: the mean over samples (and steps) of `per_sample`.

    Subclasses give `per_sample(y_true, y_pred)` (one value per output row) and its gradient;
    `value_and_grad` returns the weighted mean and d(mean)/d(y_pred) for the trainer.
    """

    name = "loss"
    sparse = False

    def __init__(self, from_logits=False, reduction="sum_over_batch_size", name=None):
        self.from_logits = bool(from_logits)
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        if name is not None:
            self.name = str(name)

    def check(self, y_true, y_pred):
        """y_true as a float array shaped like y_pred, or a clear ValueError."""
        y_true = np.asarray(y_true)
        if y_true.dtype.kind not in "fiub":
            raise TypeError(f"{self.name}: labels must be numeric, got dtype {y_true.dtype}")
        if y_true.shape != y_pred.shape:
            if y_true.shape + (1,) == y_pred.shape:
                y_true = y_true[..., None]
            else:
                raise ValueError(
                    f"{self.name}: labels shape {_shape(y_true)} does not match the model "
                    f"output shape {_shape(y_pred)}"
                )
        return y_true.astype(y_pred.dtype, copy=False)

    def check_prediction(self, y_pred):
        """y_pred as a float array with an outputs axis, or a clear TypeError/ValueError."""
        p = np.asarray(y_pred)
        if p.dtype.kind not in "fiub":
            raise TypeError(f"{self.name}: predictions must be numeric, got dtype {p.dtype}")
        if p.ndim == 0:
            raise ValueError(f"{self.name}: predictions need an outputs axis, got a scalar")
        return p.astype(np.result_type(p.dtype, np.float32), copy=False)

    def per_sample(self, y_true, y_pred):
        """(values shaped y_pred.shape[:-1], d(values)/d(y_pred))."""
        raise NotImplementedError

    def value_and_grad(self, y_true, y_pred, weights=None, total=None):
        """Reduced loss and its gradient w.r.t. y_pred, for training.

        `weights` (y_pred.shape[:-1]) weigh each value (masks, sample weights). The sum of
        weighted values is divided by `total` (by default the number of values) for
        "sum_over_batch_size" and "mean", by the sum of the weights for
        "mean_with_sample_weight", and by 1 for "sum"."""
        if self.reduction in ("none", None):
            raise ValueError(
                f"{self.name}: reduction={self.reduction!r} gives one value per sample; "
                "training needs one number (use 'sum_over_batch_size')"
            )
        y_pred = self.check_prediction(y_pred)
        y_true = self.check(y_true, y_pred)
        values, dvalues = self.per_sample(y_true, y_pred)
        if weights is None:
            weights = np.ones(values.shape, y_pred.dtype)
        if self.reduction == "sum":
            total = 1.0
        elif self.reduction == "mean_with_sample_weight" or total is None:
            total = weights.sum()
        total = max(float(total), 1e-12)
        value = float((values * weights).sum() / total)
        return value, dvalues * (weights / total)[..., None]

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The loss of predictions y_pred against labels y_true, reduced as `reduction` says:
        a float, or per-sample values for "none".

        Args:
            y_true: Labels.
            y_pred: Predictions, with an outputs axis.
            sample_weight: Weights per sample (or per sample and step), or None.
        """
        y_pred = self.check_prediction(y_pred)
        values, _ = self.per_sample(self.check(y_true, y_pred), y_pred)
        weights = None
        if sample_weight is not None:
            weights = np.asarray(sample_weight, dtype=values.dtype)
            if weights.shape != values.shape[: weights.ndim]:
                raise ValueError(f"sample_weight: expected a shape that starts "
                                 f"{_shape(values)}, got {_shape(weights)}")  # fmt: skip
            weights = np.broadcast_to(
                weights.reshape(weights.shape + (1,) * (values.ndim - weights.ndim)), values.shape
            )
            values = values * weights
        if self.reduction in ("none", None):
            return values
        total = values.sum()
        if self.reduction == "sum":
            return float(total)
        divisor = weights.sum() if (self.reduction == "mean_with_sample_weight"
                                    and weights is not None) else values.size  # fmt: skip
        return float(total / divisor) if divisor else 0.0

    def get_config(self):
        """The constructor arguments (Keras's config)."""
        return {"from_logits": self.from_logits, "reduction": self.reduction, "name": self.name}


class _RegressionLoss(Loss):
    """A loss of real-valued targets: Keras's (reduction, name) arguments, no from_logits.

    Args:
        reduction: How values become one number (REDUCTIONS; Keras's default).
        name: The loss's name (its Keras name by default).
    """

    def __init__(self, reduction="sum_over_batch_size", name=None):
        super().__init__(reduction=reduction, name=name)

    def get_config(self):
        """{"reduction", "name"}."""
        return {"reduction": self.reduction, "name": self.name}


class MeanSquaredError(_RegressionLoss):
    """mean((y_true - y_pred)^2) over the last axis ("mse")."""

    name = "mean_squared_error"

    def per_sample(self, t, p):
        """(value, gradient) per output row."""
        e = p - t
        return (e * e).mean(axis=-1), 2 * e / e.shape[-1]


class MeanAbsoluteError(_RegressionLoss):
    """mean(|y_true - y_pred|) over the last axis ("mae")."""

    name = "mean_absolute_error"

    def per_sample(self, t, p):
        """(value, gradient) per output row."""
        e = p - t
        return np.abs(e).mean(axis=-1), np.sign(e) / e.shape[-1]


class Huber(_RegressionLoss):
    """Quadratic within `delta` of the target, linear beyond ("huber").

    Args:
        delta: Where the loss turns from quadratic to linear.
    """

    name = "huber"

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name=None):
        super().__init__(reduction, name)
        self.delta = float(delta)

    def per_sample(self, t, p):
        """(value, gradient) per output row."""
        e, d = p - t, self.delta
        small = np.abs(e) <= d
        v = np.where(small, 0.5 * e * e, d * (np.abs(e) - 0.5 * d))
        g = np.where(small, e, d * np.sign(e))
        return v.mean(axis=-1), g / e.shape[-1]

    def get_config(self):
        """{"delta", "reduction", "name"}."""
        return {"delta": self.delta, "reduction": self.reduction, "name": self.name}


class BinaryCrossentropy(Loss):
    """Cross-entropy of probabilities in (0, 1) against 0/1 labels ("binary_crossentropy")."""

    name = "binary_crossentropy"

    def check(self, y_true, y_pred):
        """Labels must match the predictions' shape."""
        y_true = super().check(y_true, y_pred)
        if y_true.size and (y_true.min() < 0 or y_true.max() > 1):
            raise ValueError(f"{self.name}: labels must be in [0, 1], got range "
                             f"[{y_true.min()}, {y_true.max()}]")  # fmt: skip
        return y_true

    def per_sample(self, t, p):
        """(value, gradient) per output row, probabilities clipped away from 0 and 1."""
        n = p.shape[-1]
        if self.from_logits:
            v = np.maximum(p, 0) - p * t + np.log1p(np.exp(-np.abs(p)))
            return v.mean(axis=-1), (0.5 * (np.tanh(0.5 * p) + 1) - t) / n
        q = np.clip(p, EPSILON, 1 - EPSILON)
        v = -(t * np.log(q) + (1 - t) * np.log(1 - q))
        g = (-t / q + (1 - t) / (1 - q)) * ((p > EPSILON) & (p < 1 - EPSILON))
        return v.mean(axis=-1), g / n


class CategoricalCrossentropy(Loss):
    """Cross-entropy of class probabilities against one-hot labels ("categorical_crossentropy")."""

    name = "categorical_crossentropy"

    def per_sample(self, t, p):
        """(value, gradient) per output row."""
        if self.from_logits:
            z = p - p.max(axis=-1, keepdims=True)
            log_sm = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
            return -(t * log_sm).sum(axis=-1), np.exp(log_sm) * t.sum(axis=-1, keepdims=True) - t
        s = p.sum(axis=-1, keepdims=True)
        q = p / s  # Keras renormalises the probabilities, then clips them
        qc = np.clip(q, EPSILON, 1 - EPSILON)
        gq = -t / qc * ((q > EPSILON) & (q < 1 - EPSILON))
        return -(t * np.log(qc)).sum(axis=-1), (gq - (gq * q).sum(axis=-1, keepdims=True)) / s


class SparseCategoricalCrossentropy(CategoricalCrossentropy):
    """Cross-entropy against integer class ids ("sparse_categorical_crossentropy")."""

    name = "sparse_categorical_crossentropy"
    sparse = True

    def check(self, y_true, y_pred):
        """Integer class ids in [0, classes), one per output row; returned one-hot."""
        y_true = np.asarray(y_true)
        n = y_pred.shape[-1]
        if y_true.shape == y_pred.shape[:-1] + (1,) and n != 1:
            y_true = y_true[..., 0]
        if y_true.shape != y_pred.shape[:-1]:
            raise ValueError(
                f"{self.name}: expected integer labels of shape {_shape(y_pred)[:-1]} "
                f"(one class id per output), got {_shape(y_true)}"
            )
        ids = integer_ids(
            self.name, y_true, n, "class ids", f"labels must be class ids in [0, {n})"
        )
        onehot = np.zeros(y_pred.shape, y_pred.dtype)
        np.put_along_axis(onehot, ids[..., None], 1, axis=-1)
        return onehot


class FunctionLoss(Loss):
    """A Keras-style loss function `fn(y_true, y_pred)` returning one value per sample (or per
    element, averaged over the last axis), as `compile(loss=fn)` takes it.

    NumPy functions have no automatic gradient, so the gradient is taken by central
    differences in float64: one output unit at a time for every sample at once (a loss of
    each sample alone, as Keras's convention is), 2 x units calls of `fn` per batch, accurate
    to about 1e-9 relative for smooth losses. Subclass Loss with `per_sample` for an exact one.

    Args:
        fn: The function.
        reduction: As for every Loss.
        name: The loss's name (fn's by default).
    """

    def __init__(self, fn, reduction="sum_over_batch_size", name=None):
        super().__init__(reduction=reduction, name=name or getattr(fn, "__name__", "loss"))
        self.fn = fn

    def check(self, y_true, y_pred):
        """Labels as given (the function decides what it accepts), shaped as Keras passes."""
        y_true = np.asarray(y_true)
        if y_true.ndim == y_pred.ndim - 1 and y_pred.shape[-1] == 1:
            y_true = y_true[..., None]
        return y_true

    def _values(self, t, p):
        out = np.asarray(self.fn(t, p), dtype=np.float64)
        if out.shape == p.shape:
            out = out.mean(axis=-1)
        if out.shape != p.shape[:-1]:
            raise ValueError(
                f"loss {self.name}: expected one value per sample, shape {_shape(p)[:-1]} "
                f"(or per element), got shape {_shape(out)}"
            )
        return out

    def per_sample(self, t, p):
        """(values, central-difference gradient) per output row."""
        p64 = p.astype(np.float64)
        values = self._values(t, p64)
        grad = np.empty_like(p64)
        for j in range(p64.shape[-1]):
            h = 6e-6 * np.maximum(1.0, np.abs(p64[..., j]))  # ~ cbrt(float64 eps) x scale
            up, down = p64.copy(), p64.copy()
            up[..., j] += h
            down[..., j] -= h
            grad[..., j] = (self._values(t, up) - self._values(t, down)) / (2 * h)
        return values.astype(p.dtype), grad.astype(p.dtype)

    def get_config(self):
        """Functions cannot be saved: model files keep no compile settings for them."""
        raise ValueError(f"loss {self.name}: a function cannot be saved; use a Loss class")


_CLASSES = {
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
    "mae": MeanAbsoluteError,
    "mean_absolute_error": MeanAbsoluteError,
    "huber": Huber,
    "huber_loss": Huber,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}


_REGISTRY = Registry("loss", Loss, _CLASSES)


def mean_squared_error(y_true, y_pred) -> np.ndarray:
    """Keras's function form: mean((y_true - y_pred)^2) over the last axis, per sample."""
    return np.mean((np.asarray(y_pred) - np.asarray(y_true)) ** 2, axis=-1)


def mean_absolute_error(y_true, y_pred) -> np.ndarray:
    """Keras's function form: mean(|y_true - y_pred|) over the last axis, per sample."""
    return np.mean(np.abs(np.asarray(y_pred) - np.asarray(y_true)), axis=-1)


def serialize(loss: Loss) -> dict:
    """`{"class_name", "config"}` of a loss, as model files store it."""
    return _REGISTRY.serialize(loss)


def deserialize(spec) -> Loss:
    """The loss a `serialize` dict describes; ValueError for an unknown class."""
    return _REGISTRY.deserialize(spec)


def get(loss) -> Loss:
    """A Loss instance: `loss` itself, a new one by name (e.g. "mse"), or a FunctionLoss for
    a function `fn(y_true, y_pred)`.

    Raises:
        ValueError: an unknown name, listing the known ones.
    """
    if callable(loss) and not isinstance(loss, (Loss, type)):
        return FunctionLoss(loss)
    return _REGISTRY.get(loss)


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
