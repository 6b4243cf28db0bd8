"""User-written layers as Keras users write them: a Layer subclass with build(), add_weight()
and call() runs in inference; with backward(grad_output, inputs, outputs) it trains, checked
against finite differences and against the same layer in Keras 3 (its autodiff); Lambda."""

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


class ScaledDense(L.Layer):
    """y = tanh(x · w + b) * scale, with a non-trainable scale."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="glorot_uniform",
                                 name="w")  # fmt: skip
        self.b = self.add_weight(shape=(self.units,), initializer="random_normal", name="b")
        self.scale = self.add_weight(shape=(), initializer="ones", trainable=False, name="s")

    def call(self, inputs):
        return np.tanh(inputs @ self.w + self.b) * self.scale

    def backward(self, grad_output, inputs, outputs):
        da = grad_output * (self.scale - outputs * outputs / self.scale)
        flat_x, flat_da = inputs.reshape(-1, inputs.shape[-1]), da.reshape(-1, self.units)
        self.add_gradient(self.w, flat_x.T @ flat_da)
        self.add_gradient("b", flat_da.sum(axis=0))
        return da @ self.w.T

    def get_config(self):
        return {**super().get_config(), "units": self.units}


class NoBackward(L.Layer):
    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, inputs):
        return inputs * self.w


def test_user_layer_gradients_match_finite_differences():
    layer = ScaledDense(3, dtype="float64")
    x = np.random.default_rng(0).standard_normal((4, 5, 2))
    assert check_layer(layer, x) == 2  # w and b; s is not trainable


def test_user_layer_trains_as_the_same_layer_in_keras(tmp_path):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = import_peer("keras")

    class KerasScaledDense(keras.layers.Layer):
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units), name="w")
            self.b = self.add_weight(shape=(self.units,), initializer="zeros", name="b")
            self.scale = self.add_weight(shape=(), initializer="ones", trainable=False, name="s")

        def call(self, inputs):
            return keras.ops.tanh(inputs @ self.w + self.b) * self.scale

    def build(m, layer):
        return m.Sequential([m.Input((5, 2)), m.layers.GRU(4, return_sequences=True), layer,
                             m.layers.Flatten(), m.layers.Dense(1)])  # fmt: skip

    theirs = build(keras, KerasScaledDense(3))
    ours = build(rnncore, ScaledDense(3))
    ours.set_weights(theirs.get_weights())
    rng = np.random.default_rng(1)
    x, y = rng.random((16, 5, 2)).astype(np.float32), rng.random((16, 1)).astype(np.float32)
    np.testing.assert_allclose(ours.predict(x), theirs.predict(x, verbose=0), atol=1e-6)
    assert_trains_like_keras(ours, theirs, keras, x, y)
    ours.save(tmp_path / "m.rnncore")  # found again by its class name and get_config
    back = rnncore.models.load_model(tmp_path / "m.rnncore")
    np.testing.assert_array_equal(back.predict(x), ours.predict(x))


def test_inference_needs_no_backward_and_training_says_what_is_missing():
    model = rnncore.Sequential([rnncore.Input((3,)), NoBackward(), L.Dense(1)])
    assert model.predict(np.ones((2, 3))).shape == (2, 1)
    model.compile("sgd", "mse")
    with pytest.raises(NotImplementedError, match=r"defines call\(\) but no backward"):
        model.fit(np.ones((2, 3)), np.ones((2, 1)), verbose=0)


def test_lambda_layers():
    square = L.Lambda(lambda v: v**2, backward=lambda g, x, y: 2 * x * g, dtype="float64")
    assert check_layer(square, np.random.default_rng(2).standard_normal((3, 4))) == 0
    model = rnncore.Sequential([rnncore.Input((4, 2)), L.Lambda(lambda v: v[:, ::-1]),
                                L.GRU(2)])  # fmt: skip
    assert model.predict(np.ones((1, 4, 2))).shape == (1, 2)
    model.compile("sgd", "mse")
    with pytest.raises(NotImplementedError, match="Lambda without backward="):
        model.fit(np.ones((2, 4, 2)), np.ones((2, 2)), verbose=0)
    with pytest.raises(ValueError, match="a Lambda's function cannot be saved"):
        model.to_json()
    with pytest.raises(TypeError, match="function: expected a callable"):
        L.Lambda(3)


def test_weight_helpers_refuse_misuse():
    layer = ScaledDense(2)
    layer.ensure_built((None, 3))
    with pytest.raises(RuntimeError, match="call it from the layer's backward"):
        layer.add_gradient(layer.w, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="already has a weight named 'w'"):
        layer.add_weight(shape=(1,), name="w")
    with pytest.raises(NotImplementedError, match="not supported for user weights"):
        layer.add_weight(shape=(1,), regularizer="l2")


def test_a_layer_made_of_rnncore_layers_trains_without_a_backward():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = import_peer("keras")

    def block(module):
        class Block(module.layers.Layer):  # as a Keras user writes a composite layer
            def __init__(self, units, **kwargs):
                super().__init__(**kwargs)
                self.dense = module.layers.Dense(units)
                self.norm = module.layers.LayerNormalization()
                self.act = module.activations.get("relu")

            def call(self, inputs):
                return self.act(self.norm(self.dense(inputs)))

        return module.Sequential([module.Input((6,)), Block(4), module.layers.Dense(1)])

    theirs, ours = block(keras), block(rnncore)
    rng = np.random.default_rng(6)
    x, y = rng.random((16, 6)).astype(np.float32), rng.random((16, 1)).astype(np.float32)
    theirs.predict(x, verbose=0)
    ours.set_weights(theirs.get_weights())
    assert_trains_like_keras(ours, theirs, keras, x, y)
