"""NumPy reference implementation of the functional API: the oracle for every kernel test.

Written for clarity, not speed: a Python loop over time steps, the whole batch at once,
with each row's own time index (right-padded lengths, optional reverse direction). Same
signatures and return values as rnncore.lstm / gru / rnn and their _forward / _backward.
"""

from __future__ import annotations

import numpy as np

from ._api import Functional
from ._validate import (
    CacheBase,
    Call,
    check_cache,
    flag,
    prepare_grads,
)

__all__ = [
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


def sigmoid(v):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-v))


class Cache(CacheBase):
    """Per-step values of a reference training forward."""

    def __init__(self, call: Call, steps: list):
        super().__init__(call)
        self.steps = steps


def _bias(b, n, dtype):
    return np.zeros(n, dtype) if b is None else b


def _cell_forward(call: Call, x, h, c, mask):
    """One step for a set of rows (mask: their recurrent_mask rows or None): returns
    (h_new, c_new, saved values for backward)."""
    H, kind = call.H, call.cell.name
    hm = h if mask is None else h * mask  # what W_hh multiplies
    xg = x @ call.w_ih.T + _bias(call.b_ih, call.w_ih.shape[0], x.dtype)
    b_hh = _bias(call.b_hh, call.w_hh.shape[0], x.dtype)
    if kind == "gru_reset_before":
        r = sigmoid(xg[:, :H] + hm @ call.w_hh[:H].T + b_hh[:H])
        z = sigmoid(xg[:, H : 2 * H] + hm @ call.w_hh[H : 2 * H].T + b_hh[H : 2 * H])
        rh = r * hm
        n = np.tanh(xg[:, 2 * H :] + rh @ call.w_hh[2 * H :].T + b_hh[2 * H :])
        return (1 - z) * n + z * h, None, {"r": r, "z": z, "n": n, "rh": rh, "hm": hm}
    hg = hm @ call.w_hh.T + b_hh
    if kind == "rnn_tanh":
        h_new = np.tanh(xg + hg)
        return h_new, None, {"h": h_new, "hm": hm}
    if kind == "rnn_relu":
        h_new = np.maximum(xg + hg, 0)
        return h_new, None, {"h": h_new, "hm": hm}
    if kind == "lstm":
        a = xg + hg
        i, f, o = sigmoid(a[:, :H]), sigmoid(a[:, H : 2 * H]), sigmoid(a[:, 3 * H :])
        g = np.tanh(a[:, 2 * H : 3 * H])
        c_new = f * c + i * g
        return o * np.tanh(c_new), c_new, {"i": i, "f": f, "g": g, "o": o, "c": c_new, "hm": hm}
    # gru, reset_after
    r = sigmoid(xg[:, :H] + hg[:, :H])
    z = sigmoid(xg[:, H : 2 * H] + hg[:, H : 2 * H])
    hn = hg[:, 2 * H :]
    n = np.tanh(xg[:, 2 * H :] + r * hn)
    return (1 - z) * n + z * h, None, {"r": r, "z": z, "n": n, "hn": hn, "hm": hm}


def _cell_backward(call: Call, st: dict, dh, dc):
    """Gradients of one step. Returns (dxg, dW_hh, dbh, dh_prev, dc_prev), where dxg is the
    gradient of the input projection x·W_ihᵀ + b_ih and dbh the gradient of b_hh."""
    H, kind, w_hh = call.H, call.cell.name, call.w_hh
    h_prev, hm = st["h_prev"], st["hm"]
    m = 1 if st["mask"] is None else st["mask"]
    if call.cell.family == "rnn":
        h = st["h"]
        # relu' selects (as torch does): zero where h <= 0, even when dh is NaN; NaN h passes dh
        da = dh * (1 - h * h) if kind == "rnn_tanh" else np.where(h <= 0, 0, dh)
        return da, da.T @ hm, da.sum(0), (da @ w_hh) * m, None
    if kind == "lstm":
        i, f, g, o, c = st["i"], st["f"], st["g"], st["o"], st["c"]
        tc = np.tanh(c)
        dct = dc + dh * o * (1 - tc * tc)
        d = np.concatenate(
            [
                dct * g * i * (1 - i),
                dct * st["c_prev"] * f * (1 - f),
                dct * i * (1 - g * g),
                dh * tc * o * (1 - o),
            ],
            axis=1,
        )
        return d, d.T @ hm, d.sum(0), (d @ w_hh) * m, dct * f
    r, z, n = st["r"], st["z"], st["n"]
    dn = dh * (1 - z) * (1 - n * n)
    dz = dh * (h_prev - n) * z * (1 - z)
    if kind == "gru":
        dr = dn * st["hn"] * r * (1 - r)
        dxg = np.concatenate([dr, dz, dn], axis=1)
        dhg = np.concatenate([dr, dz, dn * r], axis=1)
        return dxg, dhg.T @ hm, dhg.sum(0), dh * z + (dhg @ w_hh) * m, None
    # gru_reset_before
    drh = dn @ w_hh[2 * H :]
    dr = drh * hm * r * (1 - r)
    drz = np.concatenate([dr, dz], axis=1)
    dxg = np.concatenate([drz, dn], axis=1)
    dw_hh = np.concatenate([drz.T @ hm, dn.T @ st["rh"]], axis=0)
    return dxg, dw_hh, dxg.sum(0), dh * z + (drh * r + drz @ w_hh[: 2 * H]) * m, None


def _time_major(a, batch_first):
    return a.transpose(1, 0, 2) if batch_first else a


def _forward(call: Call, training):
    training = flag("training", training)
    T, B, H, dtype = call.T, call.B, call.H, call.x.dtype
    xs = _time_major(call.x, call.batch_first)  # [T, B, I]
    lengths = np.full(B, T, np.int64) if call.lengths is None else call.lengths
    rows = np.arange(B)
    h = np.zeros((B, H), dtype) if call.h0 is None else call.h0.copy()
    c = np.zeros((B, H), dtype) if call.c0 is None else call.c0.copy()
    y = np.zeros((T, B, H), dtype)
    steps = []
    for s in range(int(lengths.max()) if B else 0):
        # Only the rows with a real step s run the cell: nothing a padded row holds (a NaN
        # h0 of an empty row, say) can reach the outputs or the gradients.
        r = rows[s < lengths]
        t = lengths[r] - 1 - s if call.reverse else np.full(len(r), s)
        mask = None if call.recurrent_mask is None else call.recurrent_mask[r]
        x, h_prev, c_prev = xs[t, r], h[r], c[r]  # [rows, I], [rows, H], [rows, H]
        h_new, c_new, saved = _cell_forward(call, x, h_prev, c_prev, mask)
        steps.append({"t": t, "rows": r, "x": x, "h_prev": h_prev, "c_prev": c_prev,
                      "mask": mask, **saved})  # fmt: skip
        y[t, r] = h_new
        h[r] = h_new
        if c_new is not None:
            c[r] = c_new
    c_n = c if call.cell.has_cell_state else None
    cache = Cache(call, steps) if training else None
    return _time_major(y, call.batch_first).copy(), h, c_n, cache


def _backward(cache, family, dy, dh_n, dc_n) -> dict:
    check_cache(cache, Cache, family)
    dy, dh_n, dc_n = prepare_grads(cache.call, dy, dh_n, dc_n)
    call = cache.claim(family)
    B, H, dtype = call.B, call.H, call.x.dtype
    dys = None if dy is None else _time_major(dy, call.batch_first)
    dx = np.zeros((call.T, B, call.I), dtype)
    g = {
        "dw_ih": np.zeros_like(call.w_ih),
        "dw_hh": np.zeros_like(call.w_hh),
        "db_ih": np.zeros(call.w_ih.shape[0], dtype),
        "db_hh": np.zeros(call.w_hh.shape[0], dtype),
    }
    dh_carry = np.zeros((B, H), dtype) if dh_n is None else dh_n.copy()
    dc_carry = np.zeros((B, H), dtype) if dc_n is None else dc_n.copy()
    for st in reversed(cache.steps):
        t, r = st["t"], st["rows"]
        dh = dh_carry[r] + (0 if dys is None else dys[t, r])
        dxg, dw_hh, dbh, dh_prev, dc_prev = _cell_backward(call, st, dh, dc_carry[r])
        g["dw_ih"] += dxg.T @ st["x"]
        g["dw_hh"] += dw_hh
        g["db_ih"] += dxg.sum(0)
        g["db_hh"] += dbh
        dx[t, r] = dxg @ call.w_ih
        dh_carry[r] = dh_prev
        if dc_prev is not None:
            dc_carry[r] = dc_prev
    grads = {"dx": _time_major(dx, call.batch_first).copy(), **g, "dh0": dh_carry}
    if call.b_ih is None:
        grads["db_ih"] = None
    if call.b_hh is None:
        grads["db_hh"] = None
    if call.cell.has_cell_state:
        grads["dc0"] = dc_carry
    return grads


class _Reference(Functional):
    """The functional API in NumPy: a loop over steps, the whole batch at once."""

    def run_forward(self, call: Call, training: bool):
        """The reference forward; its cache keeps every step's values."""
        return _forward(call, training)

    def run_backward(self, cache, family, dy, dh_n, dc_n) -> dict:
        """The reference backward over the cached steps."""
        return _backward(cache, family, dy, dh_n, dc_n)


_REFERENCE = _Reference()
lstm, lstm_forward, lstm_backward = (
    _REFERENCE.lstm,
    _REFERENCE.lstm_forward,
    _REFERENCE.lstm_backward,
)
gru, gru_forward, gru_backward = _REFERENCE.gru, _REFERENCE.gru_forward, _REFERENCE.gru_backward
rnn, rnn_forward, rnn_backward = _REFERENCE.rnn, _REFERENCE.rnn_forward, _REFERENCE.rnn_backward


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
