"""Keras 3's own files both ways: `model.save("x.keras")` opens in `keras.models.load_model`,
`save_weights("x.weights.h5")` in Keras's `load_weights`, and `rnncore.models.load_model`
reads `.keras` files Keras wrote; every case predicts the same in both libraries (1e-5).
Unknown extensions are refused, and a refused save leaves no file."""

from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import rnncore
from rnncore import layers as L

from conftest import import_peer

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
from keras_cases import CASES, build, make_input  # noqa: E402

# Cases that together hold every layer both libraries have.
NAMES = sorted(CASES)
TOL = 1e-5


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import_peer("h5py")
    return import_peer("keras")


def _same(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=TOL, atol=TOL)


def _ours(name):
    rnncore.utils.set_random_seed(1)
    return build(rnncore, name)


@pytest.mark.parametrize("name", NAMES)
def test_our_keras_file_opens_in_keras(name, tmp_path):
    keras = _keras()
    model = _ours(name)
    path = tmp_path / "m.keras"
    model.save(path)
    theirs = keras.models.load_model(path)
    x = make_input(CASES[name][0])
    _same(theirs.predict(x, verbose=0), model.predict(x))
    assert [type(layer).__name__ for layer in theirs.layers] == [
        type(layer).__name__ for layer in model.layers
    ]


@pytest.mark.parametrize("name", NAMES)
def test_keras_written_file_loads_in_rnncore(name, tmp_path):
    keras = _keras()
    keras.utils.set_random_seed(2)
    theirs = build(keras, name)
    path = tmp_path / "k.keras"
    theirs.save(path)
    model = rnncore.models.load_model(path)
    x = make_input(CASES[name][0])
    _same(model.predict(x), theirs.predict(x, verbose=0))
    # and back: what rnncore writes from it, Keras reads with the same weights
    model.save(tmp_path / "again.keras")
    again = keras.models.load_model(tmp_path / "again.keras")
    for a, b in zip(again.get_weights(), theirs.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["file_mix", "stacked_sentiment", "bidirectional_gru_sum"])
def test_weights_h5_both_ways(name, tmp_path):
    keras = _keras()
    model = _ours(name)
    keras.utils.set_random_seed(3)
    theirs = build(keras, name)
    x = make_input(CASES[name][0])
    model.save_weights(tmp_path / "ours.weights.h5")
    theirs.load_weights(tmp_path / "ours.weights.h5")
    _same(theirs.predict(x, verbose=0), model.predict(x))
    keras.utils.set_random_seed(4)
    fresh = build(keras, name)
    fresh.save_weights(tmp_path / "theirs.weights.h5")
    model.load_weights(tmp_path / "theirs.weights.h5")
    _same(model.predict(x), fresh.predict(x, verbose=0))


def test_keras_file_keeps_regularizers_and_activations(tmp_path):
    keras = _keras()
    model = rnncore.Sequential([rnncore.Input((7, 3)),
                                L.LSTM(4, kernel_regularizer=rnncore.regularizers.L2(0.01),
                                       return_sequences=True),
                                L.Flatten(), L.Dense(2, activation="softplus")])  # fmt: skip
    model.save(tmp_path / "m.keras")
    theirs = keras.models.load_model(tmp_path / "m.keras")
    assert theirs.layers[0].kernel_regularizer.l2 == pytest.approx(0.01)
    assert theirs.layers[-1].get_config()["activation"] == "softplus"
    back = rnncore.models.load_model(tmp_path / "m.keras")
    assert back.layers[0].regularizers["kernel"].l2 == pytest.approx(0.01)


REFUSED = [("save", "m.h5"), ("save", "m.txt"), ("save", "m"), ("save_weights", "m.keras"),
           ("save_weights", "m.h5")]  # fmt: skip


@pytest.mark.parametrize("method, name", REFUSED)
def test_unknown_extensions_are_refused_and_nothing_is_written(method, name, tmp_path):
    model = _ours("file_mix")
    with pytest.raises(ValueError, match=r"writes \.rnncore, \.safetensors, \.(keras|weights\.h5)"):
        getattr(model, method)(tmp_path / name)
    assert list(tmp_path.iterdir()) == []


def test_model_checkpoint_checks_the_extension_up_front():
    with pytest.raises(ValueError, match=r"ModelCheckpoint writes .*\.keras"):
        rnncore.callbacks.ModelCheckpoint("ckpt-{epoch}.pt")
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        rnncore.callbacks.ModelCheckpoint("w.keras", save_weights_only=True)
    rnncore.callbacks.ModelCheckpoint("ckpt-{epoch}.keras")


def test_a_layer_keras_lacks_is_refused_before_writing(tmp_path):
    _keras()
    model = rnncore.Sequential([rnncore.Input((5, 2)), L.LayerNormSimpleRNN(3)])
    with pytest.raises(ValueError, match="LayerNormSimpleRNN has no Keras counterpart"):
        model.save(tmp_path / "m.keras")
    assert list(tmp_path.iterdir()) == []


def test_keras_options_rnncore_lacks_are_named(tmp_path):
    keras = _keras()
    theirs = keras.Sequential([keras.Input((8, 4)), keras.layers.Conv1D(4, 2, groups=2)])
    theirs.save(tmp_path / "g.keras")
    with pytest.raises(ValueError, match=r"Conv1D .*option groups=2 is not supported"):
        rnncore.models.load_model(tmp_path / "g.keras")


def test_a_huge_config_is_refused_cheaply(tmp_path):
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", b" " * (64 << 20))  # compresses to ~64 KiB
        zf.writestr("model.weights.h5", b"")
    with pytest.raises(ValueError, match="config.json is larger than any architecture"):
        rnncore.models.load_model(path)


def test_input_batch_size_is_kept_everywhere(tmp_path, capsys):
    keras = _keras()
    model = rnncore.Sequential([rnncore.Input((5, 2), batch_size=4), L.LSTM(3)])
    model.summary()
    assert "(4, 3)" in capsys.readouterr().out
    assert rnncore.models.model_from_json(model.to_json()).batch_size == 4
    model.save(tmp_path / "m.rnncore")
    assert rnncore.models.load_model(tmp_path / "m.rnncore").batch_size == 4
    model.save(tmp_path / "m.keras")
    assert keras.models.load_model(tmp_path / "m.keras").input_shape == (4, 5, 2)
    assert rnncore.models.load_model(tmp_path / "m.keras").batch_size == 4
    assert L.InputLayer(batch_shape=(8, 3, 2)).get_config()["batch_size"] == 8
    with pytest.raises(ValueError, match="batch_size: expected a positive int, got 0"):
        rnncore.Input((3,), batch_size=0)
