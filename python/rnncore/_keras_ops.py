"""The part of `keras.ops` that Keras lessons' metrics, losses and cells call, on NumPy.

`rnncore.ops` holds the functional API; these names are found there too (`ops.mean`,
`ops.convert_to_numpy`, ...), so code written against `keras.ops` runs once the import
changes. Every function returns NumPy arrays: there are no tensors in rnncore.
"""

from __future__ import annotations

import numpy as np

from .activations import _sigmoid


def convert_to_numpy(x):
    """x as a NumPy array (it already is one in rnncore)."""
    return np.asarray(x)


def convert_to_tensor(x, dtype=None):
    """x as a NumPy array of `dtype`."""
    return np.asarray(x, dtype=dtype)


def cast(x, dtype):
    """x converted to `dtype`."""
    return np.asarray(x).astype(dtype)


def sigmoid(x):
    """1 / (1 + exp(-x)), without overflow."""
    return _sigmoid(np.asarray(x))


def relu(x):
    """max(x, 0)."""
    return np.maximum(x, 0)


def softmax(x, axis=-1):
    """exp(x) normalised over `axis`."""
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def norm(x, ord=None, axis=None, keepdims=False):
    """The vector or matrix norm (numpy.linalg.norm)."""
    return np.linalg.norm(x, ord=ord, axis=axis, keepdims=keepdims)


# keras.ops names that are NumPy's functions with the same meaning and arguments.
_SAME_AS_NUMPY = """abs absolute add all any arange argmax argmin argsort ceil clip concatenate
    cos count_nonzero cumprod cumsum diag divide dot einsum equal exp expand_dims expm1 eye flip
    floor full full_like greater greater_equal isfinite isinf isnan less less_equal linspace log
    log1p logical_and logical_not logical_or matmul max maximum mean min minimum multiply
    negative not_equal ones ones_like outer power prod repeat reshape roll round sign sin sort
    sqrt square squeeze stack std subtract sum swapaxes take tanh tensordot tile transpose var
    where zeros zeros_like""".split()

OPS = {name: getattr(np, name) for name in _SAME_AS_NUMPY}
OPS.update({f.__name__: f for f in (convert_to_numpy, convert_to_tensor, cast, sigmoid, relu,
                                     softmax, norm)})  # fmt: skip
OPS["shape"] = np.shape
OPS["size"] = np.size
