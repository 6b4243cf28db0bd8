"""Weight initializers with Keras's names and formulas (fans follow Keras: a kernel of shape
(..., fan_in_features, fan_out_features) with the leading axes as the receptive field)."""

from __future__ import annotations

import numpy as np

__all__ = ["get"]


def _fans(shape):
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    fan_in = shape[-2] * receptive if len(shape) > 1 else shape[0]
    return fan_in, shape[-1] * receptive


def glorot_uniform(shape, rng):
    fan_in, fan_out = _fans(shape)
    limit = np.sqrt(6.0 / max(1, fan_in + fan_out))
    return rng.uniform(-limit, limit, shape)


def glorot_normal(shape, rng):
    fan_in, fan_out = _fans(shape)
    return _truncated_normal(shape, rng, np.sqrt(2.0 / max(1, fan_in + fan_out)))


def he_uniform(shape, rng):
    limit = np.sqrt(6.0 / max(1, _fans(shape)[0]))
    return rng.uniform(-limit, limit, shape)


def he_normal(shape, rng):
    return _truncated_normal(shape, rng, np.sqrt(2.0 / max(1, _fans(shape)[0])))


def _truncated_normal(shape, rng, std):
    # Keras draws from a normal truncated at two standard deviations (stddev corrected).
    std = std / 0.87962566103423978
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2
    return out * std


def orthogonal(shape, rng):
    rows, cols = int(np.prod(shape[:-1])), shape[-1]
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))  # a uniform (Haar) draw, not biased by QR's sign convention
    if rows < cols:
        q = q.T
    return q.reshape(shape)


def random_uniform(shape, rng):
    return rng.uniform(-0.05, 0.05, shape)


def random_normal(shape, rng):
    return rng.normal(0.0, 0.05, shape)


def zeros(shape, rng):
    return np.zeros(shape)


def ones(shape, rng):
    return np.ones(shape)


_TABLE = {
    f.__name__: f
    for f in (
        glorot_uniform,
        glorot_normal,
        he_uniform,
        he_normal,
        orthogonal,
        random_uniform,
        random_normal,
        zeros,
        ones,
    )
}
_TABLE["uniform"] = random_uniform


def get(name, argument):
    """The initializer called `name`: a callable(shape, rng) -> float64 array."""
    if callable(name):
        return name
    if not isinstance(name, str) or name not in _TABLE:
        raise ValueError(
            f"{argument}: unknown initializer {name!r}; expected one of {tuple(_TABLE)}"
        )
    return _TABLE[name]


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
