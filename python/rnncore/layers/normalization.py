"""LayerNormalization, BatchNormalization, and the normalisation arithmetic LayerNormSimpleRNN
shares."""

from __future__ import annotations

import numpy as np

from .. import _core, initializers
from .base import Layer, add_grad


def _epsilon(value) -> float:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if not ok or not 0 < value < float("inf"):
        raise ValueError(f"epsilon: expected a positive float, got {value!r}")
    return float(value)


class LayerNormalization(Layer):
    """Normalises the last axis: gamma · (x − mean) / sqrt(var + epsilon) + beta."""

    supports_masking = True
    config_keys = ("epsilon", "center", "scale")

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, **kwargs):
        if axis not in (-1, [-1], (-1,)):  # Keras saves the axis as a list
            raise NotImplementedError(f"LayerNormalization: axis must be -1, got {axis!r}")
        super().__init__(**kwargs)
        self.epsilon, self.center, self.scale = _epsilon(epsilon), bool(center), bool(scale)

    def build(self, input_shape):
        """Creates gamma and beta over the last axis (when scale / center)."""
        if self.scale:
            self._make("gamma", (input_shape[-1],), initializers.ones, None)
        if self.center:
            self._make("beta", (input_shape[-1],), initializers.zeros, None)

    def forward(self, x, mask, training):
        """gamma · (x - mean) / sqrt(var + epsilon) + beta over the last axis."""
        y = _layer_norm(x, self.params.get("gamma"), self.params.get("beta"), self.epsilon)
        return y, (_normalize(x, self.epsilon) if training else None)

    def backward(self, ctx, dy, grads):
        """Gradients of gamma, beta and x."""
        xhat, inv = ctx
        flat = lambda a: a.reshape(-1, a.shape[-1])  # noqa: E731
        if self.center:
            add_grad(grads, (self, "beta"), flat(dy).sum(axis=0))
        if self.scale:
            add_grad(grads, (self, "gamma"), flat(dy * xhat).sum(axis=0))
            dy = dy * self.params["gamma"]
        return _normalize_backward(dy, xhat, inv)


class BatchNormalization(Layer):
    """Normalises each feature (last axis) over the batch (and time), as Keras's layer.

    Training uses the batch's mean and biased variance (over unmasked steps when a mask
    arrives) and moves `moving_mean`/`moving_variance` towards them by `1 - momentum`;
    inference uses the moving statistics. The moving statistics are weights (Keras's order:
    gamma, beta, moving_mean, moving_variance) that training does not differentiate.

    Args:
        axis: -1 only (the features).
        momentum: How much of the moving statistics each training batch keeps.
        epsilon: Added to the variance.
        center: Learn beta.
        scale: Learn gamma.
        **kwargs: Layer arguments (name, input_shape, dtype, trainable, ...).
    """

    supports_masking = True
    config_keys = ("momentum", "epsilon", "center", "scale")
    weight_roles = {"gamma": ("gamma",), "beta": ("beta",)}

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True, **kwargs):
        if axis not in (-1, [-1], (-1,)):
            raise NotImplementedError(f"BatchNormalization: axis must be -1, got {axis!r}")
        super().__init__(**kwargs)
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)):
            raise TypeError(f"momentum: expected a float in [0, 1], got {momentum!r}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum: expected a float in [0, 1], got {momentum!r}")
        self.momentum, self.epsilon = float(momentum), _epsilon(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.moving_mean = self.moving_variance = None

    def build(self, input_shape):
        """Creates gamma, beta and the moving statistics over the last axis."""
        n = (input_shape[-1],)
        if self.scale:
            self._make("gamma", n, initializers.ones, None)
        if self.center:
            self._make("beta", n, initializers.zeros, None)
        self.moving_mean = np.zeros(n, self.compute_dtype)
        self.moving_variance = np.ones(n, self.compute_dtype)

    def count_params(self) -> int:
        """gamma and beta, plus the two moving statistics."""
        return super().count_params() + 2 * self.moving_mean.size

    def get_weights(self):
        """gamma, beta, moving_mean, moving_variance (Keras's order)."""
        return super().get_weights() + [self.moving_mean.copy(), self.moving_variance.copy()]

    def _weight_names(self):
        return list(self.params) + ["moving_mean", "moving_variance"]

    def _assign(self, weights):
        n = len(self.params)
        super()._assign(weights[:n])
        np.copyto(self.moving_mean, weights[n], casting="unsafe")
        np.copyto(self.moving_variance, weights[n + 1], casting="unsafe")

    def forward(self, x, mask, training):
        """gamma · (x - mean) / sqrt(var + epsilon) + beta with the batch's statistics
        (training, which also moves the moving ones) or the moving statistics."""
        w = _step_weights(x, mask)
        if training:
            count = max(float(w.sum()), 1.0)
            axes = tuple(range(x.ndim - 1))
            mean = (w * x).sum(axis=axes) / count
            var = (w * (x - mean) ** 2).sum(axis=axes) / count
            keep = self.momentum
            self.moving_mean[...] = self.moving_mean * keep + mean * (1 - keep)
            self.moving_variance[...] = self.moving_variance * keep + var * (1 - keep)
        else:
            mean, var = self.moving_mean, self.moving_variance
        inv = 1.0 / np.sqrt(var + self.epsilon)
        xhat = (x - mean) * inv
        y = xhat * self.params["gamma"] if self.scale else xhat
        if self.center:
            y = y + self.params["beta"]
        return y.astype(x.dtype, copy=False), ((xhat, inv, w, count) if training else None)

    def backward(self, ctx, dy, grads):
        """Gradients of gamma, beta and x (through the batch statistics)."""
        xhat, inv, w, count = ctx
        axes = tuple(range(dy.ndim - 1))
        if self.center:
            add_grad(grads, (self, "beta"), dy.sum(axis=axes))
        if self.scale:
            add_grad(grads, (self, "gamma"), (dy * xhat).sum(axis=axes))
            dy = dy * self.params["gamma"]
        # every output (masked steps too) depends on the statistics of the counted values
        mean_d = dy.sum(axis=axes) / count
        mean_d_xhat = (dy * xhat).sum(axis=axes) / count
        return inv * (dy - w * (mean_d + xhat * mean_d_xhat))


def _step_weights(x, mask):
    """1 for the values the statistics count, 0 for masked steps; shaped to broadcast on x."""
    if mask is None or x.ndim != 3:
        return np.ones(x.shape[:-1] + (1,), x.dtype)
    return mask.astype(x.dtype)[..., None]


def _layer_norm(x, gamma, beta, epsilon):
    """gamma · (x - mean) / sqrt(var + epsilon) + beta over the last axis, compiled: the code
    the C runtime runs, so both give the same bits (gamma, beta None for 1 and 0)."""
    dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float64)
    rows = np.ascontiguousarray(x.reshape(-1, x.shape[-1]), dtype=dtype)
    cast = lambda v: None if v is None else np.ascontiguousarray(v, dtype=dtype)  # noqa: E731
    return _core.layer_norm(rows, cast(gamma), cast(beta), epsilon).reshape(x.shape)


def _normalize(x, epsilon):
    """(xhat, inv): x standardised over its last axis, and 1/sqrt(var + epsilon)."""
    inv = 1.0 / np.sqrt(x.var(axis=-1, keepdims=True) + epsilon)
    return (x - x.mean(axis=-1, keepdims=True)) * inv, inv


def _normalize_backward(dxhat, xhat, inv):
    """d(loss)/dx from d(loss)/d(xhat) for xhat, inv = _normalize(x)."""
    mean_d = dxhat.mean(axis=-1, keepdims=True)
    mean_d_xhat = (dxhat * xhat).mean(axis=-1, keepdims=True)
    return inv * (dxhat - mean_d - xhat * mean_d_xhat)
