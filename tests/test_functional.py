"""Keras's functional API: rnncore.Model over Input tensors and layer calls. Each graph is
built in both libraries with the same weights (Keras 3, torch backend, as the oracle): the
same outputs and the same weights after SGD steps; whole-model gradients against finite
differences; files; and the errors a user meets."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

import rnncore
from rnncore import layers as L

from conftest import assert_trains_like_keras, import_peer

sys.path.insert(0, str(Path(__file__).parent))
from test_layers_fd import _numeric  # noqa: E402

RNG = np.random.default_rng(0)


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return import_peer("keras")


def two_inputs(m):
    a, b = m.Input((6, 3), name="seq"), m.Input((4,), name="num")
    h = m.layers.LSTM(5, name="enc")(a)
    s = m.layers.Dense(5, activation="tanh", name="d0")(b)
    merged = [m.layers.Concatenate(name="cat")([h, s]), m.layers.Add(name="add")([h, s]),
              m.layers.Subtract(name="sub")([h, s]), m.layers.Multiply(name="mul")([h, s]),
              m.layers.Average(name="avg")([h, s, h])]  # fmt: skip
    y = m.layers.Dense(1, name="out")(m.layers.Concatenate(name="cat2")(merged))
    return m.Model([a, b], y), [RNG.random((16, 6, 3)), RNG.random((16, 4))]


def seq2seq(m):  # encoder-decoder: the encoder's states start the decoder
    enc_in, dec_in = m.Input((7, 2), name="enc_in"), m.Input((5, 1), name="dec_in")
    _, h, c = m.layers.LSTM(6, return_state=True, name="encoder")(enc_in)
    d = m.layers.LSTM(6, return_sequences=True, name="decoder")(dec_in, initial_state=[h, c])
    y = m.layers.TimeDistributed(m.layers.Dense(1, name="dd"), name="td")(d)
    return m.Model([enc_in, dec_in], y), [RNG.random((16, 7, 2)), RNG.random((16, 5, 1))]


def shared(m):  # one layer called on two inputs: both calls' gradients add up
    a, b = m.Input((5, 2), name="a"), m.Input((5, 2), name="b")
    gru = m.layers.GRU(4, name="shared_gru")
    dense = m.layers.Dense(3, name="shared_dense")
    y = m.layers.Dense(1, name="out")(
        m.layers.Concatenate(name="cat")([dense(gru(a)), dense(gru(b))])
    )
    return m.Model([a, b], y), [RNG.random((16, 5, 2)), RNG.random((16, 5, 2))]


def masked(m):  # masks flow along the graph: Embedding -> GRU -> masked mean
    ids = m.Input((8,), dtype="int32", name="ids")
    e = m.layers.Embedding(20, 4, mask_zero=True, name="emb")(ids)
    h = m.layers.GRU(3, return_sequences=True, name="gru")(e)
    pooled = m.layers.GlobalAveragePooling1D(name="gap")(h)
    top = m.layers.GlobalMaxPooling1D(name="gmp")(e)
    y = m.layers.Dense(1, name="out")(m.layers.Concatenate(name="cat")([pooled, top]))
    x = RNG.integers(1, 20, (16, 8))
    x[0, 5:] = 0
    x[3, :2] = 0
    return m.Model(ids, y), x


def repeat_reshape(m):  # (batch, 6) -> repeated 4 steps -> SimpleRNN -> reshape
    a = m.Input((6,), name="a")
    r = m.layers.RepeatVector(4, name="rep")(a)
    h = m.layers.SimpleRNN(6, return_sequences=True, name="rnn")(r)
    y = m.layers.Dense(1, name="out")(m.layers.Reshape((2, 12), name="resh")(h))
    return m.Model(a, y), RNG.random((16, 6))


def attention(m):  # Luong and Bahdanau attention, Dot, Permute, MaxPooling1D
    q, v = m.Input((5, 4), name="q"), m.Input((7, 4), name="v")
    hq = m.layers.GRU(4, return_sequences=True, name="gq")(q)
    a1 = m.layers.Attention(use_scale=True, name="att")([hq, v])
    a2 = m.layers.AdditiveAttention(name="add_att")([hq, v, v])
    d = m.layers.Dot(axes=2, name="dot")([hq, v])  # (batch, 5, 7)
    p = m.layers.Permute((2, 1), name="perm")(d)
    mp = m.layers.MaxPooling1D(2, padding="same", name="mp")(p)
    f = m.layers.Concatenate(name="cat")([m.layers.GlobalAveragePooling1D(name="g1")(a1),
                                         m.layers.GlobalAveragePooling1D(name="g2")(a2),
                                         m.layers.GlobalMaxPooling1D(name="g3")(mp)])  # fmt: skip
    return m.Model([q, v], m.layers.Dense(1, name="out")(f)), [RNG.random((16, 5, 4)),
                                                                RNG.random((16, 7, 4))]  # fmt: skip


def masked_attention(m):  # one shared Embedding; masked keys get no weight, masked queries 0
    qi, vi = m.Input((6,), dtype="int32", name="qi"), m.Input((8,), dtype="int32", name="vi")
    emb = m.layers.Embedding(20, 4, mask_zero=True, name="emb")
    a = m.layers.Attention(name="att")([emb(qi), emb(vi)])
    y = m.layers.Dense(1, name="out")(m.layers.GlobalAveragePooling1D(name="gap")(a))
    q, v = RNG.integers(1, 20, (16, 6)), RNG.integers(1, 20, (16, 8))
    q[0, 4:] = 0
    v[1, 5:] = 0
    v[2, :3] = 0
    return m.Model([qi, vi], y), [q, v]


GRAPHS = {f.__name__: f for f in (two_inputs, seq2seq, shared, masked, repeat_reshape, attention,
                                  masked_attention)}  # fmt: skip


def _pair(name):
    keras = _keras()
    theirs, x = GRAPHS[name](keras)
    ours, _ = GRAPHS[name](rnncore)
    ours.set_weights(theirs.get_weights())
    return keras, ours, theirs, x


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_graph_predicts_and_trains_as_keras(name):
    keras, ours, theirs, x = _pair(name)
    if isinstance(x, list):
        x = [v.astype(np.float32) if v.dtype.kind == "f" else v for v in x]
    np.testing.assert_allclose(ours.predict(x), theirs.predict(x, verbose=0), rtol=2e-5,
                               atol=2e-6)  # fmt: skip
    y = RNG.standard_normal((16, *theirs.output_shape[1:])).astype(np.float32)
    assert_trains_like_keras(ours, theirs, keras, x, y, lr=0.05)
    assert ours.count_params() == theirs.count_params()
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]


def test_several_outputs_with_losses_weights_and_metrics_by_name():
    keras = _keras()

    def build(m):
        a = m.Input((6, 3), name="seq")
        h = m.layers.GRU(5, return_sequences=True, name="g")(a)
        y1 = m.layers.Dense(1, name="reg")(m.layers.GlobalAveragePooling1D(name="gap")(h))
        y2 = m.layers.Dense(3, activation="softmax", name="cls")(
            m.layers.GlobalMaxPooling1D(name="gmp")(h)
        )
        return m.Model(a, [y1, y2])

    theirs, ours = build(keras), build(rnncore)
    ours.set_weights(theirs.get_weights())
    x = RNG.random((16, 6, 3)).astype(np.float32)
    y = {"reg": RNG.random((16, 1)).astype(np.float32), "cls": RNG.integers(0, 3, 16)}
    for model, opt in ((theirs, keras.optimizers.SGD(0.1)), (ours, rnncore.optimizers.SGD(0.1))):
        model.compile(
            opt, loss={"reg": "mse", "cls": "sparse_categorical_crossentropy"},
            loss_weights={"reg": 0.5, "cls": 2.0}, metrics={"cls": ["accuracy"]},
        )  # fmt: skip
    want = theirs.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    got = ours.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
    assert set(got) == set(want) == {"loss", "reg_loss", "cls_loss", "cls_accuracy"}
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-6)
    labels = [y["reg"], y["cls"]]
    np.testing.assert_allclose(ours.evaluate(x, labels), theirs.evaluate(x, labels, verbose=0),
                               rtol=1e-5)  # fmt: skip
    reg, cls = ours.predict(x)
    assert reg.shape == (16, 1) and cls.shape == (16, 3)


@pytest.mark.parametrize("graph", ["seq2seq_f64", "attention_f64"])
def test_whole_graph_gradients_match_finite_differences(graph):
    rnncore.utils.set_random_seed(0)
    model, x = globals()[graph]()
    y = RNG.standard_normal((16, *model.outputs[0].shape[1:]))
    model.compile("sgd", "mse")
    xs = model._prepare_x(x)
    _, grads = model._local_stats(xs, y, True)

    def mean_loss():
        total, count = model._local_stats(xs, y, False)[0]["loss"]
        return total / count

    assert len(grads) == len(model._leaf_params())  # every weight gets a gradient
    for (layer, name), g in grads.items():
        for i, numeric in _numeric(mean_loss, layer.params[name], 4, RNG).items():
            assert abs(g.reshape(-1)[i] - numeric) <= 1e-6 * max(1.0, abs(numeric)), (layer, name)


def attention_f64():
    f64 = {"dtype": "float64"}
    q, v = rnncore.Input((5, 4), **f64), rnncore.Input((7, 4), **f64)
    hq = L.GRU(4, return_sequences=True, **f64)(q)
    a1 = L.Attention(use_scale=True, **f64)([hq, v])
    a2 = L.AdditiveAttention(**f64)([hq, v, L.Dense(4, **f64)(v)])
    mp = L.MaxPooling1D(3, strides=2, **f64)(
        L.Permute((2, 1), **f64)(L.Dot(axes=2, **f64)([hq, v]))
    )
    f = L.Concatenate(**f64)([L.Flatten(**f64)(a1), L.Flatten(**f64)(a2), L.Flatten(**f64)(mp)])
    return rnncore.Model([q, v], L.Dense(2, **f64)(f)), [RNG.random((16, 5, 4)),
                                                         RNG.random((16, 7, 4))]  # fmt: skip


def seq2seq_f64():
    enc_in, dec_in = rnncore.Input((7, 2), dtype="float64"), rnncore.Input((5, 1), dtype="float64")
    _, h, c = L.LSTM(6, return_state=True, dtype="float64")(enc_in)
    d = L.GRU(6, return_sequences=True, dtype="float64")(dec_in, initial_state=h)
    d2 = L.Add(dtype="float64")([d, L.RepeatVector(5, dtype="float64")(c)])
    y = L.TimeDistributed(L.Dense(1, dtype="float64"), dtype="float64")(d2)
    return rnncore.Model([enc_in, dec_in], y), [RNG.random((16, 7, 2)), RNG.random((16, 5, 1))]


def test_files_json_summary_and_dict_inputs(tmp_path, capsys):
    _, ours, _, x = _pair("seq2seq")
    x = [v.astype(np.float32) for v in x]
    ours.save(tmp_path / "m.rnncore")
    back = rnncore.models.load_model(tmp_path / "m.rnncore")
    assert isinstance(back, rnncore.Model)
    np.testing.assert_array_equal(back.predict(x), ours.predict(x))
    again = rnncore.models.model_from_json(ours.to_json())
    again.set_weights(ours.get_weights())
    np.testing.assert_array_equal(again.predict(x), ours.predict(x))
    clone = rnncore.models.clone_model(ours)
    assert isinstance(clone, rnncore.Model) and clone.get_layer("decoder") is not None
    clone.set_weights(ours.get_weights())
    np.testing.assert_array_equal(clone.predict(x), ours.predict(x))
    by_name = ours.predict({"enc_in": x[0], "dec_in": x[1]})
    np.testing.assert_array_equal(by_name, ours.predict(x))
    ours.summary()
    out = capsys.readouterr().out
    assert "decoder (LSTM)" in out and "encoder/1, encoder/2" in out
    a = rnncore.Input((5, 3))
    model = rnncore.Model(a, L.LayerNormSimpleRNN(2)(a))
    with pytest.raises(ValueError, match="LayerNormSimpleRNN has no Keras counterpart"):
        model.save(tmp_path / "m.keras")
    assert not (tmp_path / "m.keras").exists()


def test_the_c_runtime_refuses_a_functional_model_by_name(tmp_path):
    import capi

    _, ours, _, _ = _pair("two_inputs")
    ours.save(tmp_path / "m.rnncore")
    assert capi.model_load(str(tmp_path / "m.rnncore").encode()) is None
    assert "a functional Model; the C runtime runs Sequential models" in capi.error()


def test_errors_a_user_meets():
    a, b = rnncore.Input((3, 2)), rnncore.Input((4,))
    h = L.GRU(2)(a)
    with pytest.raises(ValueError, match="depend on the input .* not in inputs"):
        rnncore.Model(b, h)
    with pytest.raises(ValueError, match="expected inputs of one shape"):
        L.Add()([h, b])
    with pytest.raises(ValueError, match="expected a list of inputs"):
        L.Concatenate()(h)
    model = rnncore.Model(a, h)
    with pytest.raises(TypeError, match="add\\(\\) is for Sequential"):
        model.add(L.Dense(1))
    with pytest.raises(ValueError, match="expected 2 input arrays"):
        rnncore.Model([a, b], L.Concatenate()([h, b])).predict([np.zeros((1, 3, 2))])
    with pytest.raises(TypeError, match="is symbolic"):
        np.asarray(h)


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_keras_files_of_graphs_both_ways(name, tmp_path):
    keras, ours, theirs, x = _pair(name)
    if isinstance(x, list):
        x = [v.astype(np.float32) if v.dtype.kind == "f" else v for v in x]
    ours.save(tmp_path / "ours.keras")
    opened = keras.models.load_model(tmp_path / "ours.keras")
    np.testing.assert_allclose(opened.predict(x, verbose=0), ours.predict(x), atol=1e-6)
    theirs.save(tmp_path / "theirs.keras")
    loaded = rnncore.models.load_model(tmp_path / "theirs.keras")
    assert isinstance(loaded, rnncore.Model)
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in theirs.layers]
    np.testing.assert_allclose(loaded.predict(x), theirs.predict(x, verbose=0), atol=1e-6)
