"""Recurrent layers: SimpleRNN, LSTM and GRU on the fused kernels, and LayerNormSimpleRNN.

Weights live in PyTorch's layout (w_ih (G·H, I), gates i,f,g,o / r,z,n); get_weights() and
set_weights() speak Keras's layout (kernel (I, G·H), gates i,f,c,o / z,r,h). The gate orders
come from the cell table (rnncore/_cells.py).
"""

from __future__ import annotations

import numpy as np

from .. import _cells, initializers, ops
from .._validate import positive_int, unit_rate
from .base import Layer, add_grad
from .masks import _check_mask, _MaskPlan, _require_steps


class _Recurrent(Layer):
    """Shared by SimpleRNN, LSTM and GRU: arguments, weights, masks, dropout, state."""

    min_ndim = 3
    family = "rnn"  # the cell table's family (rnncore/_cells.py) this layer runs
    # Keras's kernel, recurrent_kernel and bias: stored transposed as w_ih, w_hh (and the
    # bias as b_ih, with b_hh for reset_after GRUs).
    weight_roles = {"kernel": ("w_ih",), "recurrent": ("w_hh",), "bias": ("b_ih", "b_hh")}

    config_keys: tuple[str, ...] = (
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
        self.units = positive_int("units", units)
        self.activation = activation
        self.recurrent_activation = recurrent_activation
        self._check_activations()
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        for arg in ("kernel_initializer", "recurrent_initializer", "bias_initializer"):
            initializers.get(getattr(self, arg), arg)
        self.dropout = unit_rate("dropout", dropout)
        self.recurrent_dropout = unit_rate("recurrent_dropout", recurrent_dropout)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.seed = seed
        self._init_rng(seed)
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

    # ---- cell specifics: the cell table's row for this layer ----
    def _cell_options(self) -> dict:
        """Family keyword values selecting this layer's cell kind (reset_after, ...)."""
        return {}

    @property
    def cell(self) -> _cells.CellKind:
        """This layer's row of the cell table: gate count, orders, kernel code."""
        return _cells.kind_of(self.family, **self._cell_options())

    @property
    def gates(self) -> int:
        """Gate blocks per weight matrix (1, 3 or 4)."""
        return self.cell.gates

    @property
    def has_cell_state(self) -> bool:
        """Whether the layer carries a cell state c beside h (LSTM)."""
        return self.cell.has_cell_state

    def _functions(self):
        """The kernels' (forward, backward) functions of this layer's family."""
        return getattr(ops, self.family + "_forward"), getattr(ops, self.family + "_backward")

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

    def _keras_weight(self, role, arrays):
        # Constraints act on Keras's (inputs, gates) layout: our weights transposed. The gate
        # blocks' order does not matter to them (they act per column or on whole rows).
        if role == "bias":
            return np.stack(arrays) if len(arrays) == 2 else arrays[0]
        return arrays[0].T

    def _set_keras_weight(self, role, arrays, value):
        if role == "bias" and len(arrays) == 2:
            for a, v in zip(arrays, value):
                np.copyto(a, v, casting="unsafe")
        else:
            np.copyto(arrays[0], value.T if role != "bias" else value, casting="unsafe")

    def _from_keras_cols(self, a):  # [..., G*H] in Keras gate order -> PyTorch order
        H = self.units
        blocks = [a[..., q * H : (q + 1) * H] for q in self.cell.keras_order]  # self-inverse
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

    def _weight_names(self):
        return ["kernel", "recurrent_kernel", "bias"][: len(self.get_weights())]

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
        recurrent_mask = None
        if training and self.recurrent_dropout > 0:
            recurrent_mask = self._dropout_mask(self.recurrent_dropout, (B, self.units))
        plan = None
        if mask is not None:
            mask = _check_mask(self.name, mask, B, T)
            if not mask.all():
                plan = _MaskPlan(mask, self.go_backwards, self.zero_output_for_mask)
        fwd, _ = self._functions()
        p = self.params
        kw = dict(self.cell.options, batch_first=True, training=training)
        if recurrent_mask is not None:
            kw["recurrent_mask"] = recurrent_mask
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
        from .graph import call_symbolic, is_symbolic

        if is_symbolic(x):
            return call_symbolic(self, x, initial_state)
        x = self.cast_input(x)
        self.ensure_built(x.shape)
        y, _ = self.forward(x, mask, bool(training), initial_state)
        return y


class SimpleRNN(_Recurrent):
    """Keras's SimpleRNN on the fused kernels: h' = activation(x·kernel + h·recurrent_kernel + b).

    Args:
        units: Size of the state and output.
        activation: "tanh" or "relu".
        use_bias: Whether the layer has biases.
        kernel_initializer: Initializer of the input weights (a name, as in Keras).
        recurrent_initializer: Initializer of the recurrent weights.
        bias_initializer: Initializer of the biases.
        dropout: Fraction of the input features dropped in training (one mask per sequence).
        recurrent_dropout: Fraction of the state entering the recurrent product dropped in
            training (one mask per sequence: variational dropout).
        return_sequences: Return every step's output (batch, steps, units), not only the last.
        return_state: Also return the final state(s).
        go_backwards: Process the sequence in reverse.
        stateful: Carry the final state into the next call (reset with reset_states()).
        zero_output_for_mask: Masked steps output zeros instead of the last real output.
        seed: Seed of the initializers and dropout masks (None: the global seed).
        **kwargs: name, input_shape, dtype, trainable (as every layer).

    Input (batch, steps, features); output (batch, units), or (batch, steps, units) with
    return_sequences; a (batch, steps) mask skips steps, as in Keras.

    Example:
        >>> model = rnncore.Sequential([rnncore.Input((50, 1)), SimpleRNN(20), Dense(1)])
    """

    def _check_activations(self):
        kinds = _cells.family_kinds("rnn")
        allowed = [cell.keras_options["activation"] for cell in kinds]
        if self.activation not in allowed:
            raise NotImplementedError(
                f"SimpleRNN: activation must be {' or '.join(map(repr, allowed))}, "
                f"got {self.activation!r}"
            )

    def __init__(
        self,
        units,
        activation="tanh",
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
        super().__init__(
            units,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            zero_output_for_mask=zero_output_for_mask,
            seed=seed,
            **kwargs,
        )

    def _cell_options(self):
        return {"nonlinearity": self.activation}

    def get_config(self):
        """The config, without recurrent_activation (SimpleRNN has none)."""
        cfg = super().get_config()
        del cfg["recurrent_activation"]
        return cfg


class LSTM(_Recurrent):
    """Keras's LSTM on the fused kernels (gates i, f, c, o; PyTorch's i, f, g, o is that order).

    Args:
        units: Size of the state and output.
        activation: "tanh" (the fused kernels' cell activation).
        recurrent_activation: "sigmoid" (the fused kernels' gate activation).
        use_bias: Whether the layer has biases.
        unit_forget_bias: Start the forget gate's bias at 1 (Keras's default).
        kernel_initializer: Initializer of the input weights (a name, as in Keras).
        recurrent_initializer: Initializer of the recurrent weights.
        bias_initializer: Initializer of the biases.
        dropout: Fraction of the input features dropped in training (one mask per sequence).
        recurrent_dropout: Fraction of the state entering the recurrent product dropped in
            training (one mask per sequence: variational dropout).
        return_sequences: Return every step's output (batch, steps, units), not only the last.
        return_state: Also return the final state(s).
        go_backwards: Process the sequence in reverse.
        stateful: Carry the final state into the next call (reset with reset_states()).
        zero_output_for_mask: Masked steps output zeros instead of the last real output.
        seed: Seed of the initializers and dropout masks (None: the global seed).
        **kwargs: name, input_shape, dtype, trainable (as every layer).

    Returns [output, h, c] with return_state.

    Example:
        >>> model = rnncore.Sequential([rnncore.Input((None, 8)), LSTM(32), Dense(1)])
    """

    family = "lstm"
    config_keys = _Recurrent.config_keys + ("unit_forget_bias",)

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
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
        self.unit_forget_bias = bool(unit_forget_bias)
        super().__init__(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            zero_output_for_mask=zero_output_for_mask,
            seed=seed,
            **kwargs,
        )

    def _init_bias(self):
        if self.unit_forget_bias:
            self.params["b_ih"][self.units : 2 * self.units] = 1.0


class GRU(_Recurrent):
    """Keras's GRU on the fused kernels (gates z, r, h; PyTorch's order is r, z, n).

    Args:
        units: Size of the state and output.
        activation: "tanh" (the fused kernels' candidate activation).
        recurrent_activation: "sigmoid" (the fused kernels' gate activation).
        use_bias: Whether the layer has biases.
        reset_after: Apply the reset gate after the recurrent product (Keras's and
            PyTorch's default; two biases) or before it (one bias).
        kernel_initializer: Initializer of the input weights (a name, as in Keras).
        recurrent_initializer: Initializer of the recurrent weights.
        bias_initializer: Initializer of the biases.
        dropout: Fraction of the input features dropped in training (one mask per sequence).
        recurrent_dropout: Fraction of the state entering the recurrent product dropped in
            training (one mask per sequence: variational dropout).
        return_sequences: Return every step's output (batch, steps, units), not only the last.
        return_state: Also return the final state(s).
        go_backwards: Process the sequence in reverse.
        stateful: Carry the final state into the next call (reset with reset_states()).
        zero_output_for_mask: Masked steps output zeros instead of the last real output.
        seed: Seed of the initializers and dropout masks (None: the global seed).
        **kwargs: name, input_shape, dtype, trainable (as every layer).

    Example:
        >>> model = rnncore.Sequential([rnncore.Input((None, 8)), GRU(32), Dense(1)])
    """

    family = "gru"
    config_keys = _Recurrent.config_keys + ("reset_after",)

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        reset_after=True,
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
        self.reset_after = bool(reset_after)
        super().__init__(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            zero_output_for_mask=zero_output_for_mask,
            seed=seed,
            **kwargs,
        )

    def _has_b_hh(self):
        return self.reset_after

    def _cell_options(self):
        return {"reset_after": self.reset_after}
