"""torch.nn-style recurrent modules on NumPy arrays, running on the fused kernels.

`RNN`, `LSTM` and `GRU` take torch.nn's constructor arguments and parameter names
(`weight_ih_l0`, `bias_hh_l1_reverse`, ...), so `state_dict()` loads into the torch module and a
torch `state_dict()` loads here. Calls return what torch returns:
    output, h_n = rnn(x, hx=None, lengths=None)          (RNN, GRU)
    output, (h_n, c_n) = lstm(x, (h0, c0), lengths)       (LSTM)
`lengths` stands in for a PackedSequence: steps past a row's length give zero outputs (as
pad_packed_sequence does) and h_n is the state at the row's last valid step.
In training mode (the default, as in torch) a call records what `backward` needs:
    grads = m.backward(d_output, d_h_n=None, d_c_n=None)
returns d(loss)/d(every parameter) under its torch name, plus "input" and "hx" (and "cx").
"""

from __future__ import annotations

import numpy as np

from . import _cells, ops
from ._validate import float_dtype, positive_int, unit_rate
from .utils import new_generator

__all__ = ["GRU", "LSTM", "RNN"]


def _to_numpy(name, value):
    """A NumPy view of an array-like or a torch tensor (torch is never imported here)."""
    if type(value).__name__ == "PackedSequence":
        raise TypeError(
            f"{name}: a torch PackedSequence; pass the padded tensor and its lengths instead: "
            "m(x_padded, lengths=lengths) (torch.nn.utils.rnn.pad_packed_sequence gives both)"
        )
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    return arr


class RNNBase:
    mode = "rnn"  # torch's name for the cell family; rnncore/_cells.py describes it

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, *, dtype="float32", seed=None):  # fmt: skip
        self.input_size = positive_int("input_size", input_size)
        self.hidden_size = positive_int("hidden_size", hidden_size)
        self.num_layers = positive_int("num_layers", num_layers)
        self.dropout = unit_rate("dropout", dropout)
        self.bias, self.batch_first = bool(bias), bool(batch_first)
        self.bidirectional = bool(bidirectional)
        self.dtype = float_dtype(dtype)
        self.training = True
        self._rng = new_generator(seed)
        self._params = self._init_params()
        self._tape = None  # what backward needs from the last training-mode call

    # ---- parameters, by torch's names ----
    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def _names(self, layer, direction):
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        kinds = ("weight_ih", "weight_hh") + (("bias_ih", "bias_hh") if self.bias else ())
        return [k + suffix for k in kinds]

    def _shapes(self, layer):
        G, H = self.cell.gates * self.hidden_size, self.hidden_size
        I = self.input_size if layer == 0 else H * self.num_directions
        return [(G, I), (G, H), (G,), (G,)]

    def _init_params(self):
        bound = 1.0 / np.sqrt(self.hidden_size)  # torch's U(-1/sqrt(H), 1/sqrt(H))
        params = {}
        for layer in range(self.num_layers):
            for d in range(self.num_directions):
                for name, shape in zip(self._names(layer, d), self._shapes(layer)):
                    params[name] = self._rng.uniform(-bound, bound, shape).astype(self.dtype)
        return params

    def __getattr__(self, name):  # m.weight_ih_l0, as on a torch module
        params = self.__dict__.get("_params", {})
        if name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def named_parameters(self):
        return list(self._params.items())

    def parameters(self):
        return list(self._params.values())

    def state_dict(self) -> dict:
        return {k: v.copy() for k, v in self._params.items()}

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays (or torch tensors) in by name; shapes must match exactly."""
        if not hasattr(state_dict, "items"):
            raise TypeError(f"state_dict: expected a mapping, got {type(state_dict).__name__}")
        missing = [k for k in self._params if k not in state_dict]
        unexpected = [k for k in state_dict if k not in self._params]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        new = {}
        for k in self._params:
            if k in state_dict:
                arr = _to_numpy(k, state_dict[k])
                if arr.shape != self._params[k].shape:
                    raise ValueError(
                        f"{k}: expected shape {self._params[k].shape}, got {arr.shape}"
                    )
                new[k] = arr
        for k, arr in new.items():  # all checked before any is written
            np.copyto(self._params[k], arr, casting="unsafe")
        return {"missing_keys": missing, "unexpected_keys": unexpected}

    def train(self, mode=True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def __repr__(self):
        # torch's style: the sizes, then every argument that differs from its default
        extra = [f"num_layers={self.num_layers}"] if self.num_layers != 1 else []
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            extra.append(f"nonlinearity={self.nonlinearity!r}")
        for name, default in (("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False)):  # fmt: skip
            if getattr(self, name) != default:
                extra.append(f"{name}={getattr(self, name)}")
        args = [str(self.input_size), str(self.hidden_size), *extra]
        return f"{type(self).__name__}({', '.join(args)})"

    # ---- cell specifics ----
    @property
    def cell(self) -> _cells.CellKind:
        """The cell table's row this module runs (torch's GRU is reset-after)."""
        return _cells.family_kinds(self.mode)[0]

    def _functions(self):
        """The kernels' (forward, backward) functions of this module's family."""
        return getattr(ops, self.mode + "_forward"), getattr(ops, self.mode + "_backward")

    # ---- calling ----
    def _time_major(self, x):
        """(x [T, B, I] contiguous, unbatched?) from the caller's layout."""
        x = _to_numpy("input", x).astype(self.dtype, copy=False)
        if x.ndim == 2:  # unbatched (T, I), as torch accepts
            return np.ascontiguousarray(x[:, None, :]), True
        if x.ndim != 3:
            raise ValueError(f"input: expected a 2-D or 3-D array, got shape {x.shape}")
        return np.ascontiguousarray(x.transpose(1, 0, 2) if self.batch_first else x), False

    def _from_time_major(self, y, unbatched):
        if unbatched:
            return y[:, 0]
        return np.ascontiguousarray(y.transpose(1, 0, 2)) if self.batch_first else y

    def _initial(self, name, state, B, unbatched):
        """[L·D, B, H] initial state (zeros when None)."""
        shape = (self.num_layers * self.num_directions, B, self.hidden_size)
        if state is None:
            return np.zeros(shape, self.dtype)
        s = _to_numpy(name, state).astype(self.dtype)
        if unbatched and s.ndim == 2:
            s = s[:, None, :]
        if s.shape != shape:
            raise ValueError(f"{name}: expected shape {shape}, got {s.shape}")
        return np.ascontiguousarray(s)

    def _split_hx(self, hx, B, unbatched):
        return [self._initial("hx", hx, B, unbatched)]

    def __call__(self, x, hx=None, lengths=None):
        return self.forward(x, hx, lengths)

    def forward(self, x, hx=None, lengths=None):
        x, unbatched = self._time_major(x)
        T, B, _ = x.shape
        if x.shape[2] != self.input_size:
            raise ValueError(f"input: expected {self.input_size} features, got {x.shape[2]}")
        states = self._split_hx(hx, B, unbatched)  # [h0] or [h0, c0], each [L·D, B, H]
        fwd, _ = self._functions()
        finals = [np.empty_like(s) for s in states]
        tape = []  # per layer: (caches per direction, dropout mask applied to its output)
        inp = x
        for layer in range(self.num_layers):
            outs, caches = [], []
            for d in range(self.num_directions):
                k = layer * self.num_directions + d
                w = [self._params[n] for n in self._names(layer, d)] + [None, None]
                res = fwd(inp, *w[:4], *(s[k] for s in states), lengths=lengths, reverse=bool(d),
                          training=self.training, **self.cell.options)  # fmt: skip
                outs.append(res[0])
                for f, r in zip(finals, res[1:-1]):
                    f[k] = r
                caches.append(res[-1])
            out = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=2)  # [T, B, D·H]
            mask = None
            if self.training and self.dropout > 0 and layer < self.num_layers - 1:
                mask = (self._rng.random(out.shape) >= self.dropout) / (1 - self.dropout)
                out = out * mask.astype(self.dtype)
            tape.append((caches, mask))
            inp = out
        self._tape = (tape, unbatched, (T, B)) if self.training else None
        if unbatched:
            finals = [f[:, 0] for f in finals]
        return self._from_time_major(inp, unbatched), self._pack_states(finals)

    def _pack_states(self, finals):
        return finals[0]

    def backward(self, d_output, d_h_n=None, d_c_n=None) -> dict:
        """Gradients of the last training-mode call, by torch parameter name, plus "input",
        "hx" (and "cx" for LSTM), given d(loss)/d(output) and optionally d(loss)/d(h_n, c_n)."""
        if self._tape is None:
            if self.training:
                raise RuntimeError(
                    "backward: no forward call to differentiate yet; call the module on an "
                    "input first (in training mode, as it is now)"
                )
            raise RuntimeError(
                "backward: the module is in eval mode, so its last call kept nothing; "
                "switch to training mode (m.train()), call the module, then backward"
            )
        tape, unbatched, (T, B) = self._tape
        dy, _ = self._time_major(d_output)  # [T, B, D·H]
        H, LD = self.hidden_size, self.num_layers * self.num_directions
        want = (T, B, self.num_directions * H)
        if dy.shape != want:  # stated in the caller's layout, as the output came
            given = np.shape(d_output)
            shown: tuple = (want[1], want[0], want[2]) if self.batch_first else want
            shown = shown[1:] if unbatched else shown
            raise ValueError(f"d_output: expected the output's shape {shown}, got {given}")
        n_states = 2 if self.cell.has_cell_state else 1
        given = (("d_h_n", d_h_n), ("d_c_n", d_c_n))[:n_states]
        d_finals = [None if g is None else self._initial(n, g, B, unbatched) for n, g in given]
        d_inits = [np.zeros((LD, B, H), self.dtype) for _ in range(n_states)]  # [L·D, B, H]
        _, bwd = self._functions()
        grads = {}
        for layer in reversed(range(self.num_layers)):
            caches, mask = tape[layer]
            if mask is not None:
                dy = dy * mask
            dx = 0.0
            for d, cache in enumerate(caches):
                k = layer * self.num_directions + d
                dy_d = np.ascontiguousarray(dy[:, :, d * H : (d + 1) * H], dtype=self.dtype)
                g = bwd(cache, dy_d, *(None if s is None else s[k] for s in d_finals))
                for name, key in zip(self._names(layer, d), ("dw_ih", "dw_hh", "db_ih", "db_hh")):
                    grads[name] = g[key]
                dx = dx + g["dx"]
                for i, key in enumerate(("dh0", "dc0")[:n_states]):
                    d_inits[i][k] = g[key]
            dy = dx
        grads["input"] = self._from_time_major(dy, unbatched)
        for name, g in zip(("hx", "cx"), d_inits):
            grads[name] = g[:, 0] if unbatched else g
        return grads


class RNN(RNNBase):
    """torch.nn.RNN: h_t = nonlinearity(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)."""

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, **kwargs):  # fmt: skip
        _cells.kind_of("rnn", nonlinearity=nonlinearity)  # ValueError naming the choices
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, **kwargs)  # fmt: skip

    @property
    def cell(self) -> _cells.CellKind:
        """The cell table's row this module runs."""
        return _cells.kind_of("rnn", nonlinearity=self.nonlinearity)


class LSTM(RNNBase):
    """torch.nn.LSTM (gates i, f, g, o); call with hx=(h0, c0), returns output, (h_n, c_n)."""

    mode = "lstm"

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, **kwargs):  # fmt: skip
        if proj_size:
            raise NotImplementedError("LSTM: proj_size is not supported (expected 0)")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, **kwargs)  # fmt: skip

    def _split_hx(self, hx, B, unbatched):
        if hx is None:
            return [
                self._initial("hx", None, B, unbatched),
                self._initial("cx", None, B, unbatched),
            ]
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError("hx: expected a tuple (h0, c0) for LSTM")
        return [self._initial("h0", hx[0], B, unbatched), self._initial("c0", hx[1], B, unbatched)]

    def _pack_states(self, finals):
        return tuple(finals)


class GRU(RNNBase):
    """torch.nn.GRU (gates r, z, n; the reset gate applies after the recurrent product)."""

    mode = "gru"


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
