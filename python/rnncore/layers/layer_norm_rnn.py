"""LayerNormSimpleRNN: a SimpleRNN with layer normalisation inside the recurrence, in NumPy."""

from __future__ import annotations

import numpy as np

from .. import activations, initializers
from .._validate import positive_int
from .base import Layer, add_grad
from .masks import _check_mask
from .normalization import _epsilon, _normalize, _normalize_backward


class LayerNormSimpleRNN(Layer):
    """SimpleRNN with layer normalisation inside the recurrence (the forecasting chapter's
    LNSimpleRNNCell): h_t = act(gamma · LN(x_t·kernel + h_{t-1}·recurrent_kernel + bias) + beta).

    The normalisation sits between the matmul and the activation, which the fused kernels do
    not have, so the steps run in NumPy (one batched GEMM for every input projection, then a
    (B, H) x (H, H) product per step). Masked steps keep the previous state, as in Keras.
    """

    min_ndim = 3
    config_keys = ("units", "activation", "epsilon", "return_sequences", "go_backwards",
                   "kernel_initializer", "recurrent_initializer", "seed")  # fmt: skip

    def __init__(self, units, activation="tanh", epsilon=1e-3, return_sequences=False,
                 go_backwards=False, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", seed=None, **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        self.units = positive_int("units", units)
        self.activation = activation
        self._act = activations.get(activation)
        if activation == "softmax":
            raise ValueError(f"{self.name}: activation 'softmax' is not element-wise")
        self.epsilon = _epsilon(epsilon)
        self.return_sequences, self.go_backwards = bool(return_sequences), bool(go_backwards)
        self.kernel_initializer, self.recurrent_initializer = (
            kernel_initializer,
            recurrent_initializer,
        )
        self.seed = seed
        self._init_rng(seed)

    def build(self, input_shape):
        """Creates kernel, recurrent_kernel, bias, gamma and beta."""
        I, H = input_shape[-1], self.units
        if I is None:
            raise ValueError(f"{self.name}: the feature axis of the input must be known")
        get = initializers.get
        self._make("kernel", (I, H), get(self.kernel_initializer, "kernel_initializer"), self._rng)
        self._make("recurrent_kernel", (H, H),
                   get(self.recurrent_initializer, "recurrent_initializer"), self._rng)  # fmt: skip
        self._make("bias", (H,), initializers.zeros, None)
        self._make("gamma", (H,), initializers.ones, None)
        self._make("beta", (H,), initializers.zeros, None)

    def output_shape(self, input_shape):
        """(batch, units), or (batch, steps, units) with return_sequences."""
        B, T = input_shape[0], input_shape[1]
        return (B, T, self.units) if self.return_sequences else (B, self.units)

    def compute_mask(self, x, mask):
        """The input mask when returning sequences, else None."""
        return mask if self.return_sequences else None

    def forward(self, x, mask, training):
        """The recurrence in NumPy: one GEMM for every input projection, then a
        step at a time.
        """
        p, (B, T, _) = self.params, x.shape
        keep = None if mask is None else _check_mask(self.name, mask, B, T)
        if self.go_backwards:
            x, keep = x[:, ::-1], None if keep is None else keep[:, ::-1]
        xw = x @ p["kernel"] + p["bias"]  # [B, T, H] every step's input projection at once
        h = np.zeros((B, self.units), x.dtype)
        seq = np.empty_like(xw)  # [B, T, H] state after each step, in processing order
        steps = []  # per step: (h_prev, xhat, inv, z, y) for backward
        for t in range(T):
            xhat, inv = _normalize(xw[:, t] + h @ p["recurrent_kernel"], self.epsilon)
            z = xhat * p["gamma"] + p["beta"]
            y = self._act(z)
            if training:
                steps.append((h, xhat, inv, z, y))
            h = y if keep is None else np.where(keep[:, t, None], y, h)
            seq[:, t] = h
        out = seq if self.return_sequences else seq[:, -1]
        return out, ((x, keep, steps) if training else None)

    def backward(self, ctx, dy, grads):
        """Backpropagation through time for every weight and the input."""
        x, keep, steps = ctx
        p, (B, T, _) = self.params, x.shape
        dseq = dy if self.return_sequences else np.zeros((B, T, self.units), dy.dtype)
        if not self.return_sequences:
            dseq[:, -1] = dy
        dxw = np.empty((B, T, self.units), dy.dtype)  # [B, T, H] d(input projection)
        d_rec, d_gamma, d_beta = (
            np.zeros_like(p[k]) for k in ("recurrent_kernel", "gamma", "beta")
        )
        dh = np.zeros((B, self.units), dy.dtype)  # d(loss)/d(state after step t)
        for t in reversed(range(T)):
            h_prev, xhat, inv, z, y = steps[t]
            dh = dh + dseq[:, t]
            d_step, dh_pass = (
                (dh, 0.0) if keep is None else (dh * keep[:, t, None], dh * ~keep[:, t, None])
            )
            dz = self._act.backward(z, y, d_step)
            d_gamma += (dz * xhat).sum(axis=0)
            d_beta += dz.sum(axis=0)
            dn = dz * p["gamma"]
            da = _normalize_backward(dn, xhat, inv)
            d_rec += h_prev.T @ da
            dxw[:, t] = da
            dh = da @ p["recurrent_kernel"].T + dh_pass
        flat = dxw.reshape(B * T, -1)
        add_grad(grads, (self, "kernel"), x.reshape(B * T, -1).T @ flat)
        add_grad(grads, (self, "bias"), flat.sum(axis=0))
        for name, g in (("recurrent_kernel", d_rec), ("gamma", d_gamma), ("beta", d_beta)):
            add_grad(grads, (self, name), g)
        dx = dxw @ p["kernel"].T
        return dx[:, ::-1] if self.go_backwards else dx
