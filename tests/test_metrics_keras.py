"""Metric classes and names as Keras 3 computes them (Keras as the oracle)."""

from __future__ import annotations

import os

import numpy as np
import pytest

import rnncore
from rnncore import layers as L
from rnncore import metrics as M

from conftest import import_peer


def _pair(outputs, activation, loss, ours_metrics, keras_metrics):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = import_peer("keras")
    rnncore.utils.set_random_seed(0)
    ours = rnncore.Sequential([rnncore.Input((5, 3)), L.GRU(6),
                               L.Dense(outputs, activation=activation)])  # fmt: skip
    ours.compile("sgd", loss, metrics=ours_metrics)
    theirs = keras.Sequential([keras.Input((5, 3)), keras.layers.GRU(6),
                               keras.layers.Dense(outputs, activation=activation)])  # fmt: skip
    theirs.set_weights(ours.get_weights())
    theirs.compile("sgd", loss, metrics=keras_metrics(keras.metrics))
    return ours, theirs


def _compare(ours, theirs, x, y, sample_weight=None):
    mine = ours.evaluate(x, y, batch_size=16, return_dict=True, sample_weight=sample_weight)
    want = theirs.evaluate(x, y, batch_size=16, return_dict=True, verbose=0,
                           sample_weight=sample_weight)  # fmt: skip
    assert set(mine) == set(want), (mine, want)
    for key in mine:
        assert mine[key] == pytest.approx(want[key], rel=2e-5, abs=1e-6), key
    return mine


def test_binary_metrics_match_keras():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 5, 3)).astype(np.float32)
    y = (rng.random((60, 1)) < 0.4).astype(np.float32)
    ours, theirs = _pair(
        1, "sigmoid", "binary_crossentropy",
        [M.AUC(name="roc"), M.AUC(curve="PR", name="pr"), M.Precision(), M.Recall(),
         M.BinaryAccuracy(), "AUC"],
        lambda km: [km.AUC(name="roc"), km.AUC(curve="PR", name="pr"), km.Precision(),
                    km.Recall(), km.BinaryAccuracy(), "AUC"],
    )  # fmt: skip
    logs = _compare(ours, theirs, x, y)
    assert 0 < logs["roc"] < 1 and "AUC" in logs  # a string keeps its spelling as the key
    history = ours.fit(x, y, epochs=1, verbose=0, validation_split=0.25)
    assert {"roc", "val_roc", "precision", "val_recall"} <= set(history.history)


def test_categorical_and_regression_metrics_match_keras():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((50, 5, 3)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 50)]
    ours, theirs = _pair(
        4, "softmax", "categorical_crossentropy",
        [M.TopKCategoricalAccuracy(k=2), M.CategoricalAccuracy()],
        lambda km: [km.TopKCategoricalAccuracy(k=2), km.CategoricalAccuracy()],
    )  # fmt: skip
    _compare(ours, theirs, x, y)
    y_reg = rng.uniform(0.5, 2.0, (50, 2)).astype(np.float32)
    ours, theirs = _pair(
        2, None, "mse", [M.RootMeanSquaredError(), M.MeanAbsolutePercentageError()],
        lambda km: [km.RootMeanSquaredError(), km.MeanAbsolutePercentageError()],
    )  # fmt: skip
    _compare(ours, theirs, x, y_reg)


def test_sparse_accuracy_and_repeated_names():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((30, 5, 3)).astype(np.float32)
    y = rng.integers(0, 3, 30)
    rnncore.utils.set_random_seed(0)
    model = rnncore.Sequential([rnncore.Input((5, 3)), L.GRU(4), L.Dense(3, "softmax")])
    model.compile("sgd", "sparse_categorical_crossentropy",
                  metrics=[M.SparseCategoricalAccuracy(), "acc", "acc"])  # fmt: skip
    assert model.metrics_names == ["loss", "sparse_categorical_accuracy", "acc", "acc_1"]
    logs = model.evaluate(x, y, return_dict=True)
    assert logs["sparse_categorical_accuracy"] == pytest.approx(logs["acc"]) == logs["acc_1"]
    with pytest.raises(ValueError, match="curve: expected 'ROC' or 'PR'"):
        M.AUC(curve="ROCK")


def test_metrics_reduce_over_data_parallel_ranks_like_one_process():
    # The totals of a split batch add up to the whole batch's: what the ranks' reduction does.
    rng = np.random.default_rng(3)
    y, p = (rng.random((40, 1)) < 0.5).astype(float), rng.random((40, 1))
    for metric in (M.AUC(), M.Precision(), M.RootMeanSquaredError().bind(None)):
        if isinstance(metric, M.RootMeanSquaredError):
            metric._loss = rnncore.losses.get("mse")
        whole = metric.sums(y, p, None)
        parts = metric.sums(y[:13], p[:13], None) + metric.sums(y[13:], p[13:], None)
        np.testing.assert_allclose(parts, whole)
        assert metric.result(parts) == pytest.approx(metric.result(whole))
