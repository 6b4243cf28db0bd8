"""BatchNormalization against Keras 3 (training steps with moving statistics, inference,
masked sequences), finite differences, and Keras files."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

import rnncore
from rnncore import layers as L

from conftest import import_peer

sys.path.insert(0, str(Path(__file__).parent))
from test_layers_fd import check_layer  # noqa: E402


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    return import_peer("keras")


def _models(module, masked):
    first = [module.layers.Masking(0.0)] if masked else []
    return module.Sequential([module.Input((6, 3)), *first,
                              module.layers.GRU(4, return_sequences=True),
                              module.layers.BatchNormalization(momentum=0.8),
                              module.layers.GRU(2)])  # fmt: skip


@pytest.mark.parametrize("masked", [False, True])
def test_training_and_moving_statistics_equal_keras(masked):
    keras = _keras()
    theirs = _models(keras, masked)
    ours = _models(rnncore, masked)
    ours.set_weights(theirs.get_weights())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 6, 3)).astype(np.float32)
    x[0, 4:] = 0
    x[3, :2] = 0
    y = rng.standard_normal((16, 2)).astype(np.float32)
    for model, opt in ((ours, rnncore.optimizers.SGD(0.1)), (theirs, keras.optimizers.SGD(0.1))):
        model.compile(opt, "mse")
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ours.predict(x), theirs.predict(x, verbose=0), rtol=1e-4, atol=1e-5)


def test_gradients_match_finite_differences_with_and_without_a_mask():
    x = np.random.default_rng(1).standard_normal((3, 5, 4))
    mask = np.ones((3, 5), bool)
    mask[0, 3:] = False
    for m in (None, mask):
        layer = L.BatchNormalization(dtype="float64")
        layer.ensure_built(x.shape)
        layer.params["gamma"][:] = [0.5, 1.5, 2.0, -1.0]
        assert check_layer(layer, x, m) == 2
    rows = np.ascontiguousarray(x[:, 0])  # (batch, features)
    assert check_layer(L.BatchNormalization(dtype="float64"), rows) == 2


def test_weights_files_and_refusals(tmp_path):
    keras = _keras()
    rnncore.utils.set_random_seed(0)
    model = _models(rnncore, False)
    bn = model.layers[1]
    assert [w.name for w in bn.weights] == ["gamma", "beta", "moving_mean", "moving_variance"]
    assert [w.name for w in bn.trainable_weights] == [w.name for w in bn.weights]  # as Keras
    model.compile("sgd", "mse")
    x = np.random.default_rng(2).standard_normal((8, 6, 3)).astype(np.float32)
    model.fit(x, np.zeros((8, 2)), epochs=1, verbose=0)
    assert not np.allclose(bn.moving_variance, 1)  # training moved the statistics
    model.save(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.models.load_model(tmp_path / "m.keras").predict(x, verbose=0),
                               model.predict(x), atol=1e-5)  # fmt: skip
    model.save(tmp_path / "m.rnncore")
    np.testing.assert_array_equal(rnncore.models.load_model(tmp_path / "m.rnncore").predict(x),
                                  model.predict(x))  # fmt: skip
    with pytest.raises(ValueError, match="momentum: expected a float in"):
        L.BatchNormalization(momentum=1.5)
    with pytest.raises(NotImplementedError, match="axis must be -1"):
        L.BatchNormalization(axis=1)
