"""The functional API on the fused kernels (rnncore._core).

Shapes: x is [T, B, I] (or [B, T, I] with batch_first), weights use PyTorch's layout
(w_ih [G*H, I], w_hh [G*H, H], biases [G*H]; LSTM gates i,f,g,o; GRU r,z,n).
"""

from __future__ import annotations

import numpy as np

from . import _core
from ._api import functions
from ._validate import (
    CELL_CODES,
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


def _forward(call: Call, training):
    training = flag("training", training)
    y, h_n, c_n, ws = _core.forward(
        CELL_CODES[call.kind],
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
    return y, h_n, c_n, (Cache(call, ws) if training else None)


def _backward(cache, family, dy, dh_n, dc_n) -> dict:
    check_cache(cache, Cache, family)
    dy, dh_n, dc_n = prepare_grads(cache.call, dy, dh_n, dc_n)
    call = cache.claim(family)
    dx, dw_ih, dw_hh, db_ih, db_hh, dh0, dc0 = _core.backward(
        CELL_CODES[call.kind],
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
    grads = {"dx": dx, "dw_ih": dw_ih, "dw_hh": dw_hh, "db_ih": db_ih, "db_hh": db_hh, "dh0": dh0}
    if family == "lstm":
        grads["dc0"] = dc0
    return grads


(lstm, lstm_forward, lstm_backward, gru, gru_forward, gru_backward, rnn, rnn_forward,
 rnn_backward) = functions(_forward, _backward)  # fmt: skip
