"""User-written cells in layers.RNN, run step by step: the forecasting chapter's layer-normalised
SimpleRNN cell written as a user cell (with its backward) equals layers.LayerNormSimpleRNN,
matches finite differences (masks, go_backwards, states in and out), trains, and saves."""

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


class LNSimpleRNNCell(L.Layer):
    """h' = tanh(gamma * LN(x·W + h·U + b) + beta), with its backward written out."""

    def __init__(self, units, epsilon=1e-3, **kwargs):
        super().__init__(**kwargs)
        self.units, self.epsilon = units, epsilon
        self.state_size = units
        self.output_size = units

    def build(self, input_shape):
        self.kernel = self.add_weight(shape=(input_shape[-1], self.units), name="kernel")
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, self.units), initializer="orthogonal", name="recurrent_kernel"
        )
        self.bias = self.add_weight(shape=(self.units,), initializer="zeros", name="bias")
        self.gamma = self.add_weight(shape=(self.units,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(self.units,), initializer="zeros", name="beta")

    def _normalized(self, inputs, states):
        a = inputs @ self.kernel + states[0] @ self.recurrent_kernel + self.bias
        inv = 1 / np.sqrt(a.var(axis=-1, keepdims=True) + self.epsilon)
        return (a - a.mean(axis=-1, keepdims=True)) * inv, inv

    def call(self, inputs, states):
        xhat, _ = self._normalized(inputs, states)
        h = np.tanh(self.gamma * xhat + self.beta)
        return h, [h]

    def backward(self, grad_output, grad_states, inputs, states, output, new_states):
        dh = grad_output + grad_states[0]
        dz = dh * (1 - output * output)
        xhat, inv = self._normalized(inputs, states)
        self.add_gradient(self.gamma, (dz * xhat).sum(axis=0))
        self.add_gradient(self.beta, dz.sum(axis=0))
        dxhat = dz * self.gamma
        da = inv * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                    - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))  # fmt: skip
        self.add_gradient(self.kernel, inputs.T @ da)
        self.add_gradient(self.recurrent_kernel, states[0].T @ da)
        self.add_gradient(self.bias, da.sum(axis=0))
        return da @ self.kernel.T, [da @ self.recurrent_kernel.T]

    def get_config(self):
        return {**super().get_config(), "units": self.units, "epsilon": self.epsilon}


def _x(seed=0):
    x = np.random.default_rng(seed).standard_normal((4, 6, 3)).astype(np.float32)
    x[0, 4:] = 0  # masked by Masking
    x[2, :2] = 0
    return x


@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_the_chapter_cell_equals_layer_norm_simple_rnn(return_sequences, go_backwards):
    rnncore.utils.set_random_seed(0)
    ours = rnncore.Sequential([rnncore.Input((6, 3)),
                               L.RNN(LNSimpleRNNCell(5), return_sequences=return_sequences,
                                     go_backwards=go_backwards)])  # fmt: skip
    fused = rnncore.Sequential([rnncore.Input((6, 3)),
                                L.LayerNormSimpleRNN(5, return_sequences=return_sequences,
                                                     go_backwards=go_backwards)])  # fmt: skip
    fused.set_weights(ours.get_weights())
    x = _x()
    np.testing.assert_allclose(ours.predict(x), fused.predict(x), rtol=1e-5, atol=1e-6)
    for model in (ours, fused):
        model.compile(rnncore.optimizers.SGD(0.1), "mse")
        model.fit(x, np.ones(model.predict(x).shape), epochs=2, batch_size=2, shuffle=False,
                  verbose=0)  # fmt: skip
    for a, b in zip(ours.get_weights(), fused.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("go_backwards", [False, True])
def test_user_cell_gradients_match_finite_differences_with_masks(go_backwards):
    layer = L.RNN(LNSimpleRNNCell(3, dtype="float64"), return_sequences=True,
                  go_backwards=go_backwards, dtype="float64")  # fmt: skip
    x = np.random.default_rng(1).standard_normal((3, 5, 2))
    mask = np.ones((3, 5), bool)
    mask[0, 3:] = False
    mask[1, 1] = False
    assert check_layer(layer, x, mask) == 5


def test_states_in_and_out_in_a_graph_and_files(tmp_path):
    rnncore.utils.set_random_seed(0)
    a, b = rnncore.Input((6, 3)), rnncore.Input((4, 3))
    _, h = L.RNN(LNSimpleRNNCell(4), return_state=True)(a)
    y = L.RNN(LNSimpleRNNCell(4))(b, initial_state=[h])
    model = rnncore.Model([a, b], L.Dense(1)(y))
    x = [_x(), _x(1)[:, :4]]
    model.compile("adam", "mse")
    before = model.get_weights()
    model.fit(x, np.ones((4, 1)), epochs=2, verbose=0)
    assert all(not np.array_equal(p, q) for p, q in zip(before, model.get_weights()))
    model.save(tmp_path / "m.rnncore")
    back = rnncore.models.load_model(tmp_path / "m.rnncore")
    np.testing.assert_array_equal(back.predict(x), model.predict(x))


def _runs_but_cannot_train(cell, units, message):
    """RNN(cell) predicts, and fit stops with a NotImplementedError matching message."""
    model = rnncore.Sequential([rnncore.Input((4, 2)), L.RNN(cell)])
    assert model.predict(np.ones((1, 4, 2))).shape == (1, units)
    model.compile("sgd", "mse")
    with pytest.raises(NotImplementedError, match=message):
        model.fit(np.ones((2, 4, 2)), np.ones((2, units)), verbose=0)


def test_a_cell_without_backward_runs_and_says_what_training_needs():
    class Plain(L.Layer):
        state_size = 2

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], 2))

        def call(self, inputs, states):
            h = np.tanh(inputs @ self.w + states[0])
            return h, [h]

    _runs_but_cannot_train(Plain(), 2, "has no backward.*define one to train it")


def chapter_cell(module):
    """The forecasting chapter's cell class as written (Géron, ch. 15), `keras` = module."""
    keras = module
    LayerNormalization = module.layers.LayerNormalization

    class LNSimpleRNNCell(keras.layers.Layer):
        def __init__(self, units, activation="tanh", **kwargs):
            super().__init__(**kwargs)
            self.state_size = units
            self.output_size = units
            self.simple_rnn_cell = keras.layers.SimpleRNNCell(units, activation=None)
            self.layer_norm = LayerNormalization()
            self.activation = keras.activations.get(activation)

        def call(self, inputs, states):
            outputs, new_states = self.simple_rnn_cell(inputs, states)
            norm_outputs = self.activation(self.layer_norm(outputs))
            return norm_outputs, [norm_outputs]

    return LNSimpleRNNCell


def chapter_model(module):
    """The chapter's model as written, with `keras` = module."""
    keras, LNSimpleRNNCell = module, chapter_cell(module)
    return keras.models.Sequential([
        keras.layers.RNN(LNSimpleRNNCell(20), return_sequences=True, input_shape=[None, 1]),
        keras.layers.RNN(LNSimpleRNNCell(20), return_sequences=True),
        keras.layers.TimeDistributed(keras.layers.Dense(10)),
    ])  # fmt: skip


def test_the_chapter_code_as_written_equals_keras_and_trains_the_same():
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = import_peer("keras")
    theirs, ours = chapter_model(keras), chapter_model(rnncore)
    rng = np.random.default_rng(3)
    x = rng.random((8, 12, 1)).astype(np.float32)
    y = rng.random((8, 12, 10)).astype(np.float32)
    theirs.predict(x, verbose=0)  # Keras builds its cells' layers on the first call
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours.predict(x), theirs.predict(x, verbose=0), atol=2e-5)
    assert_trains_like_keras(ours, theirs, keras, x, y, batch_size=4)


def test_the_chapter_code_equals_layer_norm_simple_rnn_and_finite_differences():
    rnncore.utils.set_random_seed(0)
    model = chapter_model(rnncore)
    fused = rnncore.Sequential([rnncore.Input((None, 1)),
                                L.LayerNormSimpleRNN(20, return_sequences=True),
                                L.LayerNormSimpleRNN(20, return_sequences=True),
                                L.TimeDistributed(L.Dense(10))])  # fmt: skip
    fused.build((12, 1))
    fused.set_weights(model.get_weights())
    x = np.random.default_rng(4).random((4, 12, 1)).astype(np.float32)
    np.testing.assert_allclose(model.predict(x), fused.predict(x), rtol=1e-5, atol=1e-6)
    cell_layer = L.RNN(chapter_cell(rnncore)(3), return_sequences=True)
    f64 = rnncore.Sequential([rnncore.Input((5, 1)), cell_layer], dtype="float64")
    x64 = np.random.default_rng(5).standard_normal((3, 5, 1))
    assert check_layer(f64.layers[0], x64) == 5  # the inner cell's 3 weights, LN's 2


def test_numpy_glue_in_a_cell_without_backward_is_refused_when_training():
    class Glued(L.Layer):
        state_size = 3

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.cell = L.SimpleRNNCell(3)

        def call(self, inputs, states):
            out, _ = self.cell(inputs, states)
            doubled = out * 2  # plain NumPy: the tape cannot know its gradient
            return doubled, [doubled]

    _runs_but_cannot_train(Glued(), 3, "made in plain NumPy.*define backward")


def test_a_step_checks_its_states():
    with pytest.raises(ValueError, match="expected 2 states, got 1"):
        L.LSTMCell(3)(np.zeros((1, 2)), [np.zeros((1, 3))])


def wrapped_cell_model(module, inner):
    """A user cell that runs a built-in cell one step at a time, then normalises its output."""
    keras = module

    class Normed(keras.layers.Layer):
        def __init__(self, cell, **kwargs):
            super().__init__(**kwargs)
            self.cell = cell
            self.state_size = cell.state_size
            self.output_size = cell.units
            self.norm = keras.layers.LayerNormalization()

        def call(self, inputs, states):
            out, new_states = self.cell(inputs, states)
            return self.norm(out), new_states

    return keras.Sequential([keras.Input((6, 3)),
                             keras.layers.RNN(Normed(inner(keras)), return_sequences=True),
                             keras.layers.Dense(2)])  # fmt: skip


INNER = {
    "lstm": lambda m: m.layers.LSTMCell(4),
    "gru-after": lambda m: m.layers.GRUCell(4),
    "gru-before": lambda m: m.layers.GRUCell(4, reset_after=False),
    "simple-relu": lambda m: m.layers.SimpleRNNCell(4, activation="relu"),
}


@pytest.mark.parametrize("inner", sorted(INNER))
def test_built_in_cells_step_inside_user_cells_as_in_keras(inner):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = import_peer("keras")
    theirs = wrapped_cell_model(keras, INNER[inner])
    ours = wrapped_cell_model(rnncore, INNER[inner])
    rng = np.random.default_rng(7)
    x = rng.standard_normal((8, 6, 3)).astype(np.float32)
    y = rng.standard_normal((8, 6, 2)).astype(np.float32)
    theirs.predict(x, verbose=0)
    ours.set_weights(theirs.get_weights())
    np.testing.assert_allclose(ours.predict(x), theirs.predict(x, verbose=0), atol=2e-5)
    assert_trains_like_keras(ours, theirs, keras, x, y, batch_size=4)


@pytest.mark.parametrize("inner", sorted(INNER))
def test_built_in_cell_steps_match_finite_differences(inner):
    rnncore.utils.set_random_seed(1)
    model = rnncore.Sequential([rnncore.Input((4, 3)), L.RNN(INNER[inner](rnncore),
                                                             return_sequences=True)],
                               dtype="float64")  # fmt: skip
    assert model.layers[0].sublayers()  # the fused path: sanity of the setup
    cell = INNER[inner](rnncore)

    class Step(L.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.inner = cell
            self.state_size = cell.state_size

        def call(self, inputs, states):
            return self.inner(inputs, states)

    f64 = rnncore.Sequential([rnncore.Input((4, 3)), L.RNN(Step(), return_sequences=True)],
                             dtype="float64")  # fmt: skip
    x = np.random.default_rng(2).standard_normal((3, 4, 3))
    mask = np.ones((3, 4), bool)
    mask[0, 2:] = False
    assert check_layer(f64.layers[0], x, mask) == len(cell.params)
