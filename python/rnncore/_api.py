"""The public functional API, written once over a backend.

rnncore.ops (the fused kernels) and rnncore.reference (the NumPy oracle) differ only in how a
validated call runs forward and backward. `Functional` holds the nine public functions with
their documented signatures; a backend subclasses it and supplies `run_forward(call,
training)` and `run_backward(cache, family, dy, dh_n, dc_n)`. Each module then exposes one
instance's methods as its functions (`lstm = _BACKEND.lstm`), so a call can be followed from
`rnncore.lstm` to the backend by any tool.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from numpy.typing import ArrayLike

from . import _cells
from ._validate import CacheBase, Call, prepare

Array = np.ndarray
OptArray = Optional[ArrayLike]
Grads = dict  # name -> array or None: dx, dw_ih, dw_hh, db_ih, db_hh, dh0 (, dc0)

_LSTM = _cells.by_name("lstm")


class Functional:
    """The functional API (lstm, gru, rnn and their _forward / _backward) over one backend.

    Subclasses implement `run_forward` and `run_backward`; everything else (argument
    checking, cell selection, return shapes) is here, shared by the kernels and the reference.
    """

    def run_forward(self, call: Call, training: bool) -> tuple[Array, Array, Any, Any]:
        """(y, h_n, c_n or None, cache or None) of a validated call."""
        raise NotImplementedError

    def run_backward(
        self, cache: Any, family: str, dy: OptArray, dh_n: OptArray, dc_n: OptArray
    ) -> Grads:
        """The gradient dict of the training forward that made `cache`."""
        raise NotImplementedError

    # ---- LSTM ----
    def lstm_forward(
        self,
        x: ArrayLike,
        w_ih: ArrayLike,
        w_hh: ArrayLike,
        b_ih: OptArray = None,
        b_hh: OptArray = None,
        h0: OptArray = None,
        c0: OptArray = None,
        *,
        lengths: OptArray = None,
        reverse: bool = False,
        batch_first: bool = False,
        training: bool = True,
        recurrent_mask: OptArray = None,
    ) -> tuple[Array, Array, Array, CacheBase | None]:
        """One LSTM layer forward (gates i, f, g, o), keeping what backward needs.

        Args:
            x: Inputs, (T, B, I), or (B, T, I) with `batch_first`; float32 or float64.
            w_ih: Input weights, (4H, I).
            w_hh: Recurrent weights, (4H, H).
            b_ih: Input bias, (4H,), or None for none.
            b_hh: Recurrent bias, (4H,), or None for none.
            h0: Initial hidden state, (B, H), or None for zeros.
            c0: Initial cell state, (B, H), or None for zeros.
            lengths: Real steps per row, (B,) integers in [0, T], or None (all T). Steps
                past a row's length do no work and output zeros.
            reverse: Run each row from its last real step back to step 0.
            batch_first: x and y are (B, T, ·).
            training: Keep a cache for `lstm_backward` (False returns None instead).
            recurrent_mask: (B, H) factors multiplying the state before every recurrent
                product (variational recurrent dropout; already scaled by 1/(1-p)).

        Returns:
            (y, h_n, c_n, cache): outputs like x with H features; final states (B, H).

        Raises:
            ValueError: a shape, length or flag is wrong (the message names the argument).
            TypeError: an array is not float32/float64, or dtypes differ.
            MemoryError: the call could not fit in this machine's memory.

        Example:
            >>> y, h_n, c_n, cache = rnncore.lstm_forward(x, w_ih, w_hh, b_ih, b_hh)
            >>> grads = rnncore.lstm_backward(cache, dy)
        """
        call = prepare(
            _LSTM, x, w_ih, w_hh, b_ih, b_hh, h0, c0, lengths, reverse, batch_first, recurrent_mask
        )
        return self.run_forward(call, training)

    def lstm_backward(
        self, cache: CacheBase, dy: OptArray, dh_n: OptArray = None, dc_n: OptArray = None
    ) -> Grads:
        """Gradients of one LSTM training forward.

        Args:
            cache: What `lstm_forward(..., training=True)` returned; used once.
            dy: Gradient of the outputs (like y), or None for zeros.
            dh_n: Gradient of the final hidden state, (B, H), or None for zeros.
            dc_n: Gradient of the final cell state, (B, H), or None for zeros.

        Returns:
            A dict with dx, dw_ih, dw_hh, db_ih, db_hh (None without that bias), dh0, dc0.

        Raises:
            ValueError: the cache is None, from another cell, or already used; a shape is wrong.
            TypeError: the cache is not one of this backend's.
        """
        return self.run_backward(cache, "lstm", dy, dh_n, dc_n)

    def lstm(
        self,
        x: ArrayLike,
        w_ih: ArrayLike,
        w_hh: ArrayLike,
        b_ih: OptArray = None,
        b_hh: OptArray = None,
        h0: OptArray = None,
        c0: OptArray = None,
        *,
        lengths: OptArray = None,
        reverse: bool = False,
        batch_first: bool = False,
        recurrent_mask: OptArray = None,
    ) -> tuple[Array, Array, Array]:
        """LSTM inference: `lstm_forward` without a cache. Returns (y, h_n, c_n).

        Example:
            >>> y, h_n, c_n = rnncore.lstm(x, w_ih, w_hh, b_ih, b_hh, lengths=lengths)
        """
        y, h_n, c_n, _ = self.lstm_forward(
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

    # ---- GRU ----
    def gru_forward(
        self,
        x: ArrayLike,
        w_ih: ArrayLike,
        w_hh: ArrayLike,
        b_ih: OptArray = None,
        b_hh: OptArray = None,
        h0: OptArray = None,
        *,
        reset_after: bool = True,
        lengths: OptArray = None,
        reverse: bool = False,
        batch_first: bool = False,
        training: bool = True,
        recurrent_mask: OptArray = None,
    ) -> tuple[Array, Array, CacheBase | None]:
        """One GRU layer forward (gates r, z, n), keeping what backward needs.

        Weights are (3H, I) and (3H, H), biases (3H,). `reset_after=True` (PyTorch's and
        Keras's default) applies the reset gate after the recurrent product; False applies
        it to h before (Keras's option, ONNX's default). The other arguments are as in
        `lstm_forward`, without c0.

        Returns:
            (y, h_n, cache); cache is None when training=False.

        Raises:
            ValueError, TypeError, MemoryError: as `lstm_forward`.
        """
        cell = _cells.kind_of("gru", reset_after=reset_after)
        call = prepare(
            cell, x, w_ih, w_hh, b_ih, b_hh, h0, None, lengths, reverse, batch_first, recurrent_mask
        )
        y, h_n, _, cache = self.run_forward(call, training)
        return y, h_n, cache

    def gru_backward(self, cache: CacheBase, dy: OptArray, dh_n: OptArray = None) -> Grads:
        """Gradients of one GRU training forward: dx, dw_ih, dw_hh, db_ih, db_hh, dh0.

        Args and Raises as `lstm_backward`, without dc_n.
        """
        return self.run_backward(cache, "gru", dy, dh_n, None)

    def gru(
        self,
        x: ArrayLike,
        w_ih: ArrayLike,
        w_hh: ArrayLike,
        b_ih: OptArray = None,
        b_hh: OptArray = None,
        h0: OptArray = None,
        *,
        reset_after: bool = True,
        lengths: OptArray = None,
        reverse: bool = False,
        batch_first: bool = False,
        recurrent_mask: OptArray = None,
    ) -> tuple[Array, Array]:
        """GRU inference: `gru_forward` without a cache. Returns (y, h_n).

        Example:
            >>> y, h_n = rnncore.gru(x, w_ih, w_hh, b_ih, b_hh, batch_first=True)
        """
        y, h_n, _ = self.gru_forward(
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

    # ---- SimpleRNN ----
    def rnn_forward(
        self,
        x: ArrayLike,
        w_ih: ArrayLike,
        w_hh: ArrayLike,
        b_ih: OptArray = None,
        b_hh: OptArray = None,
        h0: OptArray = None,
        *,
        nonlinearity: str = "tanh",
        lengths: OptArray = None,
        reverse: bool = False,
        batch_first: bool = False,
        training: bool = True,
        recurrent_mask: OptArray = None,
    ) -> tuple[Array, Array, CacheBase | None]:
        """One SimpleRNN layer forward: h' = nonlinearity(x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh).

        Weights are (H, I) and (H, H), biases (H,); `nonlinearity` is "tanh" or "relu". The
        other arguments are as in `lstm_forward`, without c0.

        Returns:
            (y, h_n, cache); cache is None when training=False.

        Raises:
            ValueError, TypeError, MemoryError: as `lstm_forward`.
        """
        cell = _cells.kind_of("rnn", nonlinearity=nonlinearity)
        call = prepare(
            cell, x, w_ih, w_hh, b_ih, b_hh, h0, None, lengths, reverse, batch_first, recurrent_mask
        )
        y, h_n, _, cache = self.run_forward(call, training)
        return y, h_n, cache

    def rnn_backward(self, cache: CacheBase, dy: OptArray, dh_n: OptArray = None) -> Grads:
        """Gradients of one SimpleRNN training forward: dx, dw_ih, dw_hh, db_ih, db_hh, dh0.

        Args and Raises as `lstm_backward`, without dc_n.
        """
        return self.run_backward(cache, "rnn", dy, dh_n, None)

    def rnn(
        self,
        x: ArrayLike,
        w_ih: ArrayLike,
        w_hh: ArrayLike,
        b_ih: OptArray = None,
        b_hh: OptArray = None,
        h0: OptArray = None,
        *,
        nonlinearity: str = "tanh",
        lengths: OptArray = None,
        reverse: bool = False,
        batch_first: bool = False,
        recurrent_mask: OptArray = None,
    ) -> tuple[Array, Array]:
        """SimpleRNN inference: `rnn_forward` without a cache. Returns (y, h_n).

        Example:
            >>> y, h_n = rnncore.rnn(x, w_ih, w_hh, nonlinearity="relu")
        """
        y, h_n, _ = self.rnn_forward(
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
