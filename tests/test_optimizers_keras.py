"""Every optimizer's update matches Keras 3's over several steps (Keras as the oracle)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from rnncore import optimizers

from conftest import import_peer

CASES = {
    "sgd": {"learning_rate": 0.05},
    "sgd_momentum": {"learning_rate": 0.05, "momentum": 0.9},
    "sgd_nesterov": {"learning_rate": 0.05, "momentum": 0.9, "nesterov": True},
    "adam": {"learning_rate": 0.01},
    "rmsprop": {"learning_rate": 0.01},
    "rmsprop_momentum_centered": {"learning_rate": 0.01, "momentum": 0.5, "centered": True},
    "adagrad": {"learning_rate": 0.1},
    "adamw": {"learning_rate": 0.01, "weight_decay": 0.1},
    "adam_weight_decay": {"learning_rate": 0.01, "weight_decay": 0.05},
    "nadam": {"learning_rate": 0.01},
    "adamax": {"learning_rate": 0.01},
    # gradients of 1e-4: epsilon's place (inside or outside the square root) decides the step
    "rmsprop_small_gradients": {"learning_rate": 0.01},
    "adagrad_small_gradients": {"learning_rate": 0.1, "initial_accumulator_value": 0.0},
}
_CLASS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "nadam": "Nadam", "adamax": "Adamax",
          "rmsprop": "RMSprop", "adagrad": "Adagrad"}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_updates_match_keras(name):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = import_peer("keras")
    cls, kw = _CLASS[name.split("_")[0]], CASES[name]
    rng = np.random.default_rng(0)
    start = [rng.standard_normal((3, 4)), rng.standard_normal(4)]
    scale = 1e-4 if name.endswith("small_gradients") else 1.0
    grads = [[scale * rng.standard_normal(w.shape) for w in start] for _ in range(8)]
    ours = [w.copy() for w in start]
    opt = getattr(optimizers, cls)(**kw)
    variables = [keras.Variable(w.astype(np.float32)) for w in start]
    theirs = getattr(keras.optimizers, cls)(**kw)
    for step in grads:
        opt.apply({i: w for i, w in enumerate(ours)}, dict(enumerate(step)))
        theirs.apply([keras.ops.convert_to_tensor(g.astype(np.float32)) for g in step], variables)
    for mine, var in zip(ours, variables):
        np.testing.assert_allclose(mine, keras.ops.convert_to_numpy(var), rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("name", ["adamw", "nadam", "adamax"])
def test_new_optimizers_are_known_by_name_and_round_trip(name):
    opt = optimizers.get(name)
    assert type(opt).__name__ == _CLASS[name]
    again = optimizers.deserialize(optimizers.serialize(opt))
    assert again.get_config() == opt.get_config()


SCHEDULES = {
    "ExponentialDecay": {"initial_learning_rate": 0.05, "decay_steps": 3, "decay_rate": 0.5},
    "ExponentialDecay_staircase": {"initial_learning_rate": 0.05, "decay_steps": 3,
                                   "decay_rate": 0.5, "staircase": True},
    "PiecewiseConstantDecay": {"boundaries": [2, 5], "values": [0.05, 0.02, 0.01]},
    "CosineDecay": {"initial_learning_rate": 0.05, "decay_steps": 6, "alpha": 0.1},
    "CosineDecay_warmup": {"initial_learning_rate": 0.0, "decay_steps": 4,
                           "warmup_target": 0.05, "warmup_steps": 3},
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedules_match_keras_and_drive_the_updates(name):
    os.environ.setdefault("KERAS_BACKEND", "torch")
    keras = import_peer("keras")
    cls, kw = name.split("_")[0], SCHEDULES[name]
    ours = getattr(optimizers.schedules, cls)(**kw)
    theirs = getattr(keras.optimizers.schedules, cls)(**kw)
    for step in range(12):
        expected = float(keras.ops.convert_to_numpy(theirs(step)))
        assert ours(step) == pytest.approx(expected, rel=1e-6, abs=1e-9), step
    # an optimizer following the schedule updates as Keras's does, step by step
    rng = np.random.default_rng(0)
    start = rng.standard_normal(5)
    grads = [rng.standard_normal(5) for _ in range(8)]
    mine, var = start.copy(), keras.Variable(start.astype(np.float32))
    opt, kopt = optimizers.SGD(ours), keras.optimizers.SGD(theirs)
    for g in grads:
        opt.apply({0: mine}, {0: g})
        kopt.apply([keras.ops.convert_to_tensor(g.astype(np.float32))], [var])
    np.testing.assert_allclose(mine, keras.ops.convert_to_numpy(var), rtol=2e-5, atol=2e-6)
    again = optimizers.deserialize(optimizers.serialize(opt))
    assert again.get_config() == opt.get_config()
    with pytest.raises(TypeError, match="follows a schedule"):
        opt.learning_rate = 0.1
