"""Time masks for the recurrent layers: checking a (batch, time) mask, and mapping it onto
the kernels' right-padded lengths (Keras skips masked steps wherever they are)."""

from __future__ import annotations

import numpy as np


class _MaskPlan:
    """How a (batch, time) mask maps onto the kernels' right-padded `lengths`.

    Keras skips masked steps (the state carries over) wherever they are, so each row's real
    steps are gathered to the front in processing order, run with lengths, and the outputs
    scattered back: a masked position shows the last real output before it (or zeros).
    """

    def __init__(self, mask, go_backwards, zero_output):
        ms = mask[:, ::-1] if go_backwards else mask  # [B, T] in processing order
        B, T = ms.shape
        self.lengths = ms.sum(axis=1).astype(np.int64)  # [B]
        self.order = np.argsort(~ms, axis=1, kind="stable")  # [B, T] real steps first
        shown = np.cumsum(ms, axis=1) - 1  # [B, T] compact step shown at each position
        self.valid = (shown >= 0) & (ms if zero_output else True)  # [B, T]
        self.flat = (np.arange(B)[:, None] * T + np.maximum(shown, 0)).ravel()  # [B*T]
        self.go_backwards = go_backwards

    def gather_inputs(self, x):  # x [B, T, I] -> compact [B, T, I]
        xs = x[:, ::-1] if self.go_backwards else x
        return np.take_along_axis(xs, self.order[:, :, None], axis=1)

    def scatter_outputs(self, yc):  # compact [B, T, H] -> processing order [B, T, H]
        B, T, H = yc.shape
        return yc.reshape(B * T, H)[self.flat].reshape(B, T, H) * self.valid[:, :, None]

    def outputs_grad(self, dseq):  # d(processing-order outputs) -> d(compact outputs)
        B, T, H = dseq.shape
        dyc = np.zeros((B * T, H), dseq.dtype)
        keep = self.valid.ravel()
        np.add.at(dyc, self.flat[keep], dseq.reshape(B * T, H)[keep])
        return dyc.reshape(B, T, H)

    def inputs_grad(self, dxc):  # d(compact inputs) -> d(x)
        dxs = np.zeros_like(dxc)
        np.put_along_axis(dxs, self.order[:, :, None], dxc, axis=1)
        return dxs[:, ::-1] if self.go_backwards else dxs


def _require_steps(name, T):
    if T == 0:
        raise ValueError(f"{name}: expected at least one time step, got an input with 0")


def _check_mask(name, mask, B, T):
    mask = np.asarray(mask)
    if mask.shape != (B, T):
        raise ValueError(
            f"{name}: mask expected shape (batch, timesteps) = {(B, T)}, got {mask.shape}"
        )
    return mask.astype(bool, copy=False)
