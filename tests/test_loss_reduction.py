"""Loss classes with Keras 3's `reduction` and `name`: standalone values against Keras itself,
and training with reduction="sum" or "mean_with_sample_weight" as Keras defines them."""

from __future__ import annotations

import os

import numpy as np
import pytest

import rnncore
from rnncore import layers as L
from rnncore import losses

from conftest import import_peer

REDUCTIONS = ["sum_over_batch_size", "mean", "mean_with_sample_weight", "sum", "none"]
CASES = [("MeanSquaredError", {}), ("MeanAbsoluteError", {}), ("Huber", {"delta": 0.7}),
         ("BinaryCrossentropy", {}), ("BinaryCrossentropy", {"from_logits": True}),
         ("CategoricalCrossentropy", {}),
         ("SparseCategoricalCrossentropy", {"from_logits": True})]  # fmt: skip


def _data(cls, kwargs, rng):
    p = rng.uniform(0.05, 0.95, (4, 5, 3)).astype(np.float32)
    if cls == "SparseCategoricalCrossentropy":
        return rng.integers(0, 3, (4, 5)), rng.standard_normal((4, 5, 3)).astype(np.float32)
    if cls == "CategoricalCrossentropy":
        return np.eye(3, dtype=np.float32)[rng.integers(0, 3, (4, 5))], p
    if cls == "BinaryCrossentropy":
        t = (rng.random((4, 5, 3)) > 0.5).astype(np.float32)
        return t, (rng.standard_normal((4, 5, 3)).astype(np.float32) if kwargs else p)
    return rng.standard_normal((4, 5, 3)).astype(np.float32), p


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("cls, kwargs", CASES)
def test_reductions_equal_keras(cls, kwargs, reduction):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = import_peer("keras")
    rng = np.random.default_rng(0)
    y_true, y_pred = _data(cls, kwargs, rng)
    weights = rng.uniform(0, 2, (4, 5)).astype(np.float32)
    ours = getattr(losses, cls)(reduction=reduction, name="mine", **kwargs)
    theirs = getattr(keras.losses, cls)(reduction=reduction, **kwargs)
    assert ours.name == "mine"
    # per step (3-D outputs), per sample (2-D outputs), none
    for t, p, sw in ((y_true, y_pred, None), (y_true, y_pred, weights),
                     (y_true[:, 0], y_pred[:, 0], weights[:, 0])):  # fmt: skip
        want = np.asarray(keras.ops.convert_to_numpy(theirs(t, p, sample_weight=sw)))
        np.testing.assert_allclose(ours(t, p, sample_weight=sw), want, rtol=2e-5, atol=1e-6)


def test_unknown_reduction_is_refused():
    with pytest.raises(ValueError, match="reduction: expected one of"):
        losses.MeanSquaredError(reduction="average")


def _fit(loss, lr, sample_weight=None):
    rnncore.utils.set_random_seed(3)
    model = rnncore.Sequential([rnncore.Input((6, 2)), L.GRU(4), L.Dense(1)], dtype="float64")
    model.compile(rnncore.optimizers.SGD(lr), loss)
    rng = np.random.default_rng(5)
    x, y = rng.standard_normal((24, 6, 2)), rng.standard_normal((24, 1))
    model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, sample_weight=sample_weight)
    return model.get_weights()


def test_training_with_sum_is_the_mean_with_a_batch_times_larger_step():
    summed = _fit(losses.MeanSquaredError(reduction="sum"), 0.001)
    mean = _fit("mse", 0.008)  # batches of 8: the sum's gradient is 8x the mean's
    for a, b in zip(summed, mean):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    assert not np.allclose(summed[0], _fit("mse", 0.001)[0])


def test_training_with_mean_with_sample_weight_divides_by_the_weights():
    sw = np.full(24, 4.0)  # each batch's weights sum to 32: the plain mean with weights 1
    weighted = _fit(losses.MeanSquaredError(reduction="mean_with_sample_weight"), 0.01, sw)
    plain = _fit("mse", 0.01)
    for a, b in zip(weighted, plain):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_training_refuses_reduction_none():
    with pytest.raises(ValueError, match="reduction='none' gives one value per sample"):
        _fit(losses.MeanSquaredError(reduction="none"), 0.01)


def test_reduction_and_name_survive_a_model_file(tmp_path):
    rnncore.utils.set_random_seed(0)
    model = rnncore.Sequential([rnncore.Input((3, 2)), L.SimpleRNN(2)])
    model.compile("sgd", losses.Huber(0.5, reduction="sum", name="h"))
    model.save(tmp_path / "m.rnncore")
    loss = rnncore.models.load_model(tmp_path / "m.rnncore").loss
    assert (loss.delta, loss.reduction, loss.name) == (0.5, "sum", "h")


def test_a_loss_function_trains_like_the_built_in_loss(tmp_path):
    def my_mse(y_true, y_pred):  # as a Keras user writes it
        return rnncore.ops.mean(rnncore.ops.square(y_true - y_pred), axis=-1)

    for a, b in zip(_fit(my_mse, 0.01), _fit("mse", 0.01)):
        np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)
    elementwise = _fit(lambda t, p: np.abs(t - p) ** 1.5, 0.01)  # per element, smooth
    assert all(np.isfinite(w).all() for w in elementwise)
    model = rnncore.Sequential([rnncore.Input((3, 2)), L.SimpleRNN(2)])
    model.compile("sgd", my_mse)
    assert model.loss.name == "my_mse"
    model.save(tmp_path / "m.rnncore")  # saved uncompiled: a function cannot be stored
    assert rnncore.models.load_model(tmp_path / "m.rnncore").loss is None


def test_a_loss_function_must_give_a_value_per_sample():
    def total(y_true, y_pred):
        return float(np.mean((y_true - y_pred) ** 2))  # one number for the whole batch

    with pytest.raises(ValueError, match=r"loss total: expected one value per sample"):
        _fit(total, 0.01)
