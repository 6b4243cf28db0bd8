"""Streaming inference: one time step per call, the state kept in C++ between calls."""

from __future__ import annotations

import numpy as np

from . import _cells, _core
from ._validate import check_memory, positive_int

__all__ = ["Stream"]


def _weight(name, w, dtype, shape):
    if w is None:
        return None
    if not isinstance(w, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(w).__name__}")
    if w.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {w.shape}")
    return np.ascontiguousarray(w, dtype=dtype)


class Stream:
    """One recurrent layer run a step at a time (PyTorch weight layout and gate order):

        s = rnncore.Stream("lstm", w_ih, w_hh, b_ih, b_hh, batch_size=1)
        for x_t in frames:            # x_t: (batch_size, I), or (I,) when batch_size is 1
            h_t = s.step(x_t)

    The weights are copied (and pre-transposed) once; a step allocates nothing in C++ and
    writes into `out=` when given. `.h` / `.c` are copies of the state; `.reset()` zeroes it
    or sets it. One Stream must not be stepped from two threads at once (it refuses with
    RuntimeError); give each thread its own.
    """

    def __init__(self, cell, w_ih, w_hh, b_ih=None, b_hh=None, *, batch_size=1,
                 reset_after=True, nonlinearity="tanh"):  # fmt: skip
        kind = _cells.kind_of(cell, reset_after=reset_after, nonlinearity=nonlinearity)
        for name, w in (("w_ih", w_ih), ("w_hh", w_hh)):
            if not isinstance(w, np.ndarray):
                raise TypeError(f"{name}: expected a numpy array, got {type(w).__name__}")
            if w.ndim != 2:
                raise ValueError(f"{name}: expected 2 dimensions, got shape {w.shape}")
        if w_ih.dtype not in (np.float32, np.float64):
            raise TypeError(f"w_ih: expected dtype float32 or float64, got {w_ih.dtype}")
        G = kind.gates
        H = w_hh.shape[1]
        if w_hh.shape[0] != G * H:  # H comes from w_hh: blame it, as the functional API does
            raise ValueError(
                f"w_hh: expected shape (G*H, H) with G={G} gates for {cell}, got {w_hh.shape}"
            )
        if H == 0:
            raise ValueError(f"w_hh: expected at least one hidden unit, got shape {w_hh.shape}")
        self.cell, self.dtype = cell, w_ih.dtype
        self.batch_size = positive_int("batch_size", batch_size)
        self.input_size, self.hidden_size = w_ih.shape[1], H
        state_elems = self.batch_size * (2 * H + G * H + self.input_size)  # h, c, gates, x
        check_memory("Stream", self.dtype.itemsize * state_elems, f"batch_size={batch_size}")
        args = [
            _weight("w_ih", w_ih, self.dtype, (G * H, self.input_size)),
            _weight("w_hh", w_hh, self.dtype, (G * H, H)),
            _weight("b_ih", b_ih, self.dtype, (G * H,)),
            _weight("b_hh", b_hh, self.dtype, (G * H,)),
        ]
        core = _core.Stream64 if self.dtype == np.float64 else _core.Stream32
        self._core = core(kind.code, *args, self.batch_size)
        self._h = self._core.state(0)  # [B, H] live view of the C++ state
        self._c = self._core.state(1)  # [B, H] or None

    def step(self, x_t, out=None):
        """h_t for input x_t; the state advances by one step."""
        x = x_t
        if not (isinstance(x, np.ndarray) and x.dtype == self.dtype and x.flags.c_contiguous):
            x = np.asarray(x)
            if x.dtype.kind not in "fiub":  # complex would silently lose its imaginary part
                raise TypeError(f"x_t: expected real numbers, got dtype {x.dtype}")
            x = np.ascontiguousarray(x, dtype=self.dtype)
        single = x.ndim == 1 and self.batch_size == 1
        if single:
            x = x.reshape(1, -1)
        if x.shape != (self.batch_size, self.input_size):
            raise ValueError(f"x_t: expected shape {(self.batch_size, self.input_size)}, "
                             f"got {np.shape(x_t)}")  # fmt: skip
        h = self._h[0] if single else self._h
        if out is not None:  # checked before the state advances
            if not isinstance(out, np.ndarray) or out.shape != h.shape or out.dtype != h.dtype:
                raise ValueError(
                    f"out: expected a {h.dtype} array of shape {h.shape}, got "
                    f"{getattr(out, 'dtype', type(out).__name__)} {np.shape(out)}"
                )
            if not out.flags.writeable:
                raise ValueError("out: the array is read-only")
        self._core.step(x)
        if out is not None:
            np.copyto(out, h)
            return out
        return h.copy()

    @property
    def h(self) -> np.ndarray:
        """A copy of the hidden state, (batch_size, H)."""
        return self._h.copy()

    @property
    def c(self):
        """A copy of the LSTM cell state (AttributeError for other cells)."""
        if self._c is None:
            raise AttributeError(f"Stream: a {self.cell} layer has no cell state c")
        return self._c.copy()

    def reset(self, h0=None, c0=None, *, h=None, c=None):
        """Zero the state, or set it to h0 (and c0 for LSTM), each (batch_size, hidden).

        `h` and `c` are accepted as other names for h0 and c0 (the names of the state).
        """
        h0 = h if h0 is None else h0
        c0 = c if c0 is None else c0
        if c0 is not None and self._c is None:
            raise ValueError(f"c0: a {self.cell} layer has no cell state")
        for name, view, value in (("h0", self._h, h0), ("c0", self._c, c0)):
            if view is None:
                continue
            if value is None:
                view[...] = 0
                continue
            value = np.asarray(value, dtype=self.dtype)
            if value.shape not in (view.shape, view.shape[1:] if self.batch_size == 1 else None):
                raise ValueError(f"{name}: expected shape {view.shape}, got {value.shape}")
            view[...] = value


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
