"""Element-wise activations for Dense/Conv1D/TimeDistributed: forward and its gradient.

The forward runs compiled (`_core.activate`, the code the C runtime runs, so a model gives
the same bits from Python and C); each backward needs only the forward input `a` and output
`y`.
"""

from __future__ import annotations

import numpy as np

from . import _core

__all__ = ["get"]


def _sigmoid(a):
    return 0.5 * (np.tanh(0.5 * a) + 1.0)  # stable for large |a|


def _softmax(a):
    e = np.exp(a - a.max(axis=-1, keepdims=True, initial=-np.inf))  # initial: empty axes
    return e / e.sum(axis=-1, keepdims=True)


def _softmax_grad(a, y, dy):
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


def _elu(a):
    return np.where(a > 0, a, np.expm1(np.minimum(a, 0)))


# name -> (forward(a), backward(a, y, dy)); the order is _core.activate's codes.
_TABLE = {
    "linear": (lambda a: a, lambda a, y, dy: dy),
    "relu": (lambda a: np.maximum(a, 0), lambda a, y, dy: dy * (a > 0)),
    "tanh": (np.tanh, lambda a, y, dy: dy * (1 - y * y)),
    "sigmoid": (_sigmoid, lambda a, y, dy: dy * y * (1 - y)),
    "softmax": (_softmax, _softmax_grad),
    "softplus": (lambda a: np.logaddexp(0, a), lambda a, y, dy: dy * _sigmoid(a)),
    "elu": (_elu, lambda a, y, dy: dy * np.where(a > 0, 1, y + 1)),
}
NAMES = tuple(_TABLE)
_COMPILED = (np.dtype(np.float32), np.dtype(np.float64))


class Activation:
    """A named activation: `y = act(a)`, `da = act.backward(a, y, dy)`."""

    def __init__(self, name):
        self.name = name
        self._forward, self._backward = _TABLE[name]
        self._code = NAMES.index(name)

    def __call__(self, a, in_place=False):
        """act(a); with `in_place`, a itself (C-contiguous float32/float64) is overwritten."""
        from .layers.tape import active

        tape = active()  # inside a user call() that trains: the tape keeps a for backward
        a = np.asarray(a)
        if a.dtype not in _COMPILED or a.size == 0 or a.ndim == 0:
            y = self._forward(a)
        else:
            in_place = in_place and tape is None and a.flags.c_contiguous
            y = a if in_place else np.array(a, order="C")
            _core.activate(y.reshape(-1, y.shape[-1]), self._code)
        if tape is not None:
            tape.record(f"activation {self.name!r}", [a], [y],
                        lambda d, grads: [self.backward(a, y, d[0])])  # fmt: skip
        return y

    def backward(self, a, y, dy):
        return self._backward(a, y, dy)


def get(name, argument="activation") -> Activation:
    """The activation called `name` (None means linear); a clear error for unknown names."""
    if name is None:
        name = "linear"
    if not isinstance(name, str) or name not in _TABLE:
        raise ValueError(f"{argument}: unknown activation {name!r}; expected one of {NAMES}")
    return Activation(name)


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
