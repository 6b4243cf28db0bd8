"""Keras's attention layers over sequences: Attention (Luong, dot-product scores) and
AdditiveAttention (Bahdanau, tanh scores). Inputs [query (B, Tq, D), value (B, Tv, D)] or
[query, value, key]; masked value steps get no weight, masked query steps output zeros."""

from __future__ import annotations

import numpy as np

from .. import initializers
from .base import add_grad
from .merging import _Merge

_PADDING = 1e9  # Keras subtracts this from the scores of masked value steps


class Attention(_Merge):
    """Dot-product attention: softmax(query · keyᵀ [· scale]) · value, as Keras's Attention.

    Args:
        use_scale: Learn a scalar that multiplies the scores.
        score_mode: "dot" only.
        dropout: 0 only (attention dropout is not supported yet).
        **kwargs: Layer arguments (name, ...).
    """

    min_inputs, max_inputs = 2, 3
    config_keys: tuple[str, ...] = ("use_scale", "score_mode", "dropout")

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self._init_rng(seed)  # AdditiveAttention's scale is drawn from it
        if score_mode != "dot":
            raise NotImplementedError(f"score_mode: only 'dot' is supported, got {score_mode!r}")
        if dropout:
            raise NotImplementedError("dropout: attention dropout is not supported yet")
        self.use_scale, self.score_mode, self.dropout = bool(use_scale), score_mode, 0.0

    def _check_shapes(self, shapes):
        if any(len(s) != 3 for s in shapes):
            raise ValueError(f"{self.name}: expects (batch, steps, features) inputs")

    def ensure_built(self, input_shape):
        """Checks the inputs and makes the scale (when use_scale)."""
        super().ensure_built(input_shape)
        if self.use_scale and "scale" not in self.params:
            self._make_scale(input_shape[0][-1])

    def _make_scale(self, dim):
        self._make("scale", (), initializers.ones, None)

    def output_shape(self, input_shape):
        """(batch, query steps, value features)."""
        return (input_shape[0][0], input_shape[0][1], input_shape[1][2])

    def compute_mask(self, x, mask):
        """The query's mask."""
        return None if mask is None else mask[0]

    def _scores(self, q, k):
        s = q @ k.transpose(0, 2, 1)
        return s * self.params["scale"] if self.use_scale else s

    def forward(self, x, mask, training):
        """The attended values (zeros at masked query steps)."""
        q, v = x[0], x[1]
        k = x[2] if len(x) == 3 else v
        masks = list(mask or []) + [None] * 3
        q_mask, v_mask = masks[0], masks[1]
        scores = self._scores(q, k)
        if v_mask is not None:
            scores = scores - _PADDING * (~v_mask.astype(bool))[:, None, :]
        e = np.exp(scores - scores.max(axis=-1, keepdims=True))
        weights = e / e.sum(axis=-1, keepdims=True)  # (B, Tq, Tv)
        y = weights @ v
        keep = None if q_mask is None else q_mask.astype(y.dtype)[..., None]
        if keep is not None:
            y = y * keep
        return y, ((q, v, k, len(x) == 3, weights, keep) if training else None)

    def backward(self, ctx, dy, grads):
        """Gradients of query, value (and key), and of the scale."""
        q, v, k, has_key, weights, keep = ctx
        if keep is not None:
            dy = dy * keep
        dweights = dy @ v.transpose(0, 2, 1)
        dv = weights.transpose(0, 2, 1) @ dy
        dscores = weights * (dweights - (dweights * weights).sum(axis=-1, keepdims=True))
        dq, dk = self._scores_backward(q, k, dscores, grads)
        return [dq, dv, dk] if has_key else [dq, dv + dk]

    def _scores_backward(self, q, k, dscores, grads):
        if self.use_scale:
            raw = q @ k.transpose(0, 2, 1)
            add_grad(grads, (self, "scale"), np.asarray((dscores * raw).sum()))
            dscores = dscores * self.params["scale"]
        return dscores @ k, dscores.transpose(0, 2, 1) @ q


class AdditiveAttention(Attention):
    """Additive (Bahdanau) attention: scores Σ_d scale_d · tanh(query_d + key_d), as Keras's
    AdditiveAttention.

    Args:
        use_scale: Learn the per-feature scale (else it is 1).
        dropout: 0 only.
        **kwargs: Layer arguments (name, ...).
    """

    config_keys = ("use_scale", "dropout")

    def __init__(self, use_scale=True, dropout=0.0, **kwargs):
        super().__init__(use_scale=use_scale, dropout=dropout, **kwargs)

    def _make_scale(self, dim):
        self._make("scale", (dim,), initializers.glorot_uniform, self._rng)

    def _scale(self, dim, dtype):
        return self.params["scale"] if self.use_scale else np.ones(dim, dtype)

    def _scores(self, q, k):
        u = np.tanh(q[:, :, None, :] + k[:, None, :, :])  # (B, Tq, Tv, D)
        return (u * self._scale(q.shape[-1], q.dtype)).sum(axis=-1)

    def _scores_backward(self, q, k, dscores, grads):
        u = np.tanh(q[:, :, None, :] + k[:, None, :, :])
        scale = self._scale(q.shape[-1], q.dtype)
        if self.use_scale:
            add_grad(grads, (self, "scale"), (dscores[..., None] * u).sum(axis=(0, 1, 2)))
        du = dscores[..., None] * scale * (1 - u * u)
        return du.sum(axis=2), du.sum(axis=1)
