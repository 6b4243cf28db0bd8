"""Keras's RNN(cell) API on the fused kernels: RNN(SimpleRNNCell | LSTMCell | GRUCell),
StackedRNNCells and lists of cells, against Keras itself (same weights, same outputs), against
finite differences, through fit, model files and Keras's own .keras files."""

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
from test_layers_fd import check_layer  # noqa: E402

STACKS = {
    "simple": lambda m: m.SimpleRNNCell(4),
    "lstm": lambda m: m.LSTMCell(4, unit_forget_bias=False),
    "gru-before": lambda m: m.GRUCell(4, reset_after=False),
    "stack-list": lambda m: [m.GRUCell(5), m.SimpleRNNCell(4), m.LSTMCell(3)],
    "stacked-cells": lambda m: m.StackedRNNCells([m.LSTMCell(3), m.GRUCell(3), m.GRUCell(2)]),
}


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return import_peer("keras")


def _masked_x(seed=0):
    x = np.random.default_rng(seed).standard_normal((4, 7, 3)).astype(np.float32)
    x[0, 5:] = 0  # right padding
    x[2, :2] = 0  # left padding
    x[3, 3] = 0  # a gap
    return x


def _pair(keras, stack, **kw):
    theirs = keras.Sequential([keras.Input((7, 3)), keras.layers.Masking(0.0),
                               keras.layers.RNN(STACKS[stack](keras.layers), **kw)])  # fmt: skip
    ours = rnncore.Sequential([rnncore.Input((7, 3)), L.Masking(0.0),
                               L.RNN(STACKS[stack](L), **kw)])  # fmt: skip
    ours.set_weights(theirs.get_weights())
    return ours, theirs


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("stack", sorted(STACKS))
def test_rnn_of_cells_equals_keras(stack, return_sequences, go_backwards):
    keras = _keras()
    ours, theirs = _pair(keras, stack, return_sequences=return_sequences,
                         go_backwards=go_backwards)  # fmt: skip
    x = _masked_x()
    np.testing.assert_allclose(ours.predict(x), theirs.predict(x, verbose=0), rtol=2e-5,
                               atol=2e-6)  # fmt: skip
    assert ours.count_params() == theirs.count_params()


def test_one_training_step_equals_keras():
    keras = _keras()
    ours, theirs = _pair(keras, "stack-list", return_sequences=True)
    x, y = _masked_x(1), np.random.default_rng(2).standard_normal((4, 7, 3)).astype(np.float32)
    assert_trains_like_keras(ours, theirs, keras, x, y, batch_size=4, epochs=1, atol=1e-6)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_stacked_cells_gradients_match_finite_differences(go_backwards):
    layer = L.RNN([L.GRUCell(3), L.LSTMCell(2)], return_sequences=True,
                  go_backwards=go_backwards, dtype="float64")  # fmt: skip
    x = np.random.default_rng(1).standard_normal((3, 6, 2))
    mask = np.ones((3, 6), bool)
    mask[0, 4:] = False
    mask[1, :2] = False
    assert check_layer(layer, x, mask) == 7  # GRU: w_ih, w_hh, b_ih, b_hh; LSTM: 3


def test_cells_survive_model_files_and_keras_files(tmp_path):
    keras = _keras()
    rnncore.utils.set_random_seed(0)
    model = rnncore.Sequential([rnncore.Input((7, 3)),
                                L.RNN([L.GRUCell(4), L.GRUCell(3, reset_after=False)],
                                      return_sequences=True),
                                L.RNN(L.LSTMCell(2, kernel_regularizer="l2"))])  # fmt: skip
    x = _masked_x()
    model.save(tmp_path / "m.rnncore")
    np.testing.assert_array_equal(rnncore.models.load_model(tmp_path / "m.rnncore").predict(x),
                                  model.predict(x))  # fmt: skip
    model.save(tmp_path / "m.keras")
    theirs = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(theirs.predict(x, verbose=0), model.predict(x), atol=1e-5)
    theirs.save(tmp_path / "k.keras")
    back = rnncore.models.load_model(tmp_path / "k.keras")
    np.testing.assert_allclose(back.predict(x), model.predict(x), atol=1e-6)
    assert back.layers[1].cell.options["kernel_regularizer"] is not None


def test_cells_check_their_arguments_and_rnn_its_cell():
    with pytest.raises(ValueError, match="units"):
        L.LSTMCell(0)
    with pytest.raises(TypeError, match="belong to RNN"):
        L.GRUCell(3, return_sequences=True)
    with pytest.raises(TypeError, match="expected SimpleRNNCell, LSTMCell, GRUCell"):
        L.RNN(L.Dense(3))
    with pytest.raises(NotImplementedError, match="return_state with stacked cells"):
        L.RNN([L.GRUCell(3), L.GRUCell(3)], return_state=True)
    assert L.LSTMCell(5).state_size == [5, 5] and L.GRUCell(5).state_size == 5
