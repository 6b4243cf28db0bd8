"""Fuzzing the layers, Sequential models, rnncore.nn modules and Stream.

Properties: a call either raises ValueError, TypeError or MemoryError, or returns a result that
does not depend on the input's memory layout or on which other rows share the batch; models
survive a save/load round trip bit for bit; Stream steps equal the sequence kernel.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import rnncore
from rnncore import layers as L

from fuzzlib import LAYOUTS, bad_values, outcome, relayout

UNITS = st.integers(1, 4)
RECURRENT = st.sampled_from([L.SimpleRNN, L.LSTM, L.GRU])


@st.composite
def recurrent_layers(draw):
    cls = draw(RECURRENT)
    kw = {
        "return_sequences": draw(st.booleans()),
        "go_backwards": draw(st.booleans()),
        "use_bias": draw(st.booleans()),
        "seed": 0,
    }
    if cls is L.GRU:
        kw["reset_after"] = draw(st.booleans())
    if cls is L.SimpleRNN:
        kw["activation"] = draw(st.sampled_from(["tanh", "relu"]))
    return cls(draw(UNITS), **kw)


# Layers taking (batch, time, features) and treating every batch row independently.
SEQUENCE_LAYERS = st.one_of(
    recurrent_layers(),
    st.builds(
        lambda r, m: L.Bidirectional(r, merge_mode=m),
        recurrent_layers(),
        st.sampled_from(["concat", "sum", "ave", "mul"]),
    ),  # fmt: skip
    st.builds(lambda u: L.LayerNormSimpleRNN(u, return_sequences=True, seed=0), UNITS),
    st.builds(
        lambda u, a: L.Dense(u, activation=a, seed=0),
        UNITS,
        st.sampled_from([None, "relu", "tanh", "sigmoid", "softmax"]),
    ),  # fmt: skip
    st.builds(
        lambda f, k, p, d: L.Conv1D(f, k, padding=p, dilation_rate=d, seed=0),
        UNITS,
        st.integers(1, 3),
        st.sampled_from(["valid", "same", "causal"]),
        st.integers(1, 2),
    ),  # fmt: skip
    st.builds(lambda u: L.TimeDistributed(L.Dense(u, seed=0)), UNITS),
    st.builds(L.LayerNormalization),
    st.builds(L.Flatten),
    st.builds(lambda: L.Dropout(0.5, seed=0)),
    st.builds(L.Masking),
)


@st.composite
def inputs(draw, min_time=0):
    shape = (draw(st.integers(0, 3)), draw(st.integers(min_time, 5)), draw(st.integers(1, 4)))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int32]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    if draw(st.booleans()) and x.size:  # some all-zero time steps, which Masking masks
        x[:, rng.integers(0, shape[1])] = 0
    return x


@given(layer=SEQUENCE_LAYERS, x=inputs(), layout=st.sampled_from(LAYOUTS))
def test_layers_are_layout_and_batch_independent(layer, x, layout):
    want = outcome(layer, np.ascontiguousarray(x))
    if want is None:
        return
    # NumPy's BLAS may pick another kernel for another layout (Dense, Conv1D): 1-ulp changes
    np.testing.assert_allclose(layer(relayout(x, layout)), want, rtol=1e-6, atol=1e-7)
    assert want.shape[0] == x.shape[0]
    for b in range(x.shape[0]):  # each row on its own gives that row's output
        np.testing.assert_allclose(layer(x[b : b + 1])[0], want[b], rtol=1e-5, atol=1e-6)


@given(
    cls=st.sampled_from(
        [
            L.SimpleRNN,
            L.LSTM,
            L.GRU,
            L.Dense,
            L.Conv1D,
            L.Embedding,
            L.Dropout,
            L.LayerNormSimpleRNN,
            L.LayerNormalization,
            L.Masking,
        ]
    ),  # fmt: skip
    bad=bad_values(),
    where=st.integers(0, 3),
)
def test_bad_constructor_arguments_are_refused_with_a_typed_error(cls, bad, where):
    valid = {L.Conv1D: [2, 2], L.Embedding: [5, 2], L.Dropout: [0.5], L.Masking: [0.0],
             L.LayerNormalization: []}.get(cls, [2])  # fmt: skip
    args = list(valid)
    kwargs = {}
    if where < len(args):
        args[where] = bad
    else:
        name = {L.Dense: "activation", L.Conv1D: "padding", L.Embedding: "mask_zero",
                L.LayerNormalization: "epsilon", L.Masking: "mask_value",
                L.Dropout: "seed"}.get(cls, "dropout")  # fmt: skip
        kwargs[name] = bad

    def build_and_call():
        try:
            layer = cls(*args, **kwargs)
        except NotImplementedError:  # a Keras option rnncore does not support, e.g.
            raise ValueError from None  # SimpleRNN(activation="sigmoid"): refused clearly
        return layer(np.arange(12, dtype=np.float32).reshape(2, 3, 2) % 5)

    out = outcome(build_and_call)
    assert out is None or np.isfinite(out).all()  # accepted arguments give real numbers


@given(layer=SEQUENCE_LAYERS, x=inputs(min_time=1), bad=bad_values())
def test_bad_inputs_to_layers_are_refused_with_a_typed_error(layer, x, bad):
    if outcome(layer, x.astype(np.float32)) is not None:  # built for this shape
        outcome(layer, bad)


@st.composite
def models(draw):
    """Sequential stacks: recurrent layers (sequences until the last), then Dense."""
    depth = draw(st.integers(1, 3))
    stack = [L.Input((None, 3))]
    for i in range(depth):
        layer = draw(recurrent_layers())
        layer.return_sequences = i < depth - 1 or draw(st.booleans())
        if draw(st.booleans()):
            layer = L.Bidirectional(layer)
        stack.append(layer)
    stack.append(L.Dense(draw(UNITS), seed=0))
    return rnncore.Sequential(stack)


@given(model=models(), x=inputs())
def test_models_predict_and_round_trip_through_a_file(model, x, tmp_path_factory):
    x = np.ascontiguousarray(x[..., :1].repeat(3, axis=-1))
    want = outcome(model.predict, x)
    if want is None:
        return
    path = tmp_path_factory.mktemp("m") / "model.rnncore"
    model.save(path)
    np.testing.assert_array_equal(rnncore.models.load_model(path).predict(x), want)


NN = st.sampled_from([rnncore.nn.RNN, rnncore.nn.LSTM, rnncore.nn.GRU])


@given(
    cls=NN,
    num_layers=st.integers(1, 2),
    bidirectional=st.booleans(),
    batch_first=st.booleans(),
    bias=st.booleans(),
    x=inputs(),
)
def test_nn_modules_run_forward_and_backward_on_any_shape(
    cls, num_layers, bidirectional, batch_first, bias, x
):
    I = x.shape[2]
    m = cls(I, 3, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first,
            bias=bias)  # fmt: skip
    x = x.astype(np.float32)
    x = x if batch_first else np.ascontiguousarray(x.transpose(1, 0, 2))
    out = m(x)
    y = out[0]
    grads = m.backward(np.ones_like(y))
    assert grads["input"].shape == x.shape
    for name, p in m.named_parameters():
        assert grads[name].shape == p.shape


@given(cls=NN, argument=st.sampled_from(["x", "hx", "lengths"]), bad=bad_values())
def test_nn_modules_refuse_bad_call_arguments(cls, argument, bad):
    m = cls(2, 3)
    kwargs = {"x": np.zeros((3, 2, 2), np.float32), argument: bad}
    outcome(m, **kwargs)


@st.composite
def streams(draw):
    cell = draw(st.sampled_from(["lstm", "gru", "rnn"]))
    G = {"lstm": 4, "gru": 3, "rnn": 1}[cell]
    I, H, B = draw(st.integers(1, 5)), draw(st.integers(1, 6)), draw(st.integers(1, 3))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    w = [rng.uniform(-0.5, 0.5, s).astype(dtype) for s in [(G * H, I), (G * H, H), G * H, G * H]]
    if not draw(st.booleans()):
        w[2:] = [None, None]
    opts = {"batch_size": B}
    if cell == "gru":
        opts["reset_after"] = draw(st.booleans())
    if cell == "rnn":
        opts["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
    return cell, w, opts


@given(spec=streams(), steps=st.integers(0, 4), layout=st.sampled_from(LAYOUTS), seed=st.integers())
def test_stream_steps_equal_the_sequence_kernel(spec, steps, layout, seed):
    cell, w, opts = spec
    B, I = opts["batch_size"], w[0].shape[1]
    x = np.random.default_rng(seed % 2**32).standard_normal((steps, B, I)).astype(w[0].dtype)
    s = rnncore.Stream(cell, *w, **opts)
    got = [s.step(relayout(x[t], layout)) for t in range(steps)]
    kw = {k: v for k, v in opts.items() if k != "batch_size"}
    want = getattr(rnncore, cell)(x, *w, **kw)[0]
    tol = 1e-12 if x.dtype == np.float64 else 1e-5
    for t in range(steps):
        np.testing.assert_allclose(got[t], want[t], rtol=tol, atol=tol)


@given(spec=streams(), bad=bad_values(), use_out=st.booleans())
def test_stream_refuses_bad_steps_without_advancing(spec, bad, use_out):
    cell, w, opts = spec
    s = rnncore.Stream(cell, *w, **opts)
    h_before = s.h
    x = np.zeros((opts["batch_size"], w[0].shape[1]), w[0].dtype)
    if (outcome(s.step, x, out=bad) if use_out else outcome(s.step, bad)) is None:
        np.testing.assert_array_equal(s.h, h_before)  # a refused step changes nothing


@given(cell=st.sampled_from(["lstm", "gru", "rnn", "LSTM", None, 3]), bad=bad_values(),
       which=st.sampled_from(["w_ih", "w_hh", "b_ih", "b_hh", "batch_size"]))  # fmt: skip
def test_stream_constructor_refuses_bad_arguments(cell, bad, which):
    args = {"w_ih": np.zeros((4, 2), np.float32), "w_hh": np.zeros((4, 1), np.float32)}
    args[which] = bad
    if outcome(rnncore.Stream, cell, **args) is None:
        return
    assert cell in ("lstm",) and which in ("b_ih", "b_hh") and bad is None


@pytest.mark.parametrize("units", [10**6, 2**40])
def test_absurd_layer_sizes_raise_memory_error(units):
    with pytest.raises(MemoryError):
        L.LSTM(units)(np.zeros((1, 1, 4096), np.float32))
