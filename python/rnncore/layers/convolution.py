"""Conv1D over the time axis (Keras's padding modes, dilation and strides)."""

from __future__ import annotations

import numpy as np

from .._validate import positive_int
from .base import _KernelBiasLayer, add_grad, dense


class Conv1D(_KernelBiasLayer):
    """1-D convolution over time: (batch, steps, channels) -> (batch, new_steps, filters)."""

    min_ndim = 3
    config_keys = (
        "filters",
        "kernel_size",
        "strides",
        "padding",
        "dilation_rate",
        "activation",
        "use_bias",
        "kernel_initializer",
        "bias_initializer",
    )

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        dilation_rate=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.filters = positive_int("filters", filters)
        self.kernel_size = positive_int("kernel_size", _single(kernel_size))
        self.strides = positive_int("strides", _single(strides))
        self.dilation_rate = positive_int("dilation_rate", _single(dilation_rate))
        if padding not in ("valid", "causal", "same"):
            raise ValueError(f"padding: expected 'valid', 'causal' or 'same', got {padding!r}")
        if self.strides > 1 and self.dilation_rate > 1:
            raise ValueError(
                "Conv1D: strides > 1 with dilation_rate > 1 is not supported (as Keras)"
            )
        self.padding = padding
        self._init_kernel_bias(activation, use_bias, kernel_initializer, bias_initializer, seed)

    def build(self, input_shape):
        """Creates kernel (kernel_size, channels, filters) and bias (filters,)."""
        self._build_kernel_bias((self.kernel_size, input_shape[-1], self.filters), self.filters)

    def _geometry(self, T):
        """(left pad, right pad, output steps) for an input of T steps."""
        span = (self.kernel_size - 1) * self.dilation_rate + 1
        s = self.strides
        if self.padding == "valid":
            return 0, 0, max(0, (T - span) // s + 1)
        if self.padding == "causal":
            return span - 1, 0, max(0, (T - 1) // s + 1)
        out = -(-T // s)
        total = max(0, (out - 1) * s + span - T)
        return total // 2, total - total // 2, out

    def output_shape(self, input_shape):
        """(batch, output steps, filters) for the padding, strides and dilation."""
        T = input_shape[1]
        return (input_shape[0], None if T is None else self._geometry(T)[2], self.filters)

    def _taps(self, out):  # slice of the padded input that each kernel tap reads
        return [
            slice(
                k * self.dilation_rate,
                k * self.dilation_rate + (out - 1) * self.strides + 1,
                self.strides,
            )
            for k in range(self.kernel_size)
        ]

    def forward(self, x, mask, training):
        """The convolution as one GEMM over gathered taps, then the activation."""
        B, T, C = x.shape
        left, right, out = self._geometry(T)
        if out == 0:
            span = (self.kernel_size - 1) * self.dilation_rate + 1
            raise ValueError(f"{self.name}: an input of {T} steps is shorter than the kernel's "
                             f"span of {span} steps (padding={self.padding!r})")  # fmt: skip
        xp = np.pad(x, ((0, 0), (left, right), (0, 0)))  # [B, left+T+right, C]
        cols = np.stack([xp[:, sl] for sl in self._taps(out)], axis=2)  # [B, out, k, C]
        k = self.kernel_size
        kernel = self.params["kernel"].reshape(k * C, self.filters)
        a = dense(
            cols.reshape(B, out, k * C), kernel, self.params["bias"] if self.use_bias else None
        )
        y = self._act(a, in_place=not training)  # training keeps a for backward
        return y, ((cols, a, y, xp.shape, left, T) if training else None)

    def backward(self, ctx, dy, grads):
        """Gradients of kernel, bias and the input (taps scattered back)."""
        cols, a, y, padded_shape, left, T = ctx
        B, out, k, C = cols.shape
        da = self._act.backward(a, y, dy).reshape(B * out, self.filters)
        w = self.params["kernel"].reshape(k * C, self.filters)
        add_grad(grads, (self, "kernel"), (cols.reshape(B * out, k * C).T @ da).reshape(k, C, -1))
        if self.use_bias:
            add_grad(grads, (self, "bias"), da.sum(axis=0))
        dcols = (da @ w.T).reshape(B, out, k, C)
        dxp = np.zeros(padded_shape, dy.dtype)
        for tap, sl in enumerate(self._taps(out)):
            dxp[:, sl] += dcols[:, :, tap]
        return dxp[:, left : left + T]


def _single(v):
    if isinstance(v, (tuple, list)) and len(v) == 1:
        return v[0]
    return v
