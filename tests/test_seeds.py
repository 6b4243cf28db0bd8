"""Seeds as Keras users expect them (issue 24, item 8)."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnncore
from rnncore.layers import GRU, LSTM, Dense, Dropout


def _weights_built_after_seed(seed):
    layers = [LSTM(4, return_sequences=True), Dropout(0.5), GRU(3), Dense(1)]  # made first
    rnncore.utils.set_random_seed(seed)  # ... seeded after
    model = rnncore.Sequential([rnncore.Input((5, 2)), *layers])
    model.build()
    return model.get_weights()


def test_the_seed_fixes_layers_constructed_before_it():
    first, again = _weights_built_after_seed(7), _weights_built_after_seed(7)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    other = _weights_built_after_seed(8)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_the_seed_also_seeds_python_and_numpy_global_generators():
    rnncore.utils.set_random_seed(3)
    drawn = (random.random(), np.random.rand())  # noqa: NPY002 -- the global generator
    rnncore.utils.set_random_seed(3)
    assert (random.random(), np.random.rand()) == drawn  # noqa: NPY002


def test_an_example_gives_the_same_output_every_run():
    script = Path(__file__).parent.parent / "examples" / "noisy_sine.py"

    def run():
        out = subprocess.run([sys.executable, str(script), "--quick"], capture_output=True,
                             text=True, timeout=300)  # fmt: skip
        assert out.returncode == 0, out.stderr
        return out.stdout

    first = run()
    assert "test MSE" in first and run() == first


def test_batch_methods_get_layer_and_to_categorical_as_in_keras():
    rnncore.utils.set_random_seed(0)
    model = rnncore.Sequential([rnncore.Input((4, 2)), LSTM(3, name="rec"), Dense(2, name="out")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).standard_normal((6, 4, 2)).astype(np.float32)
    y = rnncore.utils.to_categorical([0, 1, 1, 0, 1, 0], 2)
    assert y.shape == (6, 2) and y.dtype == np.float32 and y[1].tolist() == [0.0, 1.0]
    before = model.get_layer("out").get_weights()[0].copy()
    loss, acc = model.train_on_batch(x, y)
    assert np.isfinite(loss) and 0 <= acc <= 1
    assert not np.array_equal(model.get_layer(index=-1).get_weights()[0], before)  # trained
    logs = model.test_on_batch(x, y, return_dict=True)
    assert set(logs) == set(model.metrics_names) == {"loss", "accuracy"}
    assert logs["loss"] == model.evaluate(x, y, batch_size=6, return_dict=True)["loss"]
    np.testing.assert_array_equal(model.predict_on_batch(x), model.predict(x))
    assert model.get_layer("rec") is model.layers[0]
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        model.get_layer("nope")
    with pytest.raises(ValueError, match="class ids must be in"):
        rnncore.utils.to_categorical([0, 3], 3)


def test_csv_logger_and_lambda_callback_as_in_keras(tmp_path):
    import csv

    cb = rnncore.callbacks
    rnncore.utils.set_random_seed(0)
    model = rnncore.Sequential([rnncore.Input((4, 2)), GRU(3), Dense(1)])
    model.compile(optimizer="adamw", loss="mse", metrics=["mae"])
    x = np.random.default_rng(1).standard_normal((16, 4, 2)).astype(np.float32)
    y = x.sum(axis=(1, 2))[:, None]
    seen = []
    log = tmp_path / "log.csv"
    callbacks = [cb.CSVLogger(log),
                 cb.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(logs["loss"]),
                                   on_train_begin=lambda logs: seen.append("begin"))]  # fmt: skip
    history = model.fit(x, y, epochs=3, batch_size=8, validation_split=0.25, verbose=0,
                        callbacks=callbacks)  # fmt: skip
    rows = list(csv.reader(log.open()))
    assert rows[0] == ["epoch", "loss", "mae", "val_loss", "val_mae"]
    assert [r[0] for r in rows[1:]] == ["0", "1", "2"]
    assert [float(r[1]) for r in rows[1:]] == history.history["loss"]
    assert seen == ["begin", *history.history["loss"]]
    model.fit(x, y, epochs=1, verbose=0, callbacks=[cb.CSVLogger(log, append=True)])
    assert len(list(csv.reader(log.open()))) == 5  # one more row, no second header
    with pytest.raises(TypeError, match="on_epoch_end: expected a callable"):
        cb.LambdaCallback(on_epoch_end=3)


def test_to_json_model_from_json_and_clone_model():
    rnncore.utils.set_random_seed(0)
    model = rnncore.Sequential([rnncore.Input((4, 2)), LSTM(3, return_sequences=True),
                                GRU(2, reset_after=False), Dense(1)])  # fmt: skip
    x = np.random.default_rng(2).standard_normal((5, 4, 2)).astype(np.float32)
    text = model.to_json()
    rebuilt = rnncore.models.model_from_json(text)
    assert rebuilt.to_json() == text and rebuilt.count_params() == model.count_params()
    clone = rnncore.models.clone_model(model)
    assert [type(a) for a in clone.layers] == [type(b) for b in model.layers]
    assert not np.allclose(clone.predict(x), model.predict(x))  # fresh weights
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone.predict(x), model.predict(x))
    with pytest.raises(ValueError, match="invalid architecture"):
        rnncore.models.model_from_json('{"class_name": "Functional"}')


def test_tutorial_idioms_port_unchanged():
    """What stopped classic Keras lessons: a custom metric function, the function-style
    losses, 'acc' history keys, and tf.keras 2's input_length / input_shape keywords."""
    from rnncore import losses, metrics
    from rnncore.layers import Embedding, InputLayer, SimpleRNN

    def last_time_step_mse(y_true, y_pred):  # Géron's chapter 15 metric
        return metrics.mean_squared_error(y_true[:, -1], y_pred[:, -1])

    rnncore.utils.set_random_seed(0)
    model = rnncore.Sequential([InputLayer(input_shape=[None, 1]),
                                SimpleRNN(4, return_sequences=True),
                                rnncore.layers.TimeDistributed(Dense(3))])  # fmt: skip
    model.compile(loss="mse", optimizer="adam", metrics=[last_time_step_mse])
    x = np.random.default_rng(0).standard_normal((8, 5, 1)).astype(np.float32)
    y = np.random.default_rng(1).standard_normal((8, 5, 3)).astype(np.float32)
    history = model.fit(x, y, epochs=2, verbose=0, validation_data=(x, y))
    assert {"loss", "last_time_step_mse", "val_last_time_step_mse"} <= set(history.history)
    expected = losses.mean_squared_error(y[:, -1], model.predict(x)[:, -1]).mean()
    assert model.evaluate(x, y, batch_size=8)[1] == pytest.approx(expected, rel=1e-5)

    ids = np.random.default_rng(2).integers(1, 20, (16, 6))
    labels = (ids[:, 0] > 10).astype(int)
    clf = rnncore.Sequential([Embedding(20, 4, input_length=6), GRU(3),
                              Dense(1, activation="sigmoid")])  # fmt: skip
    clf.compile(optimizer="rmsprop", loss="binary_crossentropy", metrics=["acc"])
    hist = clf.fit(ids, labels, epochs=1, verbose=0, validation_split=0.25)
    assert set(hist.history) == {"loss", "acc", "val_loss", "val_acc"}
    assert clf.built_input_shape == (6,)
