"""Regularizers and constraints as Keras defines them, Keras 3 as the oracle."""

from __future__ import annotations

import os

import numpy as np
import pytest

import rnncore
from rnncore import constraints, regularizers
from rnncore import layers as L

from conftest import import_peer


def _layers(lib_layers, regs, cons, cell):
    options = dict(kernel_regularizer=regs.L2(0.01), recurrent_regularizer=regs.L1(0.005),
                   bias_regularizer=regs.L1L2(0.01, 0.02), activity_regularizer=regs.L2(0.03),
                   kernel_constraint=cons.MaxNorm(0.6), recurrent_constraint=cons.UnitNorm(axis=1),
                   bias_constraint=cons.MaxNorm(0.5))  # fmt: skip
    if cell == "SimpleRNN":  # Keras 3.15's SimpleRNN ignores its activity_regularizer
        del options["activity_regularizer"]
    return [getattr(lib_layers, cell)(4, return_sequences=True, **options),
            lib_layers.Conv1D(3, 2, kernel_regularizer="l2", kernel_constraint=cons.NonNeg()),
            lib_layers.Flatten(),
            lib_layers.Dense(2, kernel_regularizer="l1", bias_constraint=cons.NonNeg(),
                             activity_regularizer="l2")]  # fmt: skip


@pytest.mark.parametrize("cell", ["SimpleRNN", "LSTM", "GRU"])
def test_training_with_regularizers_and_constraints_matches_keras(cell):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = import_peer("keras")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 6, 3)).astype(np.float32)
    y = rng.standard_normal((32, 2)).astype(np.float32)
    rnncore.utils.set_random_seed(0)
    ours = rnncore.Sequential([rnncore.Input((6, 3)), *_layers(L, regularizers, constraints, cell)])
    ours.compile(rnncore.optimizers.SGD(0.1), "mse")
    theirs = keras.Sequential([keras.Input((6, 3)),
                               *_layers(keras.layers, keras.regularizers, keras.constraints,
                                        cell)])  # fmt: skip
    theirs.set_weights(ours.get_weights())
    theirs.compile(keras.optimizers.SGD(0.1), "mse")
    assert ours.evaluate(x, y) == pytest.approx(theirs.evaluate(x, y, verbose=0), rel=1e-5)
    mine = ours.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    want = theirs.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(mine.history["loss"], want.history["loss"], rtol=1e-5)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_penalties_and_projections_as_defined():
    w = np.array([[3.0, -4.0], [0.0, 1.0]])
    assert regularizers.L1(0.1)(w) == pytest.approx(0.8)
    assert regularizers.L2(0.1)(w) == pytest.approx(2.6)
    np.testing.assert_allclose(regularizers.L1L2(0.1, 0.1).gradient(w),
                               0.1 * np.sign(w) + 0.2 * w)  # fmt: skip
    np.testing.assert_allclose(constraints.NonNeg()(w), [[3, 0], [0, 1]])
    np.testing.assert_allclose(np.linalg.norm(constraints.UnitNorm()(w), axis=0), 1, rtol=1e-6)
    capped = constraints.MaxNorm(2.0)(w)
    np.testing.assert_allclose(np.linalg.norm(capped, axis=0), [2.0, 2.0], rtol=1e-6)


def test_they_survive_saving_and_json(tmp_path):
    model = rnncore.Sequential([rnncore.Input((5, 2)),
                                L.LSTM(3, kernel_regularizer="l2", bias_constraint="non_neg",
                                       activity_regularizer=regularizers.L1(0.2)),
                                L.Dense(1)])  # fmt: skip
    model.save(tmp_path / "m.rnncore")
    for again in (rnncore.models.load_model(tmp_path / "m.rnncore"),
                  rnncore.models.model_from_json(model.to_json())):  # fmt: skip
        lstm = again.layers[0]
        assert isinstance(lstm.regularizers["kernel"], regularizers.L2)
        assert lstm.regularizers["kernel"].l2 == 0.01
        assert isinstance(lstm.constraints["bias"], constraints.NonNeg)
        assert lstm.activity_regularizer.l1 == 0.2


def test_clear_errors():
    with pytest.raises(
        TypeError, match="Dropout: unexpected keyword argument 'kernel_regularizer'"
    ):
        L.Dropout(0.1, kernel_regularizer="l2")
    with pytest.raises(ValueError, match="kernel_regularizer: expected 'l1', 'l2'"):
        L.Dense(2, kernel_regularizer="l3")
    with pytest.raises(ValueError, match="bias_constraint: expected 'max_norm'"):
        L.GRU(2, bias_constraint="positive")
    with pytest.raises(ValueError, match="l2: expected a non-negative float"):
        regularizers.L2(-1)
    emb = L.Embedding(10, 3, embeddings_regularizer="l1")
    assert isinstance(emb.regularizers["embeddings"], regularizers.L1)
