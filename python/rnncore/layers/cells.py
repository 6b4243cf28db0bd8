"""Keras's cell API on the fused kernels: `RNN(LSTMCell(8))`, `RNN([GRUCell(8), GRUCell(4)])`.

A built-in cell (SimpleRNNCell, LSTMCell, GRUCell) holds the arguments of one step; `RNN` runs
each cell of its stack as the matching fused layer (SimpleRNN, LSTM, GRU) over the whole
sequence. A stack of cells equals a stack of layers that return sequences: Keras's stacked
cells pass each step's output up the stack, and the fused layers pass the whole sequence.
"""

from __future__ import annotations

import inspect

import numpy as np

from .. import activations, initializers
from .._validate import positive_int
from ..activations import _sigmoid  # the one stable sigmoid, through tanh
from .base import LAYER_CLASSES, Layer, add_grad, deserialize, snake_case
from .recurrent import GRU, LSTM, SimpleRNN
from .tape import Tape, active, recording

__all__ = ["GRUCell", "LSTMCell", "RNN", "SimpleRNNCell", "StackedRNNCells"]


# RNN's arguments, not a cell's.
_SEQUENCE_OPTIONS = {"return_sequences", "return_state", "go_backwards", "stateful",
                     "zero_output_for_mask"}  # fmt: skip


class _Cell(Layer):
    """One step's arguments for the fused layer `layer_class` (every argument it takes but
    the sequence options, which belong to RNN). In RNN(cell) the fused layer holds the
    weights; called on its own, `cell(inputs, states)`, a cell is one step (SimpleRNNCell)
    with weights of its own, as inside a user-written cell."""

    layer_class: type = SimpleRNN
    state_count = 1

    def __init__(self, units, **kwargs):
        layer_args = {k: kwargs.pop(k) for k in ("name", "trainable", "dtype") if k in kwargs}
        super().__init__(**layer_args)
        sequence_options = _SEQUENCE_OPTIONS & set(kwargs)
        if sequence_options:
            raise TypeError(f"{type(self).__name__}: {sorted(sequence_options)} belong to RNN")
        self.units = units
        self.options = kwargs
        self.fused = self._check(units, kwargs)
        self._init_rng(kwargs.get("seed"))  # weights of the step-by-step use

    def _check(self, units, options) -> bool:
        """Checks every argument now, as Keras's cell does; whether the kernels run it."""
        self.layer_class(units, **options)
        return True

    @property
    def state_size(self):
        """Keras's state_size: units, or [units, units] for LSTM's h and c."""
        return self.units if self.state_count == 1 else [self.units] * self.state_count

    @property
    def output_size(self):
        """Features of each step's output."""
        return self.units

    def make_layer(self, **sequence_options):
        """The fused layer that runs this cell over a sequence."""
        return self.layer_class(self.units, **self.options, **sequence_options)

    gates = 1  # weight blocks per unit, in Keras's gate order

    def _bias_shape(self):
        return (self.gates * self.units,)

    def build(self, input_shape):
        """kernel, recurrent_kernel and bias for the step-by-step use (Keras layout)."""
        get, o, GH = initializers.get, self.options, self.gates * self.units
        self._make("kernel", (input_shape[-1], GH),
                   get(o.get("kernel_initializer", "glorot_uniform"), "kernel_initializer"),
                   self._rng)  # fmt: skip
        self._make("recurrent_kernel", (self.units, GH),
                   get(o.get("recurrent_initializer", "orthogonal"), "recurrent_initializer"),
                   self._rng)  # fmt: skip
        if o.get("use_bias", True):
            bias_init = get(o.get("bias_initializer", "zeros"), "bias_initializer")
            self._make("bias", self._bias_shape(), bias_init, self._rng)

    def _step_inputs(self, inputs, states):
        """inputs and the states as arrays of the compute dtype; the weights built."""
        x = self.cast_input(inputs)
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        if len(states) != self.state_count:
            raise ValueError(f"{self.name}: expected {self.state_count} states, got "
                             f"{len(states)}")  # fmt: skip
        self.ensure_built(x.shape)
        return x, [self.cast_input(s) for s in states]

    def _record(self, inputs, outputs, backward) -> None:
        """Notes this step on the active tape (a user call() that trains), if any."""
        tape = active()
        if tape is not None:
            tape.record(f"cell {self.name!r}", inputs, outputs, backward)

    def _weight_grads(self, grads, x, h, dz_x, dz_h) -> None:
        add_grad(grads, (self, "kernel"), x.T @ dz_x)
        add_grad(grads, (self, "recurrent_kernel"), h.T @ dz_h)

    def keras_name(self):
        """The weight group Keras gives this cell inside a stack (its class, snake case)."""
        return snake_case(type(self).__name__)

    def get_config(self):
        """{units, name, options} as the fused layer serializes them: what rebuilds the cell."""
        if not self.fused:
            return {"name": self.name, "units": self.units, **self.options}
        cfg = self.make_layer().get_config()
        for key in _SEQUENCE_OPTIONS | {"trainable", "dtype", "input_shape"}:
            cfg.pop(key, None)
        cfg["name"] = self.name
        return cfg

    @classmethod
    def from_config(cls, config):
        """A new cell from `get_config()`'s dict."""
        return cls(**config)


class SimpleRNNCell(_Cell):
    """Keras's SimpleRNNCell: run as a fused SimpleRNN by RNN (activation tanh or relu), or
    called one step at a time, `output, [h] = cell(inputs, [h])`, with any activation (None
    for linear, as the forecasting chapter's layer-normalised cell uses it)."""

    layer_class = SimpleRNN

    def _check(self, units, options) -> bool:
        act = options.get("activation", "tanh")
        if act in ("tanh", "relu"):
            return super()._check(units, options)
        activations.get(act)  # any element-wise activation, for the step-by-step use
        positive_int("units", units)
        return False

    def __call__(self, inputs, states, training=False):
        """One step: (output, [new state]) = act(inputs·kernel + h·recurrent_kernel + bias)."""
        x, (h,) = self._step_inputs(inputs, states)
        p = self.params
        a = x @ p["kernel"] + h @ p["recurrent_kernel"] + p.get("bias", 0)
        act = activations.get(self.options.get("activation", "tanh"))
        y = act._forward(a)

        def backward(d, grads):
            da = act.backward(a, y, d[0])
            self._weight_grads(grads, x, h, da, da)
            if "bias" in p:
                add_grad(grads, (self, "bias"), da.sum(axis=0))
            return [da @ p["kernel"].T, da @ p["recurrent_kernel"].T]

        self._record([x, h], [y], backward)
        return y, [y]


class LSTMCell(_Cell):
    """Keras's LSTMCell: run as a fused LSTM by RNN, or called one step at a time,
    `h, [h, c] = cell(inputs, [h, c])` (gates i, f, c, o, as Keras)."""

    layer_class = LSTM
    state_count = 2
    gates = 4

    def build(self, input_shape):
        """The weights; with unit_forget_bias the forget gate's bias starts at 1 (Keras)."""
        super().build(input_shape)
        if "bias" in self.params and self.options.get("unit_forget_bias", True):
            self.params["bias"][self.units : 2 * self.units] += 1

    def __call__(self, inputs, states, training=False):
        """One step: the new h (the output) and [h, c]."""
        x, (h, c) = self._step_inputs(inputs, states)
        p, H = self.params, self.units
        z = x @ p["kernel"] + h @ p["recurrent_kernel"] + p.get("bias", 0)
        i, f, o = (_sigmoid(z[:, k * H : (k + 1) * H]) for k in (0, 1, 3))
        g = np.tanh(z[:, 2 * H : 3 * H])
        c_new = f * c + i * g
        tc = np.tanh(c_new)
        h_new = o * tc

        def backward(d, grads):
            dh, dc = d
            dc = dc + dh * o * (1 - tc * tc)
            dz = np.concatenate([dc * g * i * (1 - i), dc * c * f * (1 - f),
                                 dc * i * (1 - g * g), dh * tc * o * (1 - o)], axis=1)  # fmt: skip
            self._weight_grads(grads, x, h, dz, dz)
            if "bias" in p:
                add_grad(grads, (self, "bias"), dz.sum(axis=0))
            return [dz @ p["kernel"].T, dz @ p["recurrent_kernel"].T, dc * f]

        self._record([x, h, c], [h_new, c_new], backward)
        return h_new, [h_new, c_new]


class GRUCell(_Cell):
    """Keras's GRUCell (reset_after either way): run as a fused GRU by RNN, or called one
    step at a time, `h, [h] = cell(inputs, [h])` (gates z, r, h, as Keras)."""

    layer_class = GRU
    gates = 3

    def _bias_shape(self):
        H3 = 3 * self.units
        return (2, H3) if self.options.get("reset_after", True) else (H3,)

    def __call__(self, inputs, states, training=False):
        """One step: the new h (the output) and [h]."""
        x, (h,) = self._step_inputs(inputs, states)
        p, H = self.params, self.units
        after = self.options.get("reset_after", True)
        bias = p.get("bias")
        bx = 0 if bias is None else (bias[0] if after else bias)
        mx = x @ p["kernel"] + bx  # input parts of z, r, candidate
        R = p["recurrent_kernel"]
        inner = h @ (R if after else R[:, : 2 * H])
        if after and bias is not None:
            inner = inner + bias[1]
        z = _sigmoid(mx[:, :H] + inner[:, :H])
        r = _sigmoid(mx[:, H : 2 * H] + inner[:, H : 2 * H])
        rh = r * inner[:, 2 * H :] if after else (r * h) @ R[:, 2 * H :]
        hh = np.tanh(mx[:, 2 * H :] + rh)
        h_new = z * h + (1 - z) * hh

        def backward(d, grads):
            dh = d[0]
            a_h = dh * (1 - z) * (1 - hh * hh)
            if after:
                dr = a_h * inner[:, 2 * H :]
                d_inner_h = a_h * r
            else:
                du = a_h @ R[:, 2 * H :].T  # u = r * h
                dr = du * h
            a_z = dh * (h - hh) * z * (1 - z)
            a_r = dr * r * (1 - r)
            dx_parts = np.concatenate([a_z, a_r, a_h], axis=1)
            dh_prev = dh * z
            if after:
                d_inner = np.concatenate([a_z, a_r, d_inner_h], axis=1)
                self._weight_grads(grads, x, h, dx_parts, d_inner)
                dh_prev = dh_prev + d_inner @ R.T
                if bias is not None:
                    add_grad(grads, (self, "bias"), np.stack([dx_parts.sum(0), d_inner.sum(0)]))
            else:
                d_zr = np.concatenate([a_z, a_r], axis=1)
                dR = np.concatenate([h.T @ d_zr, (r * h).T @ a_h], axis=1)
                add_grad(grads, (self, "kernel"), x.T @ dx_parts)
                add_grad(grads, (self, "recurrent_kernel"), dR)
                dh_prev = dh_prev + d_zr @ R[:, : 2 * H].T + du * r
                if bias is not None:
                    add_grad(grads, (self, "bias"), dx_parts.sum(0))
            return [dx_parts @ p["kernel"].T, dh_prev]

        self._record([x, h], [h_new], backward)
        return h_new, [h_new]


_CELLS = {c.__name__: c for c in (SimpleRNNCell, LSTMCell, GRUCell)}


class StackedRNNCells:
    """Keras's StackedRNNCells: cells run one above the other at each step."""

    def __init__(self, cells, **kwargs):
        self.cells = list(cells)
        if not self.cells or not all(isinstance(c, _Cell) for c in self.cells):
            raise TypeError("cells: expected a non-empty list of SimpleRNNCell, LSTMCell or "
                            f"GRUCell, got {[type(c).__name__ for c in self.cells]}")  # fmt: skip

    @property
    def state_size(self):
        """Each cell's state_size, bottom first."""
        return [c.state_size for c in self.cells]

    @property
    def output_size(self):
        """The top cell's output features."""
        return self.cells[-1].output_size

    def keras_names(self):
        """The weight groups Keras gives the cells, bottom first (repeats numbered)."""
        used: dict = {}
        names = []
        for cell in self.cells:
            base = cell.keras_name()
            names.append(base if base not in used else f"{base}_{used[base]}")
            used[base] = used.get(base, 0) + 1
        return names

    def get_config(self):
        """{cells: [serialized cells]}."""
        return {"cells": [_serialize_cell(c) for c in self.cells]}

    @classmethod
    def from_config(cls, config):
        """A new stack from `get_config()`'s dict."""
        return cls([_deserialize_cell(c) for c in config["cells"]])


def _serialize_cell(cell):
    return {"class_name": type(cell).__name__, "config": cell.get_config()}


def _deserialize_cell(spec):
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        raise ValueError(f"cell spec: expected {{'class_name', 'config'}}, got {spec!r:.200}")
    if spec.get("class_name") == "StackedRNNCells":
        return StackedRNNCells.from_config(spec["config"])
    cls = _CELLS.get(str(spec.get("class_name")))
    if cls is None and str(spec.get("class_name")) in LAYER_CLASSES:  # a user-written cell
        return deserialize(spec)
    if cls is None:
        raise ValueError(f"cell spec: unknown cell class {spec.get('class_name')!r}; expected "
                         f"one of {sorted(_CELLS)} or StackedRNNCells")  # fmt: skip
    return cls.from_config(spec["config"])


class RNN(Layer):
    """Keras's `RNN(cell)` for the built-in cells, on the fused kernels.

    Args:
        cell: A SimpleRNNCell, LSTMCell or GRUCell, a StackedRNNCells of them, or a list of
            them (stacked): run on the fused kernels. Or a user-written cell: a Layer with
            `state_size` and `call(inputs, states) -> (output, new_states)`, run step by step;
            to train, it also defines `backward(grad_output, grad_states, inputs, states,
            output, new_states) -> (grad_inputs, grad_states)`, adding its weights'
            gradients with `add_gradient`.
        return_sequences: Return every step's output, not only the last.
        return_state: Also return the final states (not with stacked cells).
        go_backwards: Process the sequence in reverse (outputs in that order, as Keras).
        stateful: Keep the final states as the next batch's initial states (built-in cells).
        unroll: Accepted for Keras compatibility; the fused kernels never unroll.
        zero_output_for_mask: Masked steps output zeros instead of the previous output.
        **kwargs: Layer arguments (name, input_shape, dtype, trainable).
    """

    min_ndim = 3
    supports_masking = True

    def __init__(self, cell, return_sequences=False, return_state=False, go_backwards=False,
                 stateful=False, unroll=False, zero_output_for_mask=False, **kwargs):  # fmt: skip
        if isinstance(cell, (list, tuple)):
            cell = StackedRNNCells(cell)
        user = _is_user_cell(cell)
        if not user and not isinstance(cell, (_Cell, StackedRNNCells)):
            raise TypeError(f"cell: expected SimpleRNNCell, LSTMCell, GRUCell, a stack of "
                            f"them, or a Layer with state_size and call(inputs, states), got "
                            f"{type(cell).__name__}")  # fmt: skip
        if user and stateful:
            raise NotImplementedError("RNN: stateful with a user-written cell is not supported")
        cells = [] if user else (cell.cells if isinstance(cell, StackedRNNCells) else [cell])
        if return_state and len(cells) > 1:
            raise NotImplementedError("RNN: return_state with stacked cells is not supported")
        super().__init__(**kwargs)
        self.cell = cell
        self.return_sequences, self.return_state = bool(return_sequences), bool(return_state)
        self.go_backwards, self.stateful = bool(go_backwards), bool(stateful)
        self.unroll, self.zero_output_for_mask = bool(unroll), bool(zero_output_for_mask)
        last = len(cells) - 1
        self._layers = [c.make_layer(name=f"{self.name}_{i}",
                                     return_sequences=self.return_sequences or i < last,
                                     return_state=self.return_state,
                                     go_backwards=self.go_backwards and i == 0,
                                     stateful=self.stateful,
                                     zero_output_for_mask=self.zero_output_for_mask)
                        for i, c in enumerate(cells)]  # fmt: skip

    def sublayers(self):
        """The fused layers, bottom first (or the user's cell)."""
        return [self.cell] if _is_user_cell(self.cell) else list(self._layers)

    def build(self, input_shape):
        """Builds each fused layer on the output shape of the one below (a user's cell on
        one step's shape)."""
        if _is_user_cell(self.cell):
            cell = self.cell
            cell.dtype = cell.dtype or self.dtype
            cell.ensure_built((input_shape[0], input_shape[2]))
            # one step on zeros builds the layers the cell calls, so its weights exist now
            zeros = [np.zeros((1, n), self.compute_dtype) for n in _state_sizes(cell)]
            cell.call(np.zeros((1, input_shape[2]), self.compute_dtype), zeros)
            return
        shape = input_shape
        for sub in self._layers:
            sub.dtype = sub.dtype or self.dtype
            sub.ensure_built(shape)
            shape = sub.output_shape(shape)

    def output_shape(self, input_shape):
        """The top layer's output shape."""
        if _is_user_cell(self.cell):
            out = _output_size(self.cell)
            B, T = input_shape[0], input_shape[1]
            return (B, T, out) if self.return_sequences else (B, out)
        shape = input_shape
        for sub in self._layers:
            shape = sub.output_shape(shape)
        return shape

    def compute_mask(self, x, mask):
        """The input mask when returning sequences (as Keras, also with go_backwards)."""
        return mask if self.return_sequences else None

    def _masks(self, mask):
        """The mask each fused layer sees: after a go_backwards layer, steps come reversed."""
        out = [mask]
        for sub in self._layers[:-1]:
            out.append(None if mask is None else (out[-1][:, ::-1] if sub.go_backwards
                                                  else out[-1]))  # fmt: skip
        return out

    def forward(self, x, mask, training, initial_state=None):
        """The fused layers up the stack (a user's cell: its call, step by step)."""
        if _is_user_cell(self.cell):
            return _cell_loop(self, x, mask, training, initial_state)
        if initial_state is not None:
            raise NotImplementedError("RNN: initial_state is supported with user-written cells")
        ctxs = []
        for sub, m in zip(self._layers, self._masks(mask)):
            x, ctx = sub.forward(x, m, training)
            ctxs.append(ctx)
        return x, (ctxs if training else None)

    def backward(self, ctx, dy, grads):
        """The fused layers' backward passes, top first (a user's cell: its backward, step by
        step in reverse)."""
        if _is_user_cell(self.cell):
            return _cell_loop_backward(self, ctx, dy, grads)
        for sub, c in zip(reversed(self._layers), reversed(ctx)):
            dy = sub.backward(c, np.ascontiguousarray(dy), grads)
        return dy

    @property
    def has_cell_state(self) -> bool:
        """Whether the layer carries two states (for initial_state and return_state)."""
        if _is_user_cell(self.cell):
            return len(_state_sizes(self.cell)) == 2
        return self._layers[-1].has_cell_state

    @property
    def units(self) -> int:
        """The state size (the first state's, for return_state's shapes)."""
        if _is_user_cell(self.cell):
            return _state_sizes(self.cell)[0]
        return self._layers[-1].units

    def reset_states(self):
        """Forgets the states a stateful RNN carries."""
        for sub in self.sublayers():
            sub.reset_states()

    def __call__(self, x, training=False, mask=None, initial_state=None):
        """As every layer's call; also takes initial_state (arrays, or symbolic tensors in a
        graph)."""
        from .graph import call_symbolic, is_symbolic

        if is_symbolic(x):
            return call_symbolic(self, x, initial_state)
        x = self.cast_input(x)
        self.ensure_built(x.shape)
        return self.forward(x, mask, bool(training), initial_state)[0]

    def get_weights(self):
        """Each cell's weights in Keras's layout and order, bottom first."""
        return [w for sub in self.sublayers() for w in sub.get_weights()]

    def _assign(self, weights):
        if _is_user_cell(self.cell):
            self.cell._assign(weights)
            return
        start = 0
        for sub in self._layers:
            n = len(sub.get_weights())
            sub._assign(weights[start : start + n])
            start += n

    def get_config(self):
        """The config with the cell serialized."""
        cfg = super().get_config()
        cfg.update(cell=_serialize_cell(self.cell), return_sequences=self.return_sequences,
                   return_state=self.return_state, go_backwards=self.go_backwards,
                   stateful=self.stateful, unroll=self.unroll,
                   zero_output_for_mask=self.zero_output_for_mask)  # fmt: skip
        return cfg

    @classmethod
    def from_config(cls, config):
        """An RNN from `get_config()`'s dict."""
        config = dict(config)
        if "cell" not in config:
            raise ValueError("RNN config: expected a 'cell' entry")
        config["cell"] = _deserialize_cell(config["cell"])
        return cls(**config)


# ---- user-written cells, run step by step ----


def _is_user_cell(cell) -> bool:
    """A Layer with state_size and call(inputs, states): Keras's cell protocol."""
    return isinstance(cell, Layer) and hasattr(cell, "state_size") and hasattr(cell, "call")


def _state_sizes(cell) -> list:
    size = cell.state_size
    return [int(v) for v in size] if isinstance(size, (list, tuple)) else [int(size)]


def _output_size(cell) -> int:
    return int(getattr(cell, "output_size", None) or _state_sizes(cell)[0])


def _cell_loop(rnn, x, mask, training, initial_state):
    """The user's cell over every step: states kept and the previous output repeated at
    masked steps (zeros with zero_output_for_mask), as Keras's RNN does."""
    cell, (B, T, _) = rnn.cell, x.shape
    sizes = _state_sizes(cell)
    if initial_state is None:
        states = [np.zeros((B, n), rnn.compute_dtype) for n in sizes]
    else:
        given = initial_state if isinstance(initial_state, (list, tuple)) else [initial_state]
        states = [np.asarray(s, rnn.compute_dtype) for s in given]
        want = [(B, n) for n in sizes]
        if [s.shape for s in states] != want:
            raise ValueError(f"{rnn.name}: initial_state expected shapes {want}, got "
                             f"{[s.shape for s in states]}")  # fmt: skip
    takes_training = "training" in inspect.signature(cell.call).parameters
    kwargs = {"training": training} if takes_training else {}
    prev = np.zeros((B, _output_size(cell)), rnn.compute_dtype)
    steps, outs = [], []
    # a cell without backward() that chains rnncore's pieces trains through a tape per step
    taped = training and getattr(type(cell), "_backward_of_user", None) is None
    for t in range(T - 1, -1, -1) if rnn.go_backwards else range(T):
        xt, tape = x[:, t], None
        if taped:
            tape = Tape(cell.name, True, [xt, *states])
            with recording(tape):
                y, new = cell.call(xt, list(states), **kwargs)
        else:
            y, new = cell.call(xt, list(states), **kwargs)
        y, new = np.asarray(y), [np.asarray(v) for v in (new if isinstance(new, (list, tuple))
                                                         else [new])]  # fmt: skip
        m = None if mask is None else mask[:, t, None].astype(y.dtype)
        steps.append((t, xt, list(states), y, new, m, tape))  # the cell's own outputs
        if m is not None:  # masked rows keep their states and repeat their output
            new = [m * n + (1 - m) * s for n, s in zip(new, states)]
            y_out = m * y + (0 if rnn.zero_output_for_mask else (1 - m) * prev)
        else:
            y_out = y
        states, prev = new, y_out
        outs.append(y_out)
    seq = np.stack(outs, axis=1)  # in processing order, as Keras returns it
    y = seq if rnn.return_sequences else outs[-1]
    if rnn.return_state:
        y = [y, *states]
    return y, ((steps, x.shape) if training else None)


def _tape_backward(cell, g_y, g_new, xt, states, y, new, tape):
    """A step's gradients from the calls its cell recorded (no backward() of its own)."""
    g = tape.gradients([y, *new], [g_y, *g_new], cell._grads)
    return g[0], g[1:]


def _cell_loop_backward(rnn, ctx, dy, grads):
    """Back through the steps in reverse, each through the cell's backward(grad_output,
    grad_states, inputs, states, output, new_states) -> (grad_inputs, grad_states)."""
    steps, x_shape = ctx
    cell = rnn.cell
    backward = getattr(type(cell), "_backward_of_user", None)
    if backward is None and steps[0][6] is not None and steps[0][6].ops:
        backward = _tape_backward
    if backward is None:
        raise NotImplementedError(
            f"{rnn.name}: the cell {type(cell).__name__} has no backward(grad_output, "
            "grad_states, inputs, states, output, new_states); define one to train it "
            "(inference works without)"
        )
    dstates = [np.zeros_like(s) for s in steps[-1][4]]
    if rnn.return_state:
        dy, given = dy[0], dy[1:]
        dstates = [d if g is None else d + g for d, g in zip(dstates, given)]
    n = len(steps)
    dseq = dy if rnn.return_sequences else None
    dx = np.zeros(x_shape, dy.dtype)
    carry = np.zeros_like(steps[-1][3])  # d(loss)/d(previous output), from masked steps
    cell._grads = grads
    try:
        for k in range(n - 1, -1, -1):
            t, xt, states, y, new, m, tape = steps[k]
            g_out = carry + (dseq[:, k] if dseq is not None else (dy if k == n - 1 else 0))
            g_y, g_new, keep = g_out, dstates, None
            if m is not None:
                g_y, keep = g_out * m, [d * (1 - m) for d in dstates]
                g_new = [d * m for d in dstates]
                carry = 0 * g_out if rnn.zero_output_for_mask else g_out * (1 - m)
            else:
                carry = np.zeros_like(g_out)
            if backward is _tape_backward:
                g_x, g_states = _tape_backward(cell, g_y, g_new, xt, states, y, new, tape)
            else:
                g_x, g_states = backward(cell, g_y, g_new, xt, states, y, new)
            g_states = list(g_states) if isinstance(g_states, (list, tuple)) else [g_states]
            dstates = g_states if keep is None else [a + b for a, b in zip(g_states, keep)]
            dx[:, t] = g_x
    finally:
        cell._grads = None
    rnn.last_state_grads = dstates
    return dx
