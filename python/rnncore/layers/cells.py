"""Keras's cell API on the fused kernels: `RNN(LSTMCell(8))`, `RNN([GRUCell(8), GRUCell(4)])`.

A built-in cell (SimpleRNNCell, LSTMCell, GRUCell) holds the arguments of one step; `RNN` runs
each cell of its stack as the matching fused layer (SimpleRNN, LSTM, GRU) over the whole
sequence. A stack of cells equals a stack of layers that return sequences: Keras's stacked
cells pass each step's output up the stack, and the fused layers pass the whole sequence.
"""

from __future__ import annotations

import numpy as np

from .base import Layer
from .recurrent import GRU, LSTM, SimpleRNN

__all__ = ["GRUCell", "LSTMCell", "RNN", "SimpleRNNCell", "StackedRNNCells"]


# RNN's arguments, not a cell's.
_SEQUENCE_OPTIONS = {"return_sequences", "return_state", "go_backwards", "stateful",
                     "zero_output_for_mask"}  # fmt: skip


class _Cell:
    """One step's arguments for the fused layer `layer_class` (every argument it takes but
    the sequence options, which belong to RNN)."""

    layer_class: type = SimpleRNN
    state_count = 1

    def __init__(self, units, **kwargs):
        self.name = kwargs.pop("name", None)
        kwargs.pop("trainable", None)
        kwargs.pop("dtype", None)
        sequence_options = _SEQUENCE_OPTIONS & set(kwargs)
        if sequence_options:
            raise TypeError(f"{type(self).__name__}: {sorted(sequence_options)} belong to RNN")
        self.units = units
        self.options = kwargs
        self.layer_class(units, **kwargs)  # checks every argument now, as Keras's cell does

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

    def keras_name(self):
        """The weight group Keras gives this cell inside a stack (its class, snake case)."""
        return type(self).__name__.replace("RNNCell", "_rnn_cell").replace("Cell", "_cell").lower()

    def get_config(self):
        """{units, name, options} as the fused layer serializes them: what rebuilds the cell."""
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
    """Keras's SimpleRNNCell (activation tanh or relu), run as a fused SimpleRNN by RNN."""

    layer_class = SimpleRNN


class LSTMCell(_Cell):
    """Keras's LSTMCell, run as a fused LSTM by RNN."""

    layer_class = LSTM
    state_count = 2


class GRUCell(_Cell):
    """Keras's GRUCell (reset_after either way), run as a fused GRU by RNN."""

    layer_class = GRU


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
    if cls is None:
        raise ValueError(f"cell spec: unknown cell class {spec.get('class_name')!r}; expected "
                         f"one of {sorted(_CELLS)} or StackedRNNCells")  # fmt: skip
    return cls.from_config(spec["config"])


class RNN(Layer):
    """Keras's `RNN(cell)` for the built-in cells, on the fused kernels.

    Args:
        cell: A SimpleRNNCell, LSTMCell or GRUCell, a StackedRNNCells of them, or a list of
            them (stacked). User-written cells are not supported yet.
        return_sequences: Return every step's output, not only the last.
        return_state: Also return the final states (one cell only).
        go_backwards: Process the sequence in reverse (outputs in that order, as Keras).
        stateful: Keep the final states as the next batch's initial states.
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
        if not isinstance(cell, (_Cell, StackedRNNCells)):
            raise TypeError(f"cell: expected SimpleRNNCell, LSTMCell, GRUCell or a stack of "
                            f"them, got {type(cell).__name__} (user-written cells are not "
                            "supported yet)")  # fmt: skip
        cells = cell.cells if isinstance(cell, StackedRNNCells) else [cell]
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
        """The fused layers, bottom first."""
        return list(self._layers)

    def build(self, input_shape):
        """Builds each fused layer on the output shape of the one below."""
        shape = input_shape
        for sub in self._layers:
            sub.dtype = sub.dtype or self.dtype
            sub.ensure_built(shape)
            shape = sub.output_shape(shape)

    def output_shape(self, input_shape):
        """The top layer's output shape."""
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

    def forward(self, x, mask, training):
        """The fused layers up the stack."""
        ctxs = []
        for sub, m in zip(self._layers, self._masks(mask)):
            x, ctx = sub.forward(x, m, training)
            ctxs.append(ctx)
        return x, (ctxs if training else None)

    def backward(self, ctx, dy, grads):
        """The fused layers' backward passes, top first."""
        for sub, c in zip(reversed(self._layers), reversed(ctx)):
            dy = sub.backward(c, np.ascontiguousarray(dy), grads)
        return dy

    def reset_states(self):
        """Forgets the states a stateful RNN carries."""
        for sub in self._layers:
            sub.reset_states()

    def get_weights(self):
        """Each cell's weights in Keras's layout and order, bottom first."""
        return [w for sub in self._layers for w in sub.get_weights()]

    def _assign(self, weights):
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
