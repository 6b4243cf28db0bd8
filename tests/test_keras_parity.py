"""Forward parity with Keras: the same layers, the same (Keras-made) weights, the same outputs.

The fixtures were computed by Keras (tests/fixtures/make_keras_fixtures.py); Keras itself is
not needed to run this test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import rnncore

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))
from keras_cases import CASES, build  # noqa: E402


def _load(name):
    with np.load(FIXTURES / "keras" / f"{name}.npz", allow_pickle=False) as f:
        data = dict(f)
    weights = [data[f"w{i}"] for i in range(sum(k.startswith("w") for k in data))]
    return data["x"], data["y"], weights


@pytest.mark.parametrize("name", sorted(CASES))
def test_outputs_match_keras(name):
    x, y_keras, weights = _load(name)
    model = build(rnncore, name)
    model.set_weights(weights)
    y = model.predict(x)
    assert y.shape == y_keras.shape
    err = np.abs(y - y_keras).max() / max(np.abs(y_keras).max(), 1e-3)
    assert err < 2e-5, f"{name}: relative error {err:.2e}"
    # get_weights hands back exactly the Keras layout that went in
    for w, k in zip(model.get_weights(), weights):
        assert w.shape == k.shape and np.array_equal(w, k)
