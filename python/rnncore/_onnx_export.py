"""Sequential model -> ONNX graph (standard operators only, opset >= 17).

What maps to what:
  SimpleRNN / LSTM / GRU      RNN / LSTM / GRU (time-major in the op, transposed around it);
                              gate blocks reordered: LSTM i,f,g,o -> i,o,f,c; GRU r,z,n -> z,r,h;
                              GRU reset_after -> linear_before_reset=1
  Bidirectional               direction="bidirectional"; merge concat / sum / ave / mul
  go_backwards                direction="reverse" (+ a time flip when returning sequences)
  Embedding(mask_zero), Masking
                              a per-row count of unmasked steps fed as `sequence_lens`. ONNX
                              only knows right padding (lengths), so exported masks assume
                              post-padded input; outputs at padded steps are zero
  Dense, TimeDistributed(Dense), Conv1D, LayerNormalization, Flatten, Dropout (identity)
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from . import _cells
from . import layers as L
from ._files import atomic_write
from ._version import __version__

_ACTIVATION_OPS = {"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid", "softplus": "Softplus",
                   "elu": "Elu"}  # fmt: skip


class _Graph:
    """Accumulates nodes and initializers; names are unique by construction."""

    def __init__(self, dtype, opset):
        self.nodes, self.inits, self.dtype, self.opset, self._n = [], [], dtype, opset, 0
        self.elem_type = helper.np_dtype_to_tensor_dtype(dtype)

    def name(self, hint):
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, value, hint="c", dtype=None):
        arr = np.asarray(value, dtype=dtype or self.dtype)
        name = self.name(hint)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type, inputs, hint=None, n_out=1, **attrs):
        outs = [self.name(hint or op_type.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, **attrs))
        return outs[0] if n_out == 1 else outs

    def activation(self, x, name):
        if name == "linear":
            return x
        if name == "softmax":
            return self.op("Softmax", [x], axis=-1)
        return self.op(_ACTIVATION_OPS[name], [x])

    def reduce(self, op_type, x, axes, keepdims):
        # ReduceSum takes axes as an input from opset 13, the others only from opset 18
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op(op_type, [x, self.i64(axes)], keepdims=keepdims)
        return self.op(op_type, [x], axes=axes, keepdims=keepdims)

    def i64(self, values):
        return self.const(values, "shape", np.int64)


def export(model, path, opset):
    if opset < 17:
        raise ValueError(f"opset: expected >= 17 (LayerNormalization), got {opset}")
    if model.built_input_shape is None:
        raise ValueError("model: build it first (start it with rnncore.Input(shape))")
    layers = [layer for layer in model.layers if not isinstance(layer, L.InputLayer)]
    ids_in = bool(layers) and isinstance(layers[0], L.Embedding)
    dtype = np.dtype(model.layers[-1].compute_dtype)
    g = _Graph(dtype, opset)
    x_shape = ["batch", *(d if d is not None else f"d{i}" for i, d in
                          enumerate(model.built_input_shape))]  # fmt: skip
    elem = TensorProto.INT64 if ids_in else g.elem_type
    state = {"x": "x", "lens": None}
    for layer in layers:
        _LAYER_EXPORTERS[_kind(layer)](g, layer, state)
        if type(layer).__name__ not in _MASK_SOURCES and layer.compute_mask(None, True) is None:
            state["lens"] = None  # rnncore (as Keras) drops the mask here: so does the graph
    g.nodes.append(helper.make_node("Identity", [state["x"]], ["y"]))
    graph = helper.make_graph(
        g.nodes,
        "rnncore_sequential",
        [helper.make_tensor_value_info("x", elem, x_shape)],
        [helper.make_tensor_value_info("y", g.elem_type, _output_dims(model))],
        g.inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="rnncore", producer_version=__version__)  # fmt: skip
    onnx.checker.check_model(proto)
    with atomic_write(path, prefix=".onnx-") as f:
        f.write(proto.SerializeToString())
    return path


def _output_dims(model):
    shape = (None, *model.built_input_shape)
    for layer in model.layers:
        shape = layer.output_shape(shape)
    return ["batch" if i == 0 else (f"y{i}" if d is None else d) for i, d in enumerate(shape)]


_MASK_SOURCES = ("Embedding", "Masking")  # they make the mask (sequence_lens) themselves


def _kind(layer):
    name = type(layer).__name__
    if name not in _LAYER_EXPORTERS:
        raise NotImplementedError(f"export_onnx: {name} '{layer.name}' has no ONNX mapping")
    return name


# ---- masks ----------------------------------------------------------------------------------


def _lengths_from(g, keep):
    """int32 [B] count of kept steps from a boolean keep [B, T]."""
    count = g.reduce("ReduceSum", g.op("Cast", [keep], to=TensorProto.INT64), [1], keepdims=0)
    return g.op("Cast", [count], "lens", to=TensorProto.INT32)


def _embedding(g, layer, state):
    ids = state["x"]
    if layer.mask_zero:
        state["lens"] = _lengths_from(g, g.op("Not", [g.op("Equal", [ids, g.i64(0)])]))
    state["x"] = g.op("Gather", [g.const(layer.params["embeddings"], "embeddings"), ids], axis=0)


def _masking(g, layer, state):
    x = state["x"]
    differs = g.op("Not", [g.op("Equal", [x, g.const(layer.mask_value)])])  # [B, T, F]
    keep = g.reduce("ReduceMax", g.op("Cast", [differs], to=TensorProto.INT64), [-1], keepdims=0)
    state["lens"] = _lengths_from(g, keep)
    keep_f = g.op("Unsqueeze", [g.op("Cast", [keep], to=g.elem_type), g.i64([-1])])
    state["x"] = g.op("Mul", [x, keep_f])


# ---- recurrent ------------------------------------------------------------------------------


def onnx_weights(cell: _cells.CellKind, w_ih, w_hh, b_ih=None, b_hh=None):
    """(W [G·H, I], R [G·H, H], B [2·G·H]) in ONNX's gate order from our (PyTorch-layout)
    weights of one direction of a `cell`; a missing bias is zeros."""
    order = cell.onnx_order
    H = w_hh.shape[1]
    blocks = lambda a: np.concatenate([a[k * H : (k + 1) * H] for k in order])  # noqa: E731
    zeros = np.zeros(len(order) * H, w_ih.dtype)
    bias = [zeros if b is None else blocks(b) for b in (b_ih, b_hh)]
    return blocks(w_ih), blocks(w_hh), np.concatenate(bias)


def _onnx_weights(layer):
    p = layer.params
    return onnx_weights(layer.cell, p["w_ih"], p["w_hh"], p.get("b_ih"), p.get("b_hh"))


def _check_recurrent(layer, state):
    if layer.return_state:
        raise NotImplementedError(f"export_onnx: '{layer.name}' has return_state=True")
    if layer.go_backwards and state["lens"] is not None and layer.return_sequences:
        raise NotImplementedError(f"export_onnx: '{layer.name}' is go_backwards with a mask")


def _run_cell(g, layers, direction, state):
    """The ONNX op over one or two same-kind layers; returns (Y [T, D, B, H], Y_h [D, B, H])."""
    first = layers[0]
    cell = first.cell
    W, R, B = zip(*(_onnx_weights(layer) for layer in layers))
    attrs = {"hidden_size": first.units, "direction": direction}
    if cell.family == "gru":
        attrs["linear_before_reset"] = int(first.reset_after)
    if cell.family == "rnn":  # each direction its own
        attrs["activations"] = [layer.activation.capitalize() for layer in layers]
    xt = g.op("Transpose", [state["x"]], perm=[1, 0, 2])  # [T, B, I]
    inputs = [xt, g.const(np.stack(W), "W"), g.const(np.stack(R), "R"), g.const(np.stack(B), "B"),
              state["lens"] or ""]  # fmt: skip
    n_out = 3 if cell.has_cell_state else 2
    outs = g.op(cell.onnx_op, inputs, cell.family, n_out=n_out, **attrs)
    return outs[0], outs[1]


def _recurrent(g, layer, state):
    _check_recurrent(layer, state)
    direction = "reverse" if layer.go_backwards else "forward"
    y, y_h = _run_cell(g, [layer], direction, state)
    if layer.return_sequences:
        seq = g.op("Squeeze", [y, g.i64([1])])  # [T, B, H]
        if layer.go_backwards:  # Keras returns the reverse pass's outputs in processing order
            seq = g.op("Slice", [seq, g.i64([-1]), g.i64([np.iinfo(np.int64).min]), g.i64([0]),
                                 g.i64([-1])])  # fmt: skip
        state["x"] = g.op("Transpose", [seq], perm=[1, 0, 2])
    else:
        state["x"] = g.op("Squeeze", [y_h, g.i64([0])])
        state["lens"] = None  # the mask ends where the sequence does


def _bidirectional(g, layer, state):
    fwd, bwd = layer.forward_layer, layer.backward_layer
    if type(fwd) is not type(bwd) or type(fwd).__name__ not in _cells.KERAS_LAYERS:
        raise NotImplementedError(f"export_onnx: '{layer.name}' wraps unlike or custom layers")
    if fwd.units != bwd.units or (fwd.cell.family == "gru" and fwd.cell is not bwd.cell):
        # one ONNX operator runs both directions with one hidden_size and linear_before_reset
        raise NotImplementedError(
            f"export_onnx: '{layer.name}' directions differ in units or reset_after"
        )
    for sub in (fwd, bwd):
        _check_recurrent(sub, {"lens": None})
    if fwd.go_backwards:
        raise NotImplementedError(f"export_onnx: '{layer.name}' forward layer is go_backwards")
    y, y_h = _run_cell(g, [fwd, bwd], "bidirectional", state)
    if layer.return_sequences:
        both = g.op("Transpose", [y], perm=[2, 0, 1, 3])  # [B, T, 2, H]
        axis = 2
    else:
        both = g.op("Transpose", [y_h], perm=[1, 0, 2])  # [B, 2, H]
        axis = 1
        state["lens"] = None
    mode = layer.merge_mode
    if mode == "concat":
        shape = [0, 0, -1] if layer.return_sequences else [0, -1]
        state["x"] = g.op("Reshape", [both, g.i64(shape)])
    elif mode in ("sum", "ave"):
        op = "ReduceSum" if mode == "sum" else "ReduceMean"
        state["x"] = g.reduce(op, both, [axis], keepdims=0)
    elif mode == "mul":
        a, b = g.op("Split", [both], n_out=2, axis=axis)
        state["x"] = g.op("Squeeze", [g.op("Mul", [a, b]), g.i64([axis])])
    else:
        raise NotImplementedError(f"export_onnx: merge_mode {mode!r}")


# ---- feed-forward ---------------------------------------------------------------------------


def _dense(g, layer, state):
    y = g.op("MatMul", [state["x"], g.const(layer.params["kernel"], "kernel")])
    if layer.use_bias:
        y = g.op("Add", [y, g.const(layer.params["bias"], "bias")])
    state["x"] = g.activation(y, layer.activation)


def _time_distributed(g, layer, state):
    if not isinstance(layer.layer, L.Dense):
        raise NotImplementedError(f"export_onnx: '{layer.name}' wraps {type(layer.layer).__name__}")
    _dense(g, layer.layer, state)


def _conv1d(g, layer, state):
    x = g.op("Transpose", [state["x"]], perm=[0, 2, 1])  # [B, C, T]
    k, d = layer.kernel_size, layer.dilation_rate
    attrs = {"dilations": [d], "strides": [layer.strides], "kernel_shape": [k]}
    if layer.padding == "causal":
        x = g.op("Pad", [x, g.i64([0, 0, (k - 1) * d, 0, 0, 0])])
    elif layer.padding == "same":
        attrs["auto_pad"] = "SAME_UPPER"  # the extra padding step goes at the end, as Keras
    w = g.const(np.transpose(layer.params["kernel"], (2, 1, 0)), "kernel")  # [out, in, k]
    inputs = [x, w] + ([g.const(layer.params["bias"], "bias")] if layer.use_bias else [])
    y = g.op("Conv", inputs, **attrs)
    state["x"] = g.activation(g.op("Transpose", [y], perm=[0, 2, 1]), layer.activation)


def _layer_norm(g, layer, state):
    p, F = layer.params, layer.built_shape[-1]
    gamma = p.get("gamma", np.ones(F, g.dtype))
    beta = p.get("beta", np.zeros(F, g.dtype))
    state["x"] = g.op("LayerNormalization", [state["x"], g.const(gamma, "gamma"),
                                             g.const(beta, "beta")],
                      axis=-1, epsilon=layer.epsilon)  # fmt: skip


def _flatten(g, layer, state):
    state["x"] = g.op("Flatten", [state["x"]], axis=1)


def _identity(g, layer, state):
    pass


_LAYER_EXPORTERS = {
    "Embedding": _embedding,
    "Masking": _masking,
    **dict.fromkeys(_cells.KERAS_LAYERS, _recurrent),
    "Bidirectional": _bidirectional,
    "Dense": _dense,
    "TimeDistributed": _time_distributed,
    "Conv1D": _conv1d,
    "LayerNormalization": _layer_norm,
    "Flatten": _flatten,
    "Dropout": _identity,
}
