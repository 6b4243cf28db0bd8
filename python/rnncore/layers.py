"""Keras-style layers on NumPy arrays; the recurrent ones run on the fused kernels.

Every layer has the same small protocol, which models chain:
  build(input_shape)                      creates `params` (shapes include the batch axis as None)
  forward(x, mask, training) -> (y, ctx)  ctx holds what backward needs (None when not training)
  backward(ctx, dy, grads) -> dx          adds d(loss)/d(param) into grads[(layer, name)]
  compute_mask(x, mask) -> mask           the (batch, time) boolean mask passed downstream
A layer is also callable on arrays like a Keras layer: `y = layer(x)` builds it on first use.
Recurrent weights live in PyTorch's layout (w_ih (G·H, I), gates i,f,g,o / r,z,n);
get_weights()/set_weights() speak Keras's layout (kernel (I, G·H), gates i,f,c,o / z,r,h).
"""

from __future__ import annotations

import re
import threading
from collections import Counter

import numpy as np

from . import activations, initializers, ops
from ._validate import check_memory
from .utils import new_generator

__all__ = [
    "GRU",
    "LSTM",
    "Bidirectional",
    "Conv1D",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "Input",
    "InputLayer",
    "Layer",
    "LayerNormSimpleRNN",
    "LayerNormalization",
    "Masking",
    "SimpleRNN",
    "TimeDistributed",
]

_name_lock = threading.Lock()
_name_counts: Counter = Counter()


def _auto_name(cls_name: str) -> str:
    base = re.sub(r"(?<=[a-z])([A-Z])", r"_\1", cls_name).lower()  # as Keras: Conv1D -> conv1d
    with _name_lock:
        n = _name_counts[base]
        _name_counts[base] += 1
    return base if n == 0 else f"{base}_{n}"


def float_dtype(dtype, argument="dtype") -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"{argument}: expected 'float32' or 'float64', got {dtype!r}")
    return dt


def _positive_int(name, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name}: expected a positive int, got {value!r}")
    return int(value)


def _rate(name, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"{name}: expected a float in [0, 1), got {value!r}")
    return float(value)


def _epsilon(value) -> float:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if not ok or not 0 < value < float("inf"):
        raise ValueError(f"epsilon: expected a positive float, got {value!r}")
    return float(value)


def _shape_str(shape) -> str:
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ")"


def add_grad(grads, key, g):
    if key in grads:
        grads[key] = grads[key] + g
    else:
        grads[key] = g


class Layer:
    """Base class: naming, lazy building, calling on arrays, weights and config."""

    min_ndim = 2  # input rank (with the batch axis) this layer accepts
    supports_masking = False  # passes an incoming mask through unchanged

    def __init__(self, *, name=None, input_shape=None, dtype=None, trainable=True):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name: expected a str, got {type(name).__name__}")
        self.name = name or _auto_name(type(self).__name__)
        self.input_shape = None if input_shape is None else _input_shape(input_shape)
        self.dtype = None if dtype is None else float_dtype(dtype)
        self.trainable = bool(trainable)
        self.params: dict[str, np.ndarray] = {}
        self.built = False
        self.built_shape = None  # input shape (batch axis None) the weights were made for
        self._build_lock = threading.Lock()

    # ---- hooks for subclasses ----
    def build(self, input_shape):
        pass

    def output_shape(self, input_shape):
        return input_shape

    def forward(self, x, mask, training):
        raise NotImplementedError

    def backward(self, ctx, dy, grads):
        raise NotImplementedError

    def compute_mask(self, x, mask):
        return mask if self.supports_masking else None

    def check_input(self, shape):
        """Raise a clear ValueError when an input of `shape` (batch first) does not fit."""
        if len(shape) < self.min_ndim:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': expected input of rank >= "
                f"{self.min_ndim} (batch first), got shape {_shape_str(shape)}"
            )
        if self.built_shape is not None:
            want = self.built_shape
            ok = len(shape) == len(want) and all(
                w is None or s is None or w == s for s, w in zip(shape[1:], want[1:])
            )
            if not ok:
                raise ValueError(
                    f"{type(self).__name__} '{self.name}': expected input shape "
                    f"{_shape_str(want)}, got {_shape_str(shape)}"
                )

    # ---- building and calling ----
    @property
    def compute_dtype(self) -> np.dtype:
        return self.dtype or np.dtype(np.float32)

    def ensure_built(self, input_shape):
        input_shape = tuple(input_shape)
        self.check_input(input_shape)
        if self.built:
            return
        with self._build_lock:
            if not self.built:
                self.build(input_shape)
                self.built_shape = (None,) + tuple(
                    None if i == 0 and len(input_shape) > 2 and self.variable_time else s
                    for i, s in enumerate(input_shape[1:])
                )
                self.built = True

    variable_time = True  # the time axis (axis 1 of a 3-D input) may change between calls

    def _check_weight_memory(self, *shapes):
        """MemoryError, before trying, for weights that could not fit in memory (initializers
        work in float64 and make a temporary or two)."""
        n = sum(int(np.prod(shape, dtype=object)) for shape in shapes)
        check_memory(self.name, 3 * 8 * n, f"weights of shapes {', '.join(map(str, shapes))}")

    def _make(self, name, shape, initializer, rng):
        self._check_weight_memory(tuple(shape))
        self.params[name] = np.asarray(initializer(tuple(shape), rng), dtype=self.compute_dtype)

    def __call__(self, x, training=False, mask=None):
        x = self.cast_input(x)
        self.ensure_built(x.shape)
        y, _ = self.forward(x, mask, bool(training))
        return y

    def cast_input(self, x):
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise TypeError(f"{self.name}: expected a numeric array, got dtype {x.dtype}")
        return x.astype(self.compute_dtype, copy=False)

    # ---- weights ----
    def sublayers(self):
        return []

    def count_params(self) -> int:
        return int(sum(p.size for p in self.params.values())) + sum(
            s.count_params() for s in self.sublayers()
        )

    def get_weights(self):
        """Weights in Keras's layout and order."""
        return [p.copy() for p in self.params.values()]

    def set_weights(self, weights):
        weights = list(weights)
        mine = self.get_weights()
        if len(weights) != len(mine):
            raise ValueError(f"{self.name}: expected {len(mine)} weight arrays, got {len(weights)}")
        for i, (w, cur) in enumerate(zip(weights, mine)):
            w = np.asarray(w)
            if w.shape != cur.shape:
                raise ValueError(
                    f"{self.name}: weight {i} expected shape {cur.shape}, got {w.shape}"
                )
        self._assign(weights)

    def _assign(self, weights):
        for p, w in zip(self.params.values(), weights):
            np.copyto(p, np.asarray(w, dtype=p.dtype))

    def reset_states(self):
        for s in self.sublayers():
            s.reset_states()

    # ---- config ----
    config_keys: tuple = ()

    def get_config(self) -> dict:
        cfg = {"name": self.name, "trainable": self.trainable}
        if self.dtype is not None:
            cfg["dtype"] = self.dtype.name
        if self.input_shape is not None:
            cfg["input_shape"] = list(self.input_shape)
        for k in self.config_keys:
            cfg[k] = getattr(self, k)
        return cfg

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


def _input_shape(shape):
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"input_shape: expected a tuple, got {shape!r}") from None
    for s in shape:
        if s is not None and (isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0):
            raise ValueError(f"input_shape: expected ints or None, got {shape!r}")
    return tuple(None if s is None else int(s) for s in shape)


class InputLayer(Layer):
    """The model's input: fixes the per-sample shape (and dtype) before any data is seen."""

    min_ndim = 1
    supports_masking = True

    def __init__(self, shape, dtype=None, name=None):
        super().__init__(name=name, input_shape=shape)
        self.input_dtype = None if dtype is None else np.dtype(dtype)

    def forward(self, x, mask, training):
        return x, None

    def backward(self, ctx, dy, grads):
        return dy

    def get_config(self):
        cfg = {"name": self.name, "shape": list(self.input_shape)}
        if self.input_dtype is not None:
            cfg["dtype"] = self.input_dtype.name
        return cfg


def Input(shape, dtype=None, name=None) -> InputLayer:
    """Keras's `Input(shape)`: the per-sample shape, e.g. (timesteps, features); None = any."""
    return InputLayer(shape, dtype=dtype, name=name)


# ------------------------------------------------------------------------------------------
# Recurrent layers
# ------------------------------------------------------------------------------------------


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


class _Recurrent(Layer):
    """Shared by SimpleRNN, LSTM and GRU: arguments, weights, masks, dropout, state."""

    min_ndim = 3
    gates = 1
    has_cell_state = False
    config_keys = (
        "units",
        "activation",
        "recurrent_activation",
        "use_bias",
        "kernel_initializer",
        "recurrent_initializer",
        "bias_initializer",
        "dropout",
        "recurrent_dropout",
        "return_sequences",
        "return_state",
        "go_backwards",
        "stateful",
        "zero_output_for_mask",
        "seed",
    )

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        dropout=0.0,
        recurrent_dropout=0.0,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        zero_output_for_mask=False,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = _positive_int("units", units)
        self.activation = activation
        self.recurrent_activation = recurrent_activation
        self._check_activations()
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        for arg in ("kernel_initializer", "recurrent_initializer", "bias_initializer"):
            initializers.get(getattr(self, arg), arg)
        self.dropout = _rate("dropout", dropout)
        self.recurrent_dropout = _rate("recurrent_dropout", recurrent_dropout)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.seed = seed
        self._rng = new_generator(seed)
        self.states = None  # stateful: (h, c) carried between calls

    def _check_activations(self):
        if self.activation != "tanh":
            raise NotImplementedError(
                f"{type(self).__name__}: activation must be 'tanh', got {self.activation!r}"
            )
        if self.recurrent_activation != "sigmoid":
            raise NotImplementedError(
                f"{type(self).__name__}: recurrent_activation must be 'sigmoid' (the fused "
                f"kernels' gate activation), got {self.recurrent_activation!r}"
            )

    # ---- cell specifics: the functional kernels and the Keras weight layout ----
    def _kernel_kwargs(self):
        return {}

    def _functions(self):
        raise NotImplementedError

    def _keras_perm(self):
        """Permutation of gate blocks between PyTorch's and Keras's order (self-inverse)."""
        return np.arange(self.gates)

    def _has_b_hh(self):
        return False

    # ---- weights ----
    def build(self, input_shape):
        I, H, GH = input_shape[-1], self.units, self.gates * self.units
        if I is None:
            raise ValueError(f"{self.name}: the feature axis of the input must be known")
        self._check_weight_memory((I, GH), (H, GH))
        rng = self._rng
        kernel = initializers.get(self.kernel_initializer, "kernel_initializer")((I, GH), rng)
        rec = initializers.get(self.recurrent_initializer, "recurrent_initializer")((H, GH), rng)
        self.params["w_ih"] = self._from_keras_cols(kernel).T.astype(self.compute_dtype).copy()
        self.params["w_hh"] = self._from_keras_cols(rec).T.astype(self.compute_dtype).copy()
        if self.use_bias:
            bias_init = initializers.get(self.bias_initializer, "bias_initializer")
            for name in ("b_ih", "b_hh") if self._has_b_hh() else ("b_ih",):
                self.params[name] = np.asarray(bias_init((GH,), rng), self.compute_dtype)
            self._init_bias()

    def _init_bias(self):
        pass

    def _from_keras_cols(self, a):  # [..., G*H] in Keras gate order -> PyTorch order
        H = self.units
        blocks = [a[..., q * H : (q + 1) * H] for q in self._keras_perm()]
        return np.concatenate(blocks, axis=-1)

    def get_weights(self):
        p = self.params
        out = [self._from_keras_cols(p["w_ih"].T), self._from_keras_cols(p["w_hh"].T)]
        if self.use_bias:
            biases = [self._from_keras_cols(p["b_ih"])]
            if self._has_b_hh():
                biases.append(self._from_keras_cols(p["b_hh"]))
                out.append(np.stack(biases))
            else:
                out.append(biases[0])
        return [w.copy() for w in out]

    def _assign(self, weights):
        p = self.params
        np.copyto(p["w_ih"], self._from_keras_cols(np.asarray(weights[0])).T, casting="unsafe")
        np.copyto(p["w_hh"], self._from_keras_cols(np.asarray(weights[1])).T, casting="unsafe")
        if self.use_bias:
            bias = np.asarray(weights[2])
            if self._has_b_hh():
                np.copyto(p["b_ih"], self._from_keras_cols(bias[0]), casting="unsafe")
                np.copyto(p["b_hh"], self._from_keras_cols(bias[1]), casting="unsafe")
            else:
                np.copyto(p["b_ih"], self._from_keras_cols(bias), casting="unsafe")

    def output_shape(self, input_shape):
        B, T = input_shape[0], input_shape[1]
        return (B, T, self.units) if self.return_sequences else (B, self.units)

    def compute_mask(self, x, mask):
        return mask if self.return_sequences else None

    def reset_states(self):
        self.states = None

    # ---- forward / backward ----
    def _initial_state(self, B, initial_state):
        n_states = 2 if self.has_cell_state else 1
        if initial_state is not None:
            states = (
                list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
            )
            if len(states) != n_states:
                raise ValueError(
                    f"{self.name}: initial_state expected {n_states} arrays, got {len(states)}"
                )
            out = []
            for i, s in enumerate(states):
                s = np.ascontiguousarray(s, dtype=self.compute_dtype)
                if s.shape != (B, self.units):
                    raise ValueError(
                        f"{self.name}: initial_state[{i}] expected shape (batch, units) = "
                        f"{(B, self.units)}, got {s.shape}"
                    )
                out.append(s)
            return out
        if self.stateful and self.states is not None:
            if self.states[0].shape[0] != B:
                raise ValueError(
                    f"{self.name}: stateful layer expected batch size {self.states[0].shape[0]} "
                    f"(call reset_states() to change it), got {B}"
                )
            return list(self.states)
        return [None] * n_states

    def _dropout_mask(self, rate, shape):
        keep = self._rng.random(shape) >= rate
        return (keep / (1.0 - rate)).astype(self.compute_dtype)

    def forward(self, x, mask, training, initial_state=None):
        B, T, _ = x.shape
        _require_steps(self.name, T)
        states = self._initial_state(B, initial_state)
        in_mask = None
        if training and self.dropout > 0:  # one input mask per sequence (variational)
            in_mask = self._dropout_mask(self.dropout, (B, x.shape[2]))
            x = x * in_mask[:, None, :]
        rec_mask = None
        if training and self.recurrent_dropout > 0:
            rec_mask = self._dropout_mask(self.recurrent_dropout, (B, self.units))
        plan = None
        if mask is not None:
            mask = _check_mask(self.name, mask, B, T)
            if not mask.all():
                plan = _MaskPlan(mask, self.go_backwards, self.zero_output_for_mask)
        fwd, _ = self._functions()
        p = self.params
        kw = dict(self._kernel_kwargs(), batch_first=True, training=training)
        if rec_mask is not None:
            kw["recurrent_mask"] = rec_mask
        if plan is None:
            outs = fwd(x, p["w_ih"], p["w_hh"], p.get("b_ih"), p.get("b_hh"), *states,
                       reverse=self.go_backwards, **kw)  # fmt: skip
            seq = outs[0][:, ::-1] if self.go_backwards else outs[0]  # processing order
        else:
            outs = fwd(plan.gather_inputs(x), p["w_ih"], p["w_hh"], p.get("b_ih"), p.get("b_hh"),
                       *states, lengths=plan.lengths, **kw)  # fmt: skip
            seq = plan.scatter_outputs(outs[0])
        final = list(outs[1:-1])  # h_n (, c_n)
        if self.stateful:
            self.states = tuple(s.copy() for s in final)
        y = seq if self.return_sequences else seq[:, -1]
        if self.return_state:
            y = [y, *final]
        ctx = (outs[-1], plan, in_mask, seq.shape) if training else None
        return y, ctx

    def backward(self, ctx, dy, grads):
        cache, plan, in_mask, seq_shape = ctx
        dstates = [None] * (2 if self.has_cell_state else 1)
        if self.return_state:
            dy, dstates = dy[0], list(dy[1:])
        if self.return_sequences:
            dseq = dy
        else:
            dseq = np.zeros(seq_shape, dy.dtype)
            dseq[:, -1] = dy
        _, bwd = self._functions()
        if plan is None:
            g = bwd(cache, dseq[:, ::-1] if self.go_backwards else dseq, *dstates)
            dx = g["dx"]
        else:
            g = bwd(cache, plan.outputs_grad(dseq), *dstates)
            dx = plan.inputs_grad(g["dx"])
        for name, key in (
            ("w_ih", "dw_ih"),
            ("w_hh", "dw_hh"),
            ("b_ih", "db_ih"),
            ("b_hh", "db_hh"),
        ):
            if name in self.params:
                add_grad(grads, (self, name), g[key])
        self.last_state_grads = [g["dh0"], g.get("dc0")]
        return dx * in_mask[:, None, :] if in_mask is not None else dx

    def __call__(self, x, training=False, mask=None, initial_state=None):
        x = self.cast_input(x)
        self.ensure_built(x.shape)
        y, _ = self.forward(x, mask, bool(training), initial_state)
        return y


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


class SimpleRNN(_Recurrent):
    """Keras SimpleRNN: h = act(x·kernel + h·recurrent_kernel + bias), act tanh or relu."""

    def _check_activations(self):
        if self.activation not in ("tanh", "relu"):
            raise NotImplementedError(
                f"SimpleRNN: activation must be 'tanh' or 'relu', got {self.activation!r}"
            )

    def __init__(self, units, activation="tanh", **kwargs):
        kwargs.setdefault("recurrent_activation", "sigmoid")
        super().__init__(units, activation=activation, **kwargs)

    def _kernel_kwargs(self):
        return {"nonlinearity": self.activation}

    def _functions(self):
        return ops.rnn_forward, ops.rnn_backward

    def get_config(self):
        cfg = super().get_config()
        del cfg["recurrent_activation"]
        return cfg


class LSTM(_Recurrent):
    """Keras LSTM (gates i, f, c, o; PyTorch's i, f, g, o is the same order)."""

    gates = 4
    has_cell_state = True
    config_keys = _Recurrent.config_keys + ("unit_forget_bias",)

    def __init__(self, units, unit_forget_bias=True, **kwargs):
        self.unit_forget_bias = bool(unit_forget_bias)
        super().__init__(units, **kwargs)

    def _init_bias(self):
        if self.unit_forget_bias:
            self.params["b_ih"][self.units : 2 * self.units] = 1.0

    def _functions(self):
        return ops.lstm_forward, ops.lstm_backward


class GRU(_Recurrent):
    """Keras GRU (gates z, r, h; PyTorch order r, z, n). reset_after=True keeps two biases."""

    gates = 3
    config_keys = _Recurrent.config_keys + ("reset_after",)

    def __init__(self, units, reset_after=True, **kwargs):
        self.reset_after = bool(reset_after)
        super().__init__(units, **kwargs)

    def _keras_perm(self):
        return np.array([1, 0, 2])

    def _has_b_hh(self):
        return self.reset_after

    def _kernel_kwargs(self):
        return {"reset_after": self.reset_after}

    def _functions(self):
        return ops.gru_forward, ops.gru_backward


class LayerNormSimpleRNN(Layer):
    """SimpleRNN with layer normalisation inside the recurrence (the forecasting chapter's
    LNSimpleRNNCell): h_t = act(gamma · LN(x_t·kernel + h_{t-1}·recurrent_kernel + bias) + beta).

    The normalisation sits between the matmul and the activation, which the fused kernels do
    not have, so the steps run in NumPy (one batched GEMM for every input projection, then a
    (B, H) x (H, H) product per step). Masked steps keep the previous state, as in Keras.
    """

    min_ndim = 3
    config_keys = ("units", "activation", "epsilon", "return_sequences", "go_backwards",
                   "kernel_initializer", "recurrent_initializer", "seed")  # fmt: skip

    def __init__(self, units, activation="tanh", epsilon=1e-3, return_sequences=False,
                 go_backwards=False, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", seed=None, **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        self.units = _positive_int("units", units)
        self.activation = activation
        self._act = activations.get(activation)
        if activation == "softmax":
            raise ValueError(f"{self.name}: activation 'softmax' is not element-wise")
        self.epsilon = _epsilon(epsilon)
        self.return_sequences, self.go_backwards = bool(return_sequences), bool(go_backwards)
        self.kernel_initializer, self.recurrent_initializer = (
            kernel_initializer,
            recurrent_initializer,
        )
        self.seed = seed
        self._rng = new_generator(seed)

    def build(self, input_shape):
        I, H = input_shape[-1], self.units
        if I is None:
            raise ValueError(f"{self.name}: the feature axis of the input must be known")
        get = initializers.get
        self._make("kernel", (I, H), get(self.kernel_initializer, "kernel_initializer"), self._rng)
        self._make("recurrent_kernel", (H, H),
                   get(self.recurrent_initializer, "recurrent_initializer"), self._rng)  # fmt: skip
        self._make("bias", (H,), initializers.zeros, None)
        self._make("gamma", (H,), initializers.ones, None)
        self._make("beta", (H,), initializers.zeros, None)

    def output_shape(self, input_shape):
        B, T = input_shape[0], input_shape[1]
        return (B, T, self.units) if self.return_sequences else (B, self.units)

    def compute_mask(self, x, mask):
        return mask if self.return_sequences else None

    def forward(self, x, mask, training):
        p, (B, T, _) = self.params, x.shape
        keep = None if mask is None else _check_mask(self.name, mask, B, T)
        if self.go_backwards:
            x, keep = x[:, ::-1], None if keep is None else keep[:, ::-1]
        xw = x @ p["kernel"] + p["bias"]  # [B, T, H] every step's input projection at once
        h = np.zeros((B, self.units), x.dtype)
        seq = np.empty_like(xw)  # [B, T, H] state after each step, in processing order
        steps = []  # per step: (h_prev, xhat, inv, z, y) for backward
        for t in range(T):
            xhat, inv = _normalize(xw[:, t] + h @ p["recurrent_kernel"], self.epsilon)
            z = xhat * p["gamma"] + p["beta"]
            y = self._act(z)
            if training:
                steps.append((h, xhat, inv, z, y))
            h = y if keep is None else np.where(keep[:, t, None], y, h)
            seq[:, t] = h
        out = seq if self.return_sequences else seq[:, -1]
        return out, ((x, keep, steps) if training else None)

    def backward(self, ctx, dy, grads):
        x, keep, steps = ctx
        p, (B, T, _) = self.params, x.shape
        dseq = dy if self.return_sequences else np.zeros((B, T, self.units), dy.dtype)
        if not self.return_sequences:
            dseq[:, -1] = dy
        dxw = np.empty((B, T, self.units), dy.dtype)  # [B, T, H] d(input projection)
        d_rec, d_gamma, d_beta = (
            np.zeros_like(p[k]) for k in ("recurrent_kernel", "gamma", "beta")
        )
        dh = np.zeros((B, self.units), dy.dtype)  # d(loss)/d(state after step t)
        for t in reversed(range(T)):
            h_prev, xhat, inv, z, y = steps[t]
            dh = dh + dseq[:, t]
            d_step, dh_pass = (
                (dh, 0.0) if keep is None else (dh * keep[:, t, None], dh * ~keep[:, t, None])
            )
            dz = self._act.backward(z, y, d_step)
            d_gamma += (dz * xhat).sum(axis=0)
            d_beta += dz.sum(axis=0)
            dn = dz * p["gamma"]
            da = _normalize_backward(dn, xhat, inv)
            d_rec += h_prev.T @ da
            dxw[:, t] = da
            dh = da @ p["recurrent_kernel"].T + dh_pass
        flat = dxw.reshape(B * T, -1)
        add_grad(grads, (self, "kernel"), x.reshape(B * T, -1).T @ flat)
        add_grad(grads, (self, "bias"), flat.sum(axis=0))
        for name, g in (("recurrent_kernel", d_rec), ("gamma", d_gamma), ("beta", d_beta)):
            add_grad(grads, (self, name), g)
        dx = dxw @ p["kernel"].T
        return dx[:, ::-1] if self.go_backwards else dx


class Bidirectional(Layer):
    """Runs a recurrent layer forwards and a copy backwards, merging the two outputs."""

    min_ndim = 3
    MERGE_MODES = ("concat", "sum", "mul", "ave", None)

    def __init__(self, layer, merge_mode="concat", backward_layer=None, **kwargs):
        if not isinstance(layer, _Recurrent):
            raise TypeError(
                f"layer: expected a SimpleRNN, LSTM or GRU instance, got {type(layer).__name__}"
            )
        if layer.return_state:
            raise NotImplementedError("Bidirectional: return_state is not supported")
        if merge_mode not in self.MERGE_MODES:
            raise ValueError(f"merge_mode: expected one of {self.MERGE_MODES}, got {merge_mode!r}")
        kwargs.setdefault("name", "bidirectional_" + layer.name)
        kwargs.setdefault("input_shape", layer.input_shape)
        kwargs.setdefault("dtype", layer.dtype)
        super().__init__(**kwargs)
        self.merge_mode = merge_mode
        self.return_sequences = layer.return_sequences
        if backward_layer is None:
            cfg = layer.get_config()
            cfg.update(name="backward_" + layer.name, go_backwards=not layer.go_backwards)
            cfg.pop("input_shape", None)
            if layer.seed is not None:
                cfg["seed"] = layer.seed + 1
            backward_layer = type(layer).from_config(cfg)
        layer.name = layer.name if layer.name.startswith("forward_") else "forward_" + layer.name
        self.forward_layer, self.backward_layer = layer, backward_layer
        for sub in self.sublayers():
            sub.zero_output_for_mask = self.return_sequences  # as Keras does
            sub.dtype = sub.dtype or self.dtype

    def sublayers(self):
        return [self.forward_layer, self.backward_layer]

    def build(self, input_shape):
        for sub in self.sublayers():
            sub.dtype = sub.dtype or self.dtype
            sub.ensure_built(input_shape)

    def output_shape(self, input_shape):
        shape = self.forward_layer.output_shape(input_shape)
        if self.merge_mode == "concat":
            return shape[:-1] + (2 * shape[-1],)
        return shape

    def compute_mask(self, x, mask):
        return mask if self.return_sequences else None

    def forward(self, x, mask, training):
        yf, cf = self.forward_layer.forward(x, mask, training)
        yb, cb = self.backward_layer.forward(x, mask, training)
        if self.return_sequences:
            yb = yb[:, ::-1]
        m = self.merge_mode
        if m == "concat":
            y = np.concatenate([yf, yb], axis=-1)
        elif m == "sum":
            y = yf + yb
        elif m == "mul":
            y = yf * yb
        elif m == "ave":
            y = (yf + yb) / 2
        else:
            y = [yf, yb]
        return y, ((cf, cb, yf, yb) if training else None)

    def backward(self, ctx, dy, grads):
        cf, cb, yf, yb = ctx
        m = self.merge_mode
        if m == "concat":
            H = yf.shape[-1]
            dyf, dyb = dy[..., :H], dy[..., H:]
        elif m == "sum":
            dyf = dyb = dy
        elif m == "mul":
            dyf, dyb = dy * yb, dy * yf
        elif m == "ave":
            dyf = dyb = dy / 2
        else:
            dyf, dyb = dy
        if self.return_sequences:
            dyb = dyb[:, ::-1]
        dx = self.forward_layer.backward(cf, np.ascontiguousarray(dyf), grads)
        return dx + self.backward_layer.backward(cb, np.ascontiguousarray(dyb), grads)

    def get_weights(self):
        return self.forward_layer.get_weights() + self.backward_layer.get_weights()

    def _assign(self, weights):
        n = len(self.forward_layer.get_weights())
        self.forward_layer._assign(weights[:n])
        self.backward_layer._assign(weights[n:])

    def get_config(self):
        cfg = super().get_config()
        cfg["merge_mode"] = self.merge_mode
        cfg["layer"] = serialize(self.forward_layer)
        cfg["backward_layer"] = serialize(self.backward_layer)
        return cfg

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = deserialize(config["layer"])
        config["backward_layer"] = deserialize(config["backward_layer"])
        return cls(**config)


# ------------------------------------------------------------------------------------------
# Feed-forward layers
# ------------------------------------------------------------------------------------------


class Dense(Layer):
    """y = activation(x · kernel + bias) over the last axis."""

    supports_masking = True
    config_keys = ("units", "activation", "use_bias", "kernel_initializer", "bias_initializer")

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = _positive_int("units", units)
        self.activation = activations.get(activation).name
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        initializers.get(kernel_initializer, "kernel_initializer")
        initializers.get(bias_initializer, "bias_initializer")
        self._rng = new_generator(seed)
        self._act = activations.get(self.activation)

    def build(self, input_shape):
        init = initializers.get(self.kernel_initializer, "kernel_initializer")
        self._make("kernel", (input_shape[-1], self.units), init, self._rng)
        if self.use_bias:
            binit = initializers.get(self.bias_initializer, "bias_initializer")
            self._make("bias", (self.units,), binit, self._rng)

    def output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def forward(self, x, mask, training):
        a = x @ self.params["kernel"]
        if self.use_bias:
            a = a + self.params["bias"]
        y = self._act(a)
        return y, ((x, a, y) if training else None)

    def backward(self, ctx, dy, grads):
        x, a, y = ctx
        da = self._act.backward(a, y, dy)
        x2, da2 = x.reshape(-1, x.shape[-1]), da.reshape(-1, da.shape[-1])
        add_grad(grads, (self, "kernel"), x2.T @ da2)
        if self.use_bias:
            add_grad(grads, (self, "bias"), da2.sum(axis=0))
        return da @ self.params["kernel"].T


class Dropout(Layer):
    """Zeroes a fraction `rate` of inputs while training (scaled by 1/(1-rate))."""

    min_ndim = 1
    supports_masking = True
    config_keys = ("rate", "noise_shape", "seed")

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = _rate("rate", rate)
        self.noise_shape = None if noise_shape is None else list(noise_shape)
        self.seed = seed
        self._rng = new_generator(seed)

    def forward(self, x, mask, training):
        if not training or self.rate == 0:
            return x, None
        shape = x.shape
        if self.noise_shape is not None:
            shape = tuple(s if n is None else n for s, n in zip(x.shape, self.noise_shape))
        keep = (self._rng.random(shape) >= self.rate) / (1.0 - self.rate)
        keep = keep.astype(x.dtype)
        return x * keep, keep

    def backward(self, ctx, dy, grads):
        return dy if ctx is None else dy * ctx


class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1·d2·...)."""

    variable_time = False

    def output_shape(self, input_shape):
        rest = input_shape[1:]
        return (input_shape[0], None if None in rest else int(np.prod(rest)))

    def forward(self, x, mask, training):
        return x.reshape(x.shape[0], -1), (x.shape if training else None)

    def backward(self, ctx, dy, grads):
        return dy.reshape(ctx)


class Embedding(Layer):
    """Integer ids (batch, time) -> vectors (batch, time, output_dim); mask_zero masks id 0."""

    min_ndim = 1
    config_keys = ("input_dim", "output_dim", "embeddings_initializer", "mask_zero")

    def __init__(
        self,
        input_dim,
        output_dim,
        embeddings_initializer="uniform",
        mask_zero=False,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.input_dim = _positive_int("input_dim", input_dim)
        self.output_dim = _positive_int("output_dim", output_dim)
        self.embeddings_initializer = embeddings_initializer
        initializers.get(embeddings_initializer, "embeddings_initializer")
        self.mask_zero = bool(mask_zero)
        self._rng = new_generator(seed)

    def cast_input(self, x):
        return _as_ids(self.name, x, self.input_dim)

    def check_input(self, shape):  # any rank and length: ids are looked up one by one
        if len(shape) < 1:
            raise ValueError(f"Embedding '{self.name}': expected ids of rank >= 1, got a scalar")

    def build(self, input_shape):
        init = initializers.get(self.embeddings_initializer, "embeddings_initializer")
        self._make("embeddings", (self.input_dim, self.output_dim), init, self._rng)

    def output_shape(self, input_shape):
        return tuple(input_shape) + (self.output_dim,)

    def compute_mask(self, x, mask):
        return (x != 0) if self.mask_zero else None

    def forward(self, x, mask, training):
        x = _as_ids(self.name, x, self.input_dim)
        return self.params["embeddings"][x], (x if training else None)

    def backward(self, ctx, dy, grads):
        dw = np.zeros_like(self.params["embeddings"])
        np.add.at(dw, ctx.ravel(), dy.reshape(-1, self.output_dim))
        add_grad(grads, (self, "embeddings"), dw)
        return None  # integer inputs have no gradient


def _as_ids(name, x, input_dim):
    x = np.asarray(x)
    if x.dtype.kind == "f":
        if not np.all(np.isfinite(x)) or np.any(x != np.round(x)):
            raise TypeError(f"{name}: expected integer token ids, got non-integer floats")
    elif x.dtype.kind not in "iub":
        raise TypeError(f"{name}: expected integer token ids, got dtype {x.dtype}")
    ids = x.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() >= input_dim):
        raise ValueError(
            f"{name}: token ids must be in [0, input_dim={input_dim}), got range "
            f"[{ids.min()}, {ids.max()}]"
        )
    return ids


class Masking(Layer):
    """Masks time steps whose features all equal mask_value (and zeroes them)."""

    min_ndim = 3
    supports_masking = True
    config_keys = ("mask_value",)

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = float(mask_value)

    def compute_mask(self, x, mask):
        return np.any(x != self.mask_value, axis=-1)

    def forward(self, x, mask, training):
        keep = np.any(x != self.mask_value, axis=-1, keepdims=True)
        return x * keep, (keep if training else None)

    def backward(self, ctx, dy, grads):
        return dy * ctx


class LayerNormalization(Layer):
    """Normalises the last axis: gamma · (x − mean) / sqrt(var + epsilon) + beta."""

    supports_masking = True
    config_keys = ("epsilon", "center", "scale")

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True, **kwargs):
        if axis not in (-1,):
            raise NotImplementedError(f"LayerNormalization: axis must be -1, got {axis!r}")
        super().__init__(**kwargs)
        self.epsilon, self.center, self.scale = _epsilon(epsilon), bool(center), bool(scale)

    def build(self, input_shape):
        if self.scale:
            self._make("gamma", (input_shape[-1],), initializers.ones, None)
        if self.center:
            self._make("beta", (input_shape[-1],), initializers.zeros, None)

    def forward(self, x, mask, training):
        xhat, inv = _normalize(x, self.epsilon)
        y = xhat * self.params["gamma"] if self.scale else xhat
        if self.center:
            y = y + self.params["beta"]
        return y, ((xhat, inv) if training else None)

    def backward(self, ctx, dy, grads):
        xhat, inv = ctx
        flat = lambda a: a.reshape(-1, a.shape[-1])  # noqa: E731
        if self.center:
            add_grad(grads, (self, "beta"), flat(dy).sum(axis=0))
        if self.scale:
            add_grad(grads, (self, "gamma"), flat(dy * xhat).sum(axis=0))
            dy = dy * self.params["gamma"]
        return _normalize_backward(dy, xhat, inv)


def _normalize(x, epsilon):
    """(xhat, inv): x standardised over its last axis, and 1/sqrt(var + epsilon)."""
    inv = 1.0 / np.sqrt(x.var(axis=-1, keepdims=True) + epsilon)
    return (x - x.mean(axis=-1, keepdims=True)) * inv, inv


def _normalize_backward(dxhat, xhat, inv):
    """d(loss)/dx from d(loss)/d(xhat) for xhat, inv = _normalize(x)."""
    mean_d = dxhat.mean(axis=-1, keepdims=True)
    mean_d_xhat = (dxhat * xhat).mean(axis=-1, keepdims=True)
    return inv * (dxhat - mean_d - xhat * mean_d_xhat)


class Conv1D(Layer):
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
        self.filters = _positive_int("filters", filters)
        self.kernel_size = _positive_int("kernel_size", _single(kernel_size))
        self.strides = _positive_int("strides", _single(strides))
        self.dilation_rate = _positive_int("dilation_rate", _single(dilation_rate))
        if padding not in ("valid", "causal", "same"):
            raise ValueError(f"padding: expected 'valid', 'causal' or 'same', got {padding!r}")
        if self.strides > 1 and self.dilation_rate > 1:
            raise ValueError(
                "Conv1D: strides > 1 with dilation_rate > 1 is not supported (as Keras)"
            )
        self.padding = padding
        self.activation = activations.get(activation).name
        self._act = activations.get(self.activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer, self.bias_initializer = kernel_initializer, bias_initializer
        initializers.get(kernel_initializer, "kernel_initializer")
        self._rng = new_generator(seed)

    def build(self, input_shape):
        init = initializers.get(self.kernel_initializer, "kernel_initializer")
        self._make("kernel", (self.kernel_size, input_shape[-1], self.filters), init, self._rng)
        if self.use_bias:
            binit = initializers.get(self.bias_initializer, "bias_initializer")
            self._make("bias", (self.filters,), binit, self._rng)

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
        B, T, C = x.shape
        left, right, out = self._geometry(T)
        if out == 0:
            span = (self.kernel_size - 1) * self.dilation_rate + 1
            raise ValueError(f"{self.name}: an input of {T} steps is shorter than the kernel's "
                             f"span of {span} steps (padding={self.padding!r})")  # fmt: skip
        xp = np.pad(x, ((0, 0), (left, right), (0, 0)))  # [B, left+T+right, C]
        cols = np.stack([xp[:, sl] for sl in self._taps(out)], axis=2)  # [B, out, k, C]
        k = self.kernel_size
        a = cols.reshape(B, out, k * C) @ self.params["kernel"].reshape(k * C, self.filters)
        if self.use_bias:
            a = a + self.params["bias"]
        y = self._act(a)
        return y, ((cols, a, y, xp.shape, left, T) if training else None)

    def backward(self, ctx, dy, grads):
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


class TimeDistributed(Layer):
    """Applies a layer to every time step: (batch, time, ...) -> (batch, time, ...)."""

    min_ndim = 3
    supports_masking = True

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer) or isinstance(layer, (_Recurrent, Bidirectional)):
            raise TypeError(f"layer: expected a non-recurrent Layer, got {type(layer).__name__}")
        kwargs.setdefault("name", "time_distributed_" + layer.name)
        kwargs.setdefault("input_shape", layer.input_shape)
        kwargs.setdefault("dtype", layer.dtype)
        super().__init__(**kwargs)
        self.layer = layer

    def sublayers(self):
        return [self.layer]

    def build(self, input_shape):
        self.layer.dtype = self.layer.dtype or self.dtype
        self.layer.ensure_built((None,) + tuple(input_shape[2:]))

    def output_shape(self, input_shape):
        inner = self.layer.output_shape((None,) + tuple(input_shape[2:]))
        return tuple(input_shape[:2]) + tuple(inner[1:])

    def forward(self, x, mask, training):
        B, T = x.shape[:2]
        y, ctx = self.layer.forward(x.reshape((B * T,) + x.shape[2:]), None, training)
        return y.reshape((B, T) + y.shape[1:]), ctx

    def backward(self, ctx, dy, grads):
        B, T = dy.shape[:2]
        dx = self.layer.backward(ctx, dy.reshape((B * T,) + dy.shape[2:]), grads)
        return None if dx is None else dx.reshape((B, T) + dx.shape[1:])

    def get_weights(self):
        return self.layer.get_weights()

    def _assign(self, weights):
        self.layer._assign(weights)

    def get_config(self):
        cfg = super().get_config()
        cfg["layer"] = serialize(self.layer)
        return cfg

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = deserialize(config["layer"])
        return cls(**config)


# ------------------------------------------------------------------------------------------
# Serialization of layer configs (architecture JSON in model files)
# ------------------------------------------------------------------------------------------

LAYER_CLASSES = {
    cls.__name__: cls
    for cls in (
        InputLayer,
        SimpleRNN,
        LSTM,
        GRU,
        Bidirectional,
        TimeDistributed,
        Embedding,
        Dense,
        Dropout,
        Flatten,
        Conv1D,
        LayerNormalization,
        LayerNormSimpleRNN,
        Masking,
    )
}


def serialize(layer: Layer) -> dict:
    cfg = layer.get_config()
    for k, v in cfg.items():
        if callable(v):
            raise ValueError(f"{layer.name}: cannot save {k}={v!r}; use a string name")
    return {"class_name": type(layer).__name__, "config": cfg}


def deserialize(spec) -> Layer:
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        raise ValueError(f"layer spec: expected {{'class_name', 'config'}}, got {spec!r:.200}")
    cls = LAYER_CLASSES.get(spec.get("class_name"))
    if cls is None:
        raise ValueError(f"layer spec: unknown layer class {spec.get('class_name')!r}")
    try:
        if cls is InputLayer:
            cfg = dict(spec["config"])
            return InputLayer(tuple(cfg.pop("shape")), **cfg)
        return cls.from_config(spec["config"])
    except TypeError as e:
        raise ValueError(f"layer spec for {cls.__name__}: {e}") from None
