"""The public functional API, built once around a backend.

rnncore.ops (the fused kernels) and rnncore.reference (the NumPy oracle) differ only in how a
validated call runs forward and backward; `functions` wraps a backend's `forward(call,
training)` and `backward(cache, family, dy, dh_n, dc_n)` into the nine public functions with
their documented signatures.
"""

from __future__ import annotations

from ._validate import gru_kind, prepare, rnn_kind


def functions(_forward, _backward):
    """(lstm, lstm_forward, lstm_backward, gru, gru_forward, gru_backward, rnn, rnn_forward,
    rnn_backward) running on the given backend."""

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
        recurrent_mask=None,
    ):
        """LSTM layer forward. Returns (y, h_n, c_n, cache); cache is None when training=False.

        recurrent_mask (B, H), optional: multiplies the state entering every recurrent matrix
        product (variational recurrent dropout; pass the mask already scaled by 1/(1-p)).
        """
        call = prepare(
            "lstm", x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, reverse, batch_first, recurrent_mask
        )
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
        recurrent_mask=None,
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
            recurrent_mask=recurrent_mask,
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
        recurrent_mask=None,
    ):
        """GRU layer forward. Returns (y, h_n, cache); cache is None when training=False."""
        call = prepare(
            gru_kind(reset_after),
            x,
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            h0,
            None,
            lengths,
            reverse,
            batch_first,
            recurrent_mask,
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
        recurrent_mask=None,
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
            recurrent_mask=recurrent_mask,
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
        recurrent_mask=None,
    ):
        """SimpleRNN layer forward. Returns (y, h_n, cache); cache is None when training=False."""
        call = prepare(
            rnn_kind(nonlinearity),
            x,
            w_ih,
            w_hh,
            b_ih,
            b_hh,
            h0,
            None,
            lengths,
            reverse,
            batch_first,
            recurrent_mask,
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
        recurrent_mask=None,
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
            recurrent_mask=recurrent_mask,
        )
        return y, h_n

    return (lstm, lstm_forward, lstm_backward, gru, gru_forward, gru_backward, rnn, rnn_forward,
            rnn_backward)  # fmt: skip
