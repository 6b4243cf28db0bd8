"""The functional API on the fused kernels (rnncore._core).

Shapes: x is [T, B, I] (or [B, T, I] with batch_first), weights use PyTorch's layout
(w_ih [G*H, I], w_hh [G*H, H], biases [G*H]; LSTM gates i,f,g,o; GRU r,z,n).
"""

from __future__ import annotations

import numpy as np

from . import _core
from ._validate import (
    CELL_CODES,
    CacheBase,
    Call,
    check_cache,
    flag,
    gru_kind,
    prepare,
    prepare_grads,
    rnn_kind,
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
    )
    cache.workspace = None  # consumed: backward overwrote it with gate gradients
    grads = {"dx": dx, "dw_ih": dw_ih, "dw_hh": dw_hh, "db_ih": db_ih, "db_hh": db_hh, "dh0": dh0}
    if family == "lstm":
        grads["dc0"] = dc0
    return grads


def lstm_forward(
    x,
    w_ih,
    w_hh,
    b_ih=None,
    b_hh=None,
    h0=None,
    c0=None,
    *,
    lengths=None,
    reverse=False,
    batch_first=False,
    training=True,
):
    """LSTM layer forward. Returns (y, h_n, c_n, cache); cache is None when training=False."""
    call = prepare("lstm", x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, reverse, batch_first)
    return _forward(call, training)


def lstm_backward(cache, dy, dh_n=None, dc_n=None) -> dict:
    """Gradients dx, dw_ih, dw_hh, db_ih, db_hh, dh0, dc0 (bias grads None without a bias)."""
    return _backward(cache, "lstm", dy, dh_n, dc_n)


def lstm(
    x,
    w_ih,
    w_hh,
    b_ih=None,
    b_hh=None,
    h0=None,
    c0=None,
    *,
    lengths=None,
    reverse=False,
    batch_first=False,
):
    """LSTM inference. Returns (y, h_n, c_n)."""
    y, h_n, c_n, _ = lstm_forward(
        x,
        w_ih,
        w_hh,
        b_ih,
        b_hh,
        h0,
        c0,
        lengths=lengths,
        reverse=reverse,
        batch_first=batch_first,
        training=False,
    )
    return y, h_n, c_n


def gru_forward(
    x,
    w_ih,
    w_hh,
    b_ih=None,
    b_hh=None,
    h0=None,
    *,
    reset_after=True,
    lengths=None,
    reverse=False,
    batch_first=False,
    training=True,
):
    """GRU layer forward. Returns (y, h_n, cache); cache is None when training=False."""
    call = prepare(
        gru_kind(reset_after), x, w_ih, w_hh, b_ih, b_hh, h0, None, lengths, reverse, batch_first
    )
    y, h_n, _, cache = _forward(call, training)
    return y, h_n, cache


def gru_backward(cache, dy, dh_n=None) -> dict:
    """Gradients dx, dw_ih, dw_hh, db_ih, db_hh, dh0."""
    return _backward(cache, "gru", dy, dh_n, None)


def gru(
    x,
    w_ih,
    w_hh,
    b_ih=None,
    b_hh=None,
    h0=None,
    *,
    reset_after=True,
    lengths=None,
    reverse=False,
    batch_first=False,
):
    """GRU inference. Returns (y, h_n)."""
    y, h_n, _ = gru_forward(
        x,
        w_ih,
        w_hh,
        b_ih,
        b_hh,
        h0,
        reset_after=reset_after,
        lengths=lengths,
        reverse=reverse,
        batch_first=batch_first,
        training=False,
    )
    return y, h_n


def rnn_forward(
    x,
    w_ih,
    w_hh,
    b_ih=None,
    b_hh=None,
    h0=None,
    *,
    nonlinearity="tanh",
    lengths=None,
    reverse=False,
    batch_first=False,
    training=True,
):
    """SimpleRNN layer forward. Returns (y, h_n, cache); cache is None when training=False."""
    call = prepare(
        rnn_kind(nonlinearity), x, w_ih, w_hh, b_ih, b_hh, h0, None, lengths, reverse, batch_first
    )
    y, h_n, _, cache = _forward(call, training)
    return y, h_n, cache


def rnn_backward(cache, dy, dh_n=None) -> dict:
    """Gradients dx, dw_ih, dw_hh, db_ih, db_hh, dh0."""
    return _backward(cache, "rnn", dy, dh_n, None)


def rnn(
    x,
    w_ih,
    w_hh,
    b_ih=None,
    b_hh=None,
    h0=None,
    *,
    nonlinearity="tanh",
    lengths=None,
    reverse=False,
    batch_first=False,
):
    """SimpleRNN inference. Returns (y, h_n)."""
    y, h_n, _ = rnn_forward(
        x,
        w_ih,
        w_hh,
        b_ih,
        b_hh,
        h0,
        nonlinearity=nonlinearity,
        lengths=lengths,
        reverse=reverse,
        batch_first=batch_first,
        training=False,
    )
    return y, h_n
