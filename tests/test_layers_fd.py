"""Every layer's backward (and whole models') against central finite differences, float64."""

from __future__ import annotations

import numpy as np
import pytest

import rnncore
from rnncore import _cells
from rnncore import layers as L

EPS = 1e-6
TOL = 1e-6


@pytest.fixture(autouse=True)
def _seeded_weights():
    """Layers built without a seed draw their weights from rnncore's global generator, which
    is unseeded: seeding it per test makes each finite-difference check the same every run
    (a draw near a relu kink otherwise fails at random)."""
    rnncore.utils.set_random_seed(0)


def _seeded_forward(layer, x, mask):
    """Forward with the layer's random generators reset, so dropout masks repeat."""
    for sub in [layer, *layer.sublayers()]:
        sub._rng = np.random.default_rng(123)
    return layer.forward(x, mask, True)


def _numeric(f, arr, n_entries, rng):
    """Central differences of f() w.r.t. a random subset of arr's entries (perturbed in place)."""
    flat = arr.reshape(-1)
    picks = rng.choice(flat.size, min(n_entries, flat.size), replace=False)
    out = {}
    for i in picks:
        old = flat[i]
        flat[i] = old + EPS
        up = f()
        flat[i] = old - EPS
        down = f()
        flat[i] = old
        out[i] = (up - down) / (2 * EPS)
    return out


def _rel_err(analytic, numeric):
    a = np.array([analytic.reshape(-1)[i] for i in numeric])
    n = np.array(list(numeric.values()))
    return np.abs(a - n).max() / max(np.abs(n).max(), 1e-3)


def _nested(layer):
    """The layer and every layer inside it (wrapped layers, a cell's layers), depth first."""
    yield layer
    for sub in layer.sublayers():
        yield from _nested(sub)


def check_layer(layer, x, mask=None, n_entries=25, seed=0):
    rng = np.random.default_rng(seed)
    layer.ensure_built(x.shape)
    y, _ = _seeded_forward(layer, x, mask)
    outs = y if isinstance(y, list) else [y]
    weights = [rng.standard_normal(o.shape) for o in outs]

    def loss():
        y, _ = _seeded_forward(layer, x, mask)
        ys = y if isinstance(y, list) else [y]
        return sum(float((w * o).sum()) for w, o in zip(weights, ys))

    y, ctx = _seeded_forward(layer, x, mask)
    grads = {}
    dy = weights if isinstance(y, list) else weights[0]
    dx = layer.backward(ctx, dy, grads)
    checked = 0
    for sub in _nested(layer):
        for name, p in sub.params.items():
            if name in getattr(sub, "_frozen", ()):  # a user layer's non-trainable weight
                continue
            err = _rel_err(grads[(sub, name)], _numeric(loss, p, n_entries, rng))
            assert err < TOL, f"{sub.name}.{name}: relative error {err:.2e}"
            checked += 1
    if x.dtype.kind == "f":
        err = _rel_err(dx, _numeric(loss, x, n_entries, rng))
        assert err < TOL, f"{layer.name} input: relative error {err:.2e}"
    return checked


def _x(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape)


F64 = {"dtype": "float64"}


@pytest.mark.parametrize(
    "activation", ["linear", "relu", "tanh", "sigmoid", "softmax", "softplus", "elu"]
)
@pytest.mark.parametrize("rank", [2, 3])
def test_dense(activation, rank):
    x = _x(4, 6) if rank == 2 else _x(3, 5, 6)
    check_layer(L.Dense(4, activation=activation, **F64), x)


@pytest.mark.parametrize(
    "kw",
    [
        {"padding": "valid"},
        {"padding": "causal", "dilation_rate": 2},
        {"padding": "same", "strides": 2},
        {"padding": "same", "kernel_size": 4},
        {"padding": "valid", "strides": 2, "kernel_size": 4},
        {"padding": "causal", "dilation_rate": 4, "kernel_size": 2},
    ],
)
def test_conv1d(kw):
    kw = {"kernel_size": 3, **kw}
    check_layer(L.Conv1D(4, activation="tanh", **kw, **F64), _x(2, 11, 3))


def test_layer_norm_dropout_flatten_masking_timedistributed():
    check_layer(L.LayerNormalization(**F64), _x(3, 4, 6))
    check_layer(L.Dropout(0.4, **F64), _x(3, 4, 6))
    check_layer(L.Flatten(**F64), _x(3, 4, 6))
    check_layer(L.Masking(**F64), _x(3, 5, 4))  # masked steps flip under perturbation
    x = _x(3, 5, 4)
    x[1, 3:] = 0.0
    layer = L.Masking(**F64)
    y, ctx = layer.forward(x, None, True)
    dx = layer.backward(ctx, np.ones_like(x), {})
    assert np.array_equal(layer.compute_mask(x, None)[1], [True] * 3 + [False] * 2)
    assert np.array_equal(dx[1, 3:], np.zeros((2, 4))) and np.array_equal(dx[0], np.ones((5, 4)))
    check_layer(L.TimeDistributed(L.Dense(3, activation="tanh", **F64)), _x(3, 5, 4))


def test_embedding():
    ids = np.random.default_rng(0).integers(0, 7, (4, 6))
    assert check_layer(L.Embedding(7, 3, **F64), ids) == 1


def _recurrent_layer(cell):
    return lambda **k: getattr(L, cell.keras_layer)(5, **cell.keras_options, **k)


RECURRENT = {cell.name: _recurrent_layer(cell) for cell in _cells.CELLS}


def _mask(kind, B=4, T=7):
    m = np.ones((B, T), bool)
    if kind == "right":
        for b, n in enumerate([7, 3, 0, 5]):
            m[b, n:] = False
    elif kind == "left":
        for b, n in enumerate([7, 3, 0, 5]):
            m[b, : T - n] = False
    elif kind == "gaps":
        m[1, [1, 4]] = False
        m[3, [0, 6]] = False
        m[2, :] = False
    return None if kind == "none" else m


@pytest.mark.parametrize("cell", sorted(RECURRENT))
@pytest.mark.parametrize("mask", ["none", "right", "left", "gaps"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_recurrent(cell, mask, return_sequences, go_backwards):
    layer = RECURRENT[cell](return_sequences=return_sequences, go_backwards=go_backwards, **F64)
    check_layer(layer, _x(4, 7, 3), _mask(mask))


@pytest.mark.parametrize("cell", sorted(RECURRENT))
def test_recurrent_state_outputs_and_dropout(cell):
    layer = RECURRENT[cell](
        return_state=True, dropout=0.3, recurrent_dropout=0.4, zero_output_for_mask=True, **F64
    )
    check_layer(layer, _x(4, 7, 3), _mask("right"))


@pytest.mark.parametrize("mask", ["none", "right", "gaps"])
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_layer_norm_simple_rnn(mask, return_sequences, go_backwards, activation):
    layer = L.LayerNormSimpleRNN(
        5, activation, return_sequences=return_sequences, go_backwards=go_backwards, **F64
    )
    layer.ensure_built((4, 7, 3))
    layer.params["gamma"][:] = np.linspace(0.5, 1.5, 5)  # away from the ones/zeros init
    layer.params["beta"][:] = np.linspace(-0.2, 0.2, 5)
    assert check_layer(layer, _x(4, 7, 3), _mask(mask)) == 5


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("mask", ["none", "right", "left"])
def test_bidirectional(merge_mode, mask):
    layer = L.Bidirectional(L.LSTM(4, return_sequences=True, **F64), merge_mode=merge_mode)
    assert check_layer(layer, _x(4, 7, 3), _mask(mask)) == 6


def _model_fd(model, x, y, n_entries=15, seed=0):
    rng = np.random.default_rng(seed)

    def loss():
        y_pred, mask, _ = model._forward(model._prepare_x(x), True)
        w = mask.astype(float) if (mask is not None and y_pred.ndim == 3) else None
        return model.loss.value_and_grad(y, y_pred, w)[0]

    xp = model._prepare_x(x)
    y_pred, mask, ctxs = model._forward(xp, True)
    w = mask.astype(float) if (mask is not None and y_pred.ndim == 3) else None
    _, dpred = model.loss.value_and_grad(y, y_pred, w)
    grads = {}
    model._backward(ctxs, dpred, grads)
    params = model._leaf_params()
    assert set(grads) == set(params)
    for key, p in params.items():
        err = _rel_err(grads[key], _numeric(loss, p, n_entries, rng))
        assert err < TOL, f"{key[0].name}.{key[1]}: relative error {err:.2e}"


@pytest.mark.parametrize("padding", ["post", "pre"])
def test_stacked_masked_model(padding):
    """Embedding(mask_zero) -> Bidirectional(LSTM) -> GRU -> Dense(softmax), crossentropy."""
    rng = np.random.default_rng(3)
    ids = rng.integers(1, 9, (5, 8))
    for b, n in enumerate([8, 5, 1, 3, 6]):
        if padding == "post":
            ids[b, n:] = 0
        else:
            ids[b, : 8 - n] = 0
    model = rnncore.Sequential(
        [
            L.Embedding(9, 4, mask_zero=True),
            L.Bidirectional(L.LSTM(3, return_sequences=True)),
            L.GRU(4),
            L.Dense(3, activation="softmax"),
        ],
        dtype="float64",
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    _model_fd(model, ids, rng.integers(0, 3, 5))


def test_conv_gru_model_and_sequence_loss():
    rng = np.random.default_rng(4)
    model = rnncore.Sequential(
        [
            rnncore.Input((12, 2)),
            L.Conv1D(3, 2, padding="causal", dilation_rate=2, activation="relu"),
            L.Conv1D(4, 3, strides=2, padding="valid"),
            L.GRU(5, return_sequences=True, reset_after=False),
            L.LayerNormalization(),
            L.TimeDistributed(L.Dense(2)),
        ],
        dtype="float64",
    )
    model.compile("sgd", "huber")
    _model_fd(model, rng.standard_normal((3, 12, 2)), rng.standard_normal((3, 5, 2)))


@pytest.mark.parametrize("loss", ["mse", "mae", "binary_crossentropy", "categorical_crossentropy"])
def test_losses_through_a_model(loss):
    rng = np.random.default_rng(5)
    act = {"binary_crossentropy": "sigmoid", "categorical_crossentropy": "softmax"}.get(loss)
    model = rnncore.Sequential(
        [rnncore.Input((6, 3)), L.SimpleRNN(4), L.Dense(3, activation=act)], dtype="float64"
    )
    model.compile("sgd", loss)
    y = rng.uniform(0.05, 0.95, (4, 3))
    if loss == "categorical_crossentropy":
        y = np.eye(3)[[0, 2, 1, 2]]
    _model_fd(model, rng.standard_normal((4, 6, 3)), y)


LOGIT_LOSSES = [
    rnncore.losses.BinaryCrossentropy,
    rnncore.losses.CategoricalCrossentropy,
    rnncore.losses.SparseCategoricalCrossentropy,
]


@pytest.mark.parametrize("loss_cls", LOGIT_LOSSES)
def test_from_logits(loss_cls):
    rng = np.random.default_rng(6)
    model = rnncore.Sequential([rnncore.Input((5, 2)), L.LSTM(3), L.Dense(4)], dtype="float64")
    model.compile("sgd", loss_cls(from_logits=True))
    if loss_cls is rnncore.losses.SparseCategoricalCrossentropy:
        y = rng.integers(0, 4, 3)
    elif loss_cls is rnncore.losses.CategoricalCrossentropy:
        y = np.eye(4)[[1, 3, 0]]
    else:
        y = rng.integers(0, 2, (3, 4)).astype(float)
    _model_fd(model, rng.standard_normal((3, 5, 2)), y)


@pytest.mark.parametrize("cell", sorted(RECURRENT))
def test_recurrent_dropout_acts_only_in_training(cell):
    x = _x(4, 7, 3)
    layer = RECURRENT[cell](recurrent_dropout=0.5, return_sequences=True, **F64)
    plain = layer(x)
    assert np.array_equal(plain, layer(x))  # inference: no dropout
    a, b = layer(x, training=True), layer(x, training=True)
    assert not np.allclose(a, plain) and not np.allclose(a, b)  # a fresh mask per call
    # the first step sees h0 = 0, so the recurrent mask cannot change it
    assert np.allclose(a[:, 0], plain[:, 0])
