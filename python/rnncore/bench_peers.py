"""The libraries `rnncore bench` times rnncore against, each behind one `Peer` interface.

A peer says whether it is installed (`Peer.load`), how the table names it (`label`), and
builds the timed call of each case it can run (`layer_case`, `ragged_case`, `step_case`),
or returns None for a case it does not run. Every case hands the peer the same inputs and
weights (PyTorch layout, from the cell table's row) as rnncore gets. Adding a peer: write a
subclass here and list it in PEERS (docs/design.md, "Add a benchmark peer").
"""

from __future__ import annotations

import importlib.util
import os
import sys
from typing import Callable, Optional

import numpy as np

from ._cells import CellKind

Run = Optional[Callable[[], object]]  # one timed call, or None: the peer does not run the case


class Peer:
    """One library timed beside rnncore (subclasses fill in what they run)."""

    name = "peer"  # the key of the peer's times in the result rows
    column = "peer"  # the table's column heading (with " ms")
    install = "pip install 'rnncore[compare]'"  # how to get it, for the "skipped" line

    @classmethod
    def load(cls, threads: int) -> Peer:
        """The peer set to `threads` threads; ImportError (or any error) when it cannot run."""
        raise NotImplementedError

    def label(self) -> str:
        """The name and version the table prints."""
        raise NotImplementedError

    def layer_case(self, cell: CellKind, mode: str, x, dy, params) -> Run:
        """One layer over x [T, B, I]: "inference" (forward) or "training" (with dy)."""
        return None

    def ragged_case(self, cell: CellKind, mode: str, x, dy, lengths, params) -> Run:
        """As layer_case with per-row lengths (the peer's own way of skipping padding)."""
        return None

    def step_case(self, cell: CellKind, xs, params) -> Run:
        """T single-step calls over xs [T, B, I], the state carried from call to call."""
        return None


class TorchPeer(Peer):
    """PyTorch's nn.RNN/LSTM/GRU (PackedSequence for lengths) and its *Cell modules."""

    name = "torch"
    column = "torch"

    def __init__(self, torch):
        self.torch = torch

    @classmethod
    def load(cls, threads):
        """torch with `threads` intra-op threads."""
        import torch

        torch.set_num_threads(threads)
        return cls(torch)

    def label(self):
        """`torch <version>`."""
        return f"torch {self.torch.__version__}"

    def _module(self, cell, params, suffix=""):
        if cell.torch_module is None:
            return None
        H, I = params[1].shape[1], params[0].shape[1]
        module = getattr(self.torch.nn, cell.torch_module + suffix)(I, H)
        if cell.family == "rnn" and not suffix:
            module.nonlinearity = cell.options["nonlinearity"]
        with self.torch.no_grad():
            for p, v in zip(module.parameters(), params):
                p.copy_(self.torch.from_numpy(v))
        return module

    def _timed(self, module, mode, x, dy, prepare=lambda t: t, output_grad=None):
        torch = self.torch
        xt = torch.from_numpy(x)
        if mode == "inference":

            def infer():
                with torch.no_grad():
                    module(prepare(xt))

            return infer
        xg, dyt = xt.clone().requires_grad_(True), torch.from_numpy(dy)

        def train():
            module.zero_grad(set_to_none=True)
            xg.grad = None
            out = module(prepare(xg))[0]
            out = out if output_grad is None else output_grad(out)
            out.backward(dyt if output_grad is None else torch.ones_like(out))

        return train

    def layer_case(self, cell, mode, x, dy, params):
        """torch.nn.RNN/LSTM/GRU with the case's weights (None for cells torch lacks)."""
        module = self._module(cell, params)
        return None if module is None else self._timed(module, mode, x, dy)

    def ragged_case(self, cell, mode, x, dy, lengths, params):
        """The layer on a PackedSequence, packed inside the timed call."""
        module = self._module(cell, params)
        if module is None:
            return None
        pack, lt = self.torch.nn.utils.rnn.pack_padded_sequence, self.torch.from_numpy(lengths)
        # Packed in the timed call, as a training loop does per batch.
        return self._timed(module, mode, x, dy, lambda t: pack(t, lt, enforce_sorted=False),
                           output_grad=lambda out: out.data)  # fmt: skip

    def step_case(self, cell, xs, params):
        """torch's *Cell module called once per step under no_grad."""
        module = self._module(cell, params, "Cell")
        if module is None:
            return None
        torch, xt = self.torch, [self.torch.from_numpy(x) for x in xs]

        def run():
            with torch.no_grad():
                state = None
                for x in xt:
                    state = module(x, state)

        return run


class OrtPeer(Peer):
    """ONNX Runtime running one RNN/LSTM/GRU operator (inference only)."""

    name = "onnxruntime"
    column = "ORT"

    def __init__(self, ort, onnx, threads):
        self.ort, self.onnx, self.threads = ort, onnx, threads

    @classmethod
    def load(cls, threads):
        """onnxruntime with onnx (to build the graphs); ImportError when either is missing."""
        import onnx
        import onnxruntime

        return cls(onnxruntime, onnx, threads)

    def label(self):
        """`onnxruntime <version>`."""
        return f"onnxruntime {self.ort.__version__}"

    def _session(self, cell, params, ragged=False):
        """A session with inputs X [T, B, I], initial_h [1, B, H] (and initial_c), and
        sequence_lens [B] when ragged; outputs Y, Y_h (and Y_c)."""
        from onnx import TensorProto, helper, numpy_helper

        from ._onnx_export import onnx_weights

        I, H = params[0].shape[1], params[1].shape[1]
        inits = [numpy_helper.from_array(a[None], n)
                 for a, n in zip(onnx_weights(cell, *params), ("W", "R", "B"))]  # fmt: skip
        f32 = TensorProto.FLOAT
        states = ["initial_h"] + (["initial_c"] if cell.has_cell_state else [])
        outs = ["Y", "Y_h"] + (["Y_c"] if cell.has_cell_state else [])
        attrs = {"hidden_size": H}
        if cell.family == "gru":
            attrs["linear_before_reset"] = int(cell.options["reset_after"])
        if cell.family == "rnn":
            attrs["activations"] = [str(cell.options["nonlinearity"]).capitalize()]
        lens = "sequence_lens" if ragged else ""
        node = helper.make_node(cell.onnx_op, ["X", "W", "R", "B", lens, *states], outs, **attrs)
        lens_info = (
            [helper.make_tensor_value_info(lens, TensorProto.INT32, ["B"])] if ragged else []
        )
        graph = helper.make_graph(
            [node], "bench",
            [helper.make_tensor_value_info("X", f32, ["T", "B", I])] + lens_info
            + [helper.make_tensor_value_info(n, f32, [1, "B", H]) for n in states],
            [helper.make_tensor_value_info(n, f32, None) for n in outs], inits)  # fmt: skip
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
        opts = self.ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = self.threads, 1
        sess = self.ort.InferenceSession(model.SerializeToString(), opts,
                                         providers=["CPUExecutionProvider"])  # fmt: skip
        return sess, states

    def _zero_states(self, states, B, H):
        return {n: np.zeros((1, B, H), np.float32) for n in states}

    def layer_case(self, cell, mode, x, dy, params):
        """One ONNX RNN/LSTM/GRU operator over the whole sequence (inference only)."""
        if mode != "inference":
            return None
        sess, states = self._session(cell, params)
        feed = {"X": x, **self._zero_states(states, x.shape[1], params[1].shape[1])}
        return lambda: sess.run(None, feed)

    def ragged_case(self, cell, mode, x, dy, lengths, params):
        """The operator with sequence_lens (inference only)."""
        if mode != "inference":
            return None
        sess, states = self._session(cell, params, ragged=True)
        feed = {"X": x, "sequence_lens": lengths.astype(np.int32),
                **self._zero_states(states, x.shape[1], params[1].shape[1])}  # fmt: skip
        return lambda: sess.run(None, feed)

    def step_case(self, cell, xs, params):
        """The operator run with T=1 per step, its final state fed back."""
        sess, states = self._session(cell, params)
        B, H = xs.shape[1], params[1].shape[1]

        def run():
            feed = self._zero_states(states, B, H)
            for x in xs:
                out = sess.run(None, {"X": x[None], **feed})
                feed = dict(zip(states, out[1:]))

        return run


class KerasPeer(Peer):
    """Keras 3's own layer (default arguments, return_sequences=True), batch-major, compiled
    where its backend compiles (tf.function, jax.jit), eager on torch."""

    name = "keras"
    column = "Keras"

    def __init__(self, keras):
        self.keras = keras

    @classmethod
    def load(cls, threads):
        """Keras 3 on its configured backend. With none configured and TensorFlow (its
        default) absent, JAX (compiled) or else torch when installed."""
        if "keras" not in sys.modules and not os.environ.get("KERAS_BACKEND"):
            if importlib.util.find_spec("tensorflow") is None:
                found = [b for b in ("jax", "torch") if importlib.util.find_spec(b)]
                if found:
                    os.environ["KERAS_BACKEND"] = found[0]
        import keras

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            try:  # only possible before TensorFlow starts its thread pools
                tf.config.threading.set_intra_op_parallelism_threads(threads)
                tf.config.threading.set_inter_op_parallelism_threads(1)
            except RuntimeError:
                pass
        return cls(keras)

    def label(self):
        """`keras <version> (<backend> backend)`."""
        return f"keras {self.keras.__version__} ({self.keras.backend.backend()} backend)"

    def layer_case(self, cell, mode, x, dy, params):
        """Keras's layer of the cell on the same data, batch-major."""
        H = params[1].shape[1]
        layer = getattr(self.keras.layers, cell.keras_layer)(
            H, return_sequences=True, **cell.keras_options
        )
        xb = np.ascontiguousarray(x.transpose(1, 0, 2))
        dyb = np.ascontiguousarray(dy.transpose(1, 0, 2))
        layer.build(xb.shape)
        run = {"torch": _keras_torch, "tensorflow": _keras_tensorflow, "jax": _keras_jax}
        return run[self.keras.backend.backend()](layer, mode, xb, dyb)


def _keras_torch(layer, mode, xb, dyb):
    import torch

    xt, dyt = torch.from_numpy(xb), torch.from_numpy(dyb)
    if mode == "inference":

        def infer():
            with torch.no_grad():
                layer(xt, training=False)

        return infer
    xg = xt.clone().requires_grad_(True)
    weights = [v.value for v in layer.trainable_weights]

    def train():
        for w in weights:
            w.grad = None
        xg.grad = None
        layer(xg, training=True).backward(dyt)

    return train


def _keras_tensorflow(layer, mode, xb, dyb):
    import tensorflow as tf

    xt, dyt = tf.constant(xb), tf.constant(dyb)
    if mode == "inference":
        infer = tf.function(lambda x: layer(x, training=False))
        return lambda: infer(xt)

    @tf.function
    def train(x, dy):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
        return tape.gradient(y, [x, *layer.trainable_weights], output_gradients=dy)

    return lambda: train(xt, dyt)


def _keras_jax(layer, mode, xb, dyb):
    import jax

    trainable = [v.value for v in layer.trainable_variables]
    fixed = [v.value for v in layer.non_trainable_variables]

    def forward(tv, x, training):
        return layer.stateless_call(tv, fixed, x, training=training)[0]

    if mode == "inference":
        infer = jax.jit(lambda tv, x: forward(tv, x, False))
        return lambda: infer(trainable, xb).block_until_ready()
    # The gradient of sum(y * dy) is the backward pass with dy given.
    grads = jax.jit(jax.grad(lambda tv, x: (forward(tv, x, True) * dyb).sum(), argnums=(0, 1)))
    return lambda: jax.block_until_ready(grads(trainable, xb))


PEERS: tuple[type[Peer], ...] = (TorchPeer, OrtPeer, KerasPeer)
"""Every peer the bench knows, in the table's column order."""


def find_peers(threads: int = 1) -> tuple[list[Peer], list[str]]:
    """(the peers that load, a "name (why not)" line for each that does not)."""
    found, skipped = [], []
    for cls in PEERS:
        try:
            found.append(cls.load(threads))
        except ImportError:
            skipped.append(f"{cls.name} ({cls.install})")
        except Exception as e:  # installed, but unusable here (no backend, say)
            skipped.append(f"{cls.name} ({type(e).__name__}: {e})".splitlines()[0])
    return found, skipped
