"""The functional API on the fused kernels (rnncore._core).

The NumPy-valued part of `keras.ops` (`ops.mean`, `ops.convert_to_numpy`, ...) is found here
too (`_keras_ops`), so Keras lessons' metric and loss functions run once the import changes.

Shapes: x is [T, B, I] (or [B, T, I] with batch_first), weights use PyTorch's layout
(w_ih [G*H, I], w_hh [G*H, H], biases [G*H]; LSTM gates i,f,g,o; GRU r,z,n).
"""

from __future__ import annotations

import numpy as np

from . import _core
from ._api import Functional
from ._validate import (
    CacheBase,
    Call,
    check_cache,
    flag,
    prepare_grads,
)

__all__ = [
    "Cache",
    "gru",
    "gru_backward",
    "gru_forward",
    "lstm",
    "lstm_backward",
    "lstm_forward",
    "rnn",
    "rnn_backward",
    "rnn_forward",
]


class Cache(CacheBase):
    """The workspace a training forward keeps (post-activation gates, states) for one backward.

    The inputs and weights are referenced, not copied: do not modify them in place before
    calling backward.
    """

    def __init__(self, call: Call, workspace: np.ndarray):
        super().__init__(call)
        self.workspace = workspace


class _Kernels(Functional):
    """The functional API on the compiled kernels."""

    def run_forward(self, call: Call, training: bool):
        """Runs `rnncore._core.forward`; the cache keeps its workspace for backward."""
        training = flag("training", training)
        y, h_n, c_n, ws = _core.forward(
            call.cell.code_int,
            call.x,
            call.w_ih,
            call.w_hh,
            call.b_ih,
            call.b_hh,
            call.h0,
            call.c0,
            call.lengths,
            call.reverse,
            call.batch_first,
            training,
            call.recurrent_mask,
        )
        return y, h_n, c_n, (Cache(call, ws) if ws is not None else None)

    def run_backward(self, cache, family, dy, dh_n, dc_n) -> dict:
        """Runs `rnncore._core.backward` on the cache's workspace (which it consumes)."""
        check_cache(cache, Cache, family)
        dy, dh_n, dc_n = prepare_grads(cache.call, dy, dh_n, dc_n)
        call = cache.claim(family)
        dx, dw_ih, dw_hh, db_ih, db_hh, dh0, dc0 = _core.backward(
            call.cell.code_int,
            call.x,
            call.w_ih,
            call.w_hh,
            call.b_ih is not None,
            call.b_hh is not None,
            call.lengths,
            call.reverse,
            call.batch_first,
            cache.workspace,
            dy,
            dh_n,
            dc_n,
            call.recurrent_mask,
        )
        cache.workspace = None  # consumed: backward overwrote it with gate gradients
        grads = {"dx": dx, "dw_ih": dw_ih, "dw_hh": dw_hh, "db_ih": db_ih, "db_hh": db_hh,
                 "dh0": dh0}  # fmt: skip
        if call.cell.has_cell_state:
            grads["dc0"] = dc0
        return grads


_KERNELS = _Kernels()
lstm, lstm_forward, lstm_backward = _KERNELS.lstm, _KERNELS.lstm_forward, _KERNELS.lstm_backward
gru, gru_forward, gru_backward = _KERNELS.gru, _KERNELS.gru_forward, _KERNELS.gru_backward
rnn, rnn_forward, rnn_backward = _KERNELS.rnn, _KERNELS.rnn_forward, _KERNELS.rnn_backward


def __getattr__(name):
    """keras.ops names (on NumPy) beside the functional API."""
    from ._keras_ops import OPS

    if name in OPS:
        return OPS[name]
    raise AttributeError(f"module 'rnncore.ops' has no attribute {name!r}")


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
