"""LayerNormalization, and the normalisation arithmetic LayerNormSimpleRNN shares."""

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
