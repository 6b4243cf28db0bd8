"""The models API as a user drives it: learning, fit/evaluate/predict, callbacks, files."""

from __future__ import annotations

import os

import numpy as np
import pytest

import rnncore
from rnncore import callbacks as C
from rnncore import layers as L
from rnncore.models import load_model

CHARS = ["h", "i", "e", "l", "o"]


def _hihello():
    x = np.eye(5, dtype=np.float32)[[[0, 1, 0, 2, 3, 3]]]  # "hihell"
    y = np.eye(5, dtype=np.float32)[[[1, 0, 2, 3, 3, 4]]]  # "ihello"
    return x, y


def test_hihello_learns_within_50_epochs():
    rnncore.utils.set_random_seed(0)
    x, y = _hihello()
    model = rnncore.Sequential(
        [
            rnncore.Input((6, 5)),
            L.LSTM(5, return_sequences=True),
            L.TimeDistributed(L.Dense(5, activation="softmax")),
        ]
    )
    model.compile(
        rnncore.optimizers.Adam(learning_rate=0.1), "categorical_crossentropy", ["accuracy"]
    )
    history = model.fit(x, y, epochs=50, verbose=0)
    assert "".join(CHARS[i] for i in model.predict(x)[0].argmax(-1)) == "ihello"
    assert len(history.history["loss"]) == 50 and history.history["accuracy"][-1] == 1.0


def _sentiment_data(n, T=20, V=30, seed=0):
    """Label 1 when 'good' words (ids 2..5) outnumber 'bad' ones (6..9); left-padded, masked."""
    rng = np.random.default_rng(seed)
    ids = np.zeros((n, T), np.int64)
    labels = np.zeros(n, np.int64)
    for i in range(n):
        length = rng.integers(5, T + 1)
        words = rng.integers(10, V, length)
        k_good, k_bad = rng.choice([(3, 1), (1, 3), (2, 0), (0, 2)], p=[0.25] * 4)
        pos = rng.choice(length, k_good + k_bad, replace=False)
        words[pos[:k_good]] = rng.integers(2, 6, k_good)
        words[pos[k_good:]] = rng.integers(6, 10, k_bad)
        ids[i, T - length :] = words
        labels[i] = k_good > k_bad
    return ids, labels


def test_masked_bidirectional_sentiment_learns():
    rnncore.utils.set_random_seed(1)
    x, y = _sentiment_data(1200)
    model = rnncore.Sequential(
        [
            L.Embedding(30, 8, mask_zero=True),
            L.Bidirectional(L.GRU(8)),
            L.Dense(2, activation="softmax"),
        ]
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.compile(rnncore.optimizers.Adam(0.02), "sparse_categorical_crossentropy", ["accuracy"])
    model.fit(x[:1000], y[:1000], epochs=12, batch_size=32, verbose=0)
    loss, acc = model.evaluate(x[1000:], y[1000:])
    assert acc > 0.9, (loss, acc)


def test_same_seed_same_run_bit_for_bit():
    def run():
        rnncore.utils.set_random_seed(7)
        rng = np.random.default_rng(0)
        x, y = rng.standard_normal((64, 10, 2)), rng.standard_normal((64, 1))
        m = rnncore.Sequential(
            [L.SimpleRNN(6, dropout=0.2, input_shape=(10, 2)), L.Dropout(0.3), L.Dense(1)]
        )
        m.compile("adam", "mse")
        m.fit(x, y, epochs=2, batch_size=16, verbose=0, validation_split=0.25)
        return m.get_weights()

    for a, b in zip(run(), run()):
        assert np.array_equal(a, b)


def test_fit_evaluate_predict_history_and_validation(capsys):
    rnncore.utils.set_random_seed(2)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((100, 8, 1)).astype(np.float32)
    y = x.sum(axis=1)
    model = rnncore.Sequential([L.GRU(8, input_shape=(8, 1)), L.Dense(1)])
    model.compile("adam", "mse", metrics=["mae"])
    h = model.fit(x, y, epochs=3, batch_size=16, validation_split=0.2, verbose=1)
    out = capsys.readouterr().out
    assert "Epoch 3/3" in out and "val_loss" in out and "ms/step" in out
    assert set(h.history) == {"loss", "mae", "val_loss", "val_mae"}
    assert h.history["loss"][-1] < h.history["loss"][0]
    loss, mae = model.evaluate(x, y)
    assert np.isclose(mae, np.abs(model.predict(x, batch_size=7) - y).mean(), rtol=1e-4)
    assert np.allclose(model.predict(x), model(x), atol=1e-6)
    model.fit(x, y, epochs=1, verbose=2, validation_data=(x[:10], y[:10]))
    assert "Epoch 1/1" in capsys.readouterr().out


def test_summary_and_param_counts(capsys):
    model = rnncore.Sequential(
        [
            rnncore.Input((50, 1)),
            L.SimpleRNN(20, return_sequences=True),
            L.SimpleRNN(20),
            L.Dense(1),
        ]
    )
    model.summary()
    out = capsys.readouterr().out
    assert "(None, 50, 20)" in out and "Total params: 1,281" in out
    assert L.LSTM(3).count_params() == 0  # unbuilt
    lstm, gru = L.LSTM(4), L.GRU(4)
    lstm(np.zeros((1, 2, 3))), gru(np.zeros((1, 2, 3)))
    assert lstm.count_params() == 4 * 4 * (3 + 4 + 1) and gru.count_params() == 3 * 4 * (3 + 4 + 2)


def test_layers_called_directly_like_keras():
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    seq, h, c = L.LSTM(4, return_sequences=True, return_state=True)(x)
    assert seq.shape == (2, 5, 4) and np.allclose(seq[:, -1], h) and c.shape == (2, 4)
    assert L.GRU(4)(x).shape == (2, 4) and L.Conv1D(2, 3)(x).shape == (2, 3, 2)
    assert L.Bidirectional(L.SimpleRNN(3, return_sequences=True))(x).shape == (2, 5, 6)
    lstm = L.LSTM(4)
    y0 = lstm(x, initial_state=[np.ones((2, 4), np.float32)] * 2)
    assert not np.allclose(y0, lstm(x))


def test_stateful_carries_state_until_reset():
    x = np.random.default_rng(0).standard_normal((2, 6, 3)).astype(np.float32)
    ref = L.GRU(4, seed=3)
    whole = ref(x)
    layer = L.GRU(4, stateful=True, seed=3)
    layer(x[:, :3])
    assert np.allclose(layer(x[:, 3:]), whole, atol=1e-6)
    layer.reset_states()
    assert np.allclose(layer(x), whole, atol=1e-6)
    with pytest.raises(ValueError, match="batch size"):
        layer(x[:1])


def test_keras_weight_layout_and_gate_order():
    x = np.random.default_rng(0).standard_normal((2, 4, 3))
    gru = L.GRU(5, dtype="float64")
    gru(x)
    kernel, rec, bias = gru.get_weights()
    assert kernel.shape == (3, 15) and rec.shape == (5, 15) and bias.shape == (2, 15)
    # Keras z, r, h -> PyTorch r, z, n: Keras's first block is PyTorch's second
    assert np.array_equal(kernel[:, :5], gru.params["w_ih"][5:10].T)
    lstm = L.LSTM(2, dtype="float64")
    lstm(x)
    assert np.array_equal(lstm.get_weights()[2], [0, 0, 1, 1, 0, 0, 0, 0])  # unit_forget_bias


def test_save_load_round_trip(tmp_path):
    rnncore.utils.set_random_seed(4)
    model = rnncore.Sequential(
        [
            L.Embedding(12, 4, mask_zero=True, input_shape=(6,)),
            L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode="ave"),
            L.Conv1D(2, 2, padding="causal"),
            L.GRU(3, reset_after=False),
            L.Dense(2, activation="softmax"),
        ]
    )
    ids = np.random.default_rng(0).integers(0, 12, (5, 6))
    path = tmp_path / "any name.rnncore"
    model.save(path)
    loaded = load_model(path)
    assert [type(a) for a in loaded.layers] == [type(a) for a in model.layers]
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert np.array_equal(a, b)
    assert np.array_equal(model.predict(ids), loaded.predict(ids))
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_callbacks_early_stopping_checkpoint_scheduler_nan(tmp_path):
    rnncore.utils.set_random_seed(5)
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((40, 5, 2)), rng.standard_normal((40, 1))
    model = rnncore.Sequential([L.SimpleRNN(4, input_shape=(5, 2)), L.Dense(1)])
    model.compile(rnncore.optimizers.SGD(0.01), "mse")
    ckpt = tmp_path / "best.rnncore"
    seen = []
    h = model.fit(
        x, y, epochs=30, verbose=0, validation_data=(x, -y),  # val diverges: early stop
        callbacks=[
            C.EarlyStopping(patience=2, restore_best_weights=True),
            C.ModelCheckpoint(ckpt, save_best_only=True),
            C.LearningRateScheduler(lambda epoch, lr: seen.append(lr) or lr * 0.5),
        ],
    )  # fmt: skip
    assert len(h.history["loss"]) < 30 and seen[1] == 0.005
    best = int(np.argmin(h.history["val_loss"]))
    assert np.isclose(model.evaluate(x, -y), h.history["val_loss"][best], rtol=1e-5)
    assert np.isclose(load_model(ckpt).evaluate(x, -y), h.history["val_loss"][best], rtol=1e-5)

    model.compile(rnncore.optimizers.SGD(0.01), "mse")
    plateau = C.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0, min_delta=10.0)
    model.fit(x, y, epochs=3, verbose=0, callbacks=[plateau])
    assert (
        model.optimizer.learning_rate == 0.01 * 0.5**2
    )  # never improves by 10: halves after epochs 2, 3

    bad = y.copy()
    bad[3] = np.nan
    h = model.fit(x, bad, epochs=5, batch_size=8, verbose=0, callbacks=[C.TerminateOnNaN()])
    assert len(h.history["loss"]) == 1


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop", "adagrad"])
def test_optimizers_reduce_loss(name):
    rnncore.utils.set_random_seed(6)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((64, 6, 2)).astype(np.float32)
    y = x[:, -1, :1]
    model = rnncore.Sequential([L.LSTM(6, input_shape=(6, 2)), L.Dense(1)])
    O = rnncore.optimizers
    opt = {
        "sgd": O.SGD(0.1, momentum=0.9, nesterov=True, clipnorm=1.0),
        "adam": O.Adam(0.01),
        "rmsprop": O.RMSprop(0.01, momentum=0.5),
        "adagrad": O.Adagrad(0.1),
    }[name]
    assert type(O.get(name)) is type(opt)  # the string names resolve to the same classes
    model.compile(opt, "mse")
    h = model.fit(x, y, epochs=8, batch_size=16, verbose=0)
    assert h.history["loss"][-1] < 0.7 * h.history["loss"][0]


def test_gradient_clipping():
    opt = rnncore.optimizers.SGD(1.0, global_clipnorm=1.0)
    p = {"a": np.zeros(2), "b": np.zeros(2)}
    opt.apply(p, {"a": np.array([3.0, 0.0]), "b": np.array([0.0, 4.0])})
    assert np.allclose(p["a"], [-0.6, 0]) and np.allclose(p["b"], [0, -0.8])
    opt = rnncore.optimizers.SGD(1.0, clipvalue=0.5)
    p = {"a": np.zeros(2)}
    opt.apply(p, {"a": np.array([3.0, -0.1])})
    assert np.allclose(p["a"], [-0.5, 0.1])


def test_layer_norm_simple_rnn_forward_matches_the_cell_formula(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 6, 2)).astype(np.float32)
    mask = np.ones((3, 6), bool)
    mask[1, 4:] = False  # right padding: the state is carried over masked steps
    layer = L.LayerNormSimpleRNN(4, return_sequences=True, go_backwards=True)
    y = layer(x, mask=mask)
    k, rk, b, gamma, beta = layer.get_weights()
    assert layer.count_params() == 2 * 4 + 4 * 4 + 3 * 4
    h = np.zeros((3, 4))
    for j, t in enumerate(reversed(range(6))):  # go_backwards: last step first
        a = x[:, t] @ k + h @ rk + b
        ln = (a - a.mean(-1, keepdims=True)) / np.sqrt(a.var(-1, keepdims=True) + 1e-3)
        h = np.where(mask[:, t, None], np.tanh(gamma * ln + beta), h)
        np.testing.assert_allclose(y[:, j], h, rtol=1e-5, atol=1e-6)
    model = rnncore.Sequential([rnncore.Input((6, 2)), L.LayerNormSimpleRNN(4), L.Dense(1)])
    model.compile("adam", "mse")
    model.fit(x, rng.standard_normal((3, 1)), epochs=2, verbose=0)
    model.save(tmp_path / "ln.safetensors")
    back = load_model(tmp_path / "ln.safetensors")
    np.testing.assert_array_equal(back.predict(x), model.predict(x))


def _per_parameter_updates(opt, params, grads):
    """The update rule applied one parameter at a time (what apply did before it went flat)."""
    opt.iterations += 1
    for k, g in opt._clip(grads).items():
        p = params[k]
        p -= opt._step(k, p, g.astype(p.dtype, copy=False)).astype(p.dtype, copy=False)


@pytest.mark.parametrize(
    "make",
    [
        lambda: rnncore.optimizers.Adam(0.01),
        lambda: rnncore.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
        lambda: rnncore.optimizers.RMSprop(0.01, momentum=0.5),
        lambda: rnncore.optimizers.Adagrad(0.1),
    ],
    ids=["adam", "sgd", "rmsprop", "adagrad"],
)
def test_optimizers_update_all_parameters_as_one_vector_with_the_same_bits(make):
    """apply() runs the update rule once over every parameter as one flat vector; the result
    is bitwise the rule applied per parameter, each parameter's slots are its part of the
    flat ones, and a change of the parameter set mid-training keeps every moment."""
    rng = np.random.default_rng(0)
    shapes = {"a": (3, 4), "b": (4,), "c": (2, 5, 3)}
    flat_p = {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}
    ref_p = {k: v.copy() for k, v in flat_p.items()}
    flat_opt, ref_opt = make(), make()
    for step in range(6):
        keys = list(shapes) if step != 3 else ["c", "a"]  # one step without "b"
        grads = {k: rng.standard_normal(shapes[k]).astype(np.float32) for k in keys}
        flat_opt.apply(flat_p, grads)
        _per_parameter_updates(ref_opt, ref_p, grads)
        for k in shapes:
            assert flat_p[k].tobytes() == ref_p[k].tobytes(), (step, k)
            for name, slot in ref_opt.slots.get(k, {}).items():
                assert flat_opt.slots[k][name].tobytes() == slot.tobytes(), (step, k, name)
