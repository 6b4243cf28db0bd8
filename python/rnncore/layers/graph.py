"""Keras's functional API, the recording side: `Input(...)` gives a symbolic tensor, and a
layer called on symbolic tensors records a `Node` (the call) and returns new symbolic
tensors. `rnncore.Model(inputs, outputs)` (functional.py) runs the recorded graph.
"""

from __future__ import annotations

import itertools
from typing import Any

from .base import InputLayer, shape_str


class KerasTensor:
    """A placeholder for an array in a functional graph: its shape (batch axis None), dtype,
    and the call (`node`, output `index`) that produces it."""

    def __init__(self, shape, dtype, node: Node, index: int = 0):
        self.shape = tuple(shape)
        self.dtype = dtype
        self.node, self.index = node, index

    @property
    def ndim(self) -> int:
        """Number of axes, the batch axis included."""
        return len(self.shape)

    @property
    def name(self) -> str:
        """The producing layer's name (with the output index after a slash when several)."""
        layer = self.node.layer
        return layer.name if len(self.node.outputs) == 1 else f"{layer.name}/{self.index}"

    def __repr__(self):
        return f"<KerasTensor shape={shape_str(self.shape)} from {self.node.layer.name!r}>"

    def __array__(self, *args, **kwargs):
        raise TypeError(
            f"{self!r} is symbolic (a graph placeholder, from Input): it holds no values; "
            "build a rnncore.Model(inputs, outputs) and call predict"
        )


_serials = itertools.count()


class Node:
    """One call of `layer` in a graph: its input tensors (a list when `many`), the tensors
    passed as `initial_state`, and the output tensors it made."""

    def __init__(self, layer, inputs, many: bool, states):
        self.layer, self.inputs, self.many, self.states = layer, list(inputs), many, list(states)
        self.outputs: list[KerasTensor] = []
        self.serial = next(_serials)  # calls in the order made: a shared layer's node index

    def parents(self) -> list[KerasTensor]:
        """Every tensor this call reads."""
        return self.inputs + self.states


def is_symbolic(x) -> bool:
    """Whether x is a KerasTensor or a list/tuple of them."""
    if isinstance(x, (list, tuple)):
        return any(isinstance(t, KerasTensor) for t in x)
    return isinstance(x, KerasTensor)


def Input(shape=None, batch_size=None, dtype=None, name=None, batch_shape=None) -> KerasTensor:
    """Keras's `Input`: a symbolic tensor for a model's input, of per-sample `shape`.

    Start a Sequential with it (`Sequential([Input((T, F)), LSTM(8)])`) or call layers on it
    to build a functional `rnncore.Model(inputs, outputs)`.

    Args:
        shape: The shape of one sample (no batch axis); None entries take any size.
        batch_size: A fixed batch size, shown by `summary` and kept in model files.
        dtype: The dtype inputs are cast to ("int32" keeps token ids whole).
        name: The input's name (dict inputs are keyed by it).
        batch_shape: (batch_size, *shape) instead of shape and batch_size.
    """
    layer = InputLayer(shape, dtype=dtype, name=name, batch_size=batch_size,
                       batch_shape=batch_shape)  # fmt: skip
    return input_tensor(layer)


def input_tensor(layer: InputLayer) -> KerasTensor:
    """The symbolic tensor an InputLayer produces (made once per layer)."""
    tensor = getattr(layer, "tensor", None)
    if tensor is None:
        node = Node(layer, [], False, [])
        dtype = layer.input_dtype
        node.outputs = [KerasTensor((layer.batch_size, *layer.input_shape), dtype, node)]
        tensor = layer.tensor = node.outputs[0]
    return tensor


def call_symbolic(layer, x, initial_state=None) -> Any:
    """Records `layer(x)` on symbolic tensors: builds the layer for their shapes and returns
    its output tensor (a list for several outputs: return_state, merge_mode=None)."""
    many = isinstance(x, (list, tuple))
    inputs = list(x) if many else [x]
    if not all(isinstance(t, KerasTensor) for t in inputs):
        raise TypeError(f"{layer.name}: mix of symbolic tensors and arrays in one call")
    if initial_state is None:
        states = []
    elif isinstance(initial_state, (list, tuple)):
        states = list(initial_state)
    else:
        states = [initial_state]
    if not all(isinstance(t, KerasTensor) for t in states):
        raise TypeError(f"{layer.name}: initial_state: expected symbolic tensors in a graph")
    if states and not hasattr(layer, "has_cell_state"):
        raise TypeError(f"{layer.name}: only recurrent layers take initial_state")
    shape: Any = [t.shape for t in inputs] if many else inputs[0].shape
    layer.ensure_built(shape)
    node = Node(layer, inputs, many, states)
    out = layer.output_shape(shape)
    shapes = out if isinstance(out, list) else [out]
    if getattr(layer, "return_state", False):
        n_states = 2 if layer.has_cell_state else 1
        shapes = shapes + [(out[0], layer.units)] * n_states
    dtype = inputs[0].dtype if layer.dtype is None else layer.dtype
    node.outputs = [KerasTensor(s, dtype, node, i) for i, s in enumerate(shapes)]
    return node.outputs if len(node.outputs) > 1 else node.outputs[0]
