"""Weight and activity regularizers with Keras's names and formulas: L1, L2, L1L2.

A layer's ``kernel_regularizer=`` (and ``recurrent_``, ``bias_``, ``embeddings_``) adds the
penalty of that weight to the training loss; ``activity_regularizer=`` adds the penalty of
the layer's output divided by the batch size, as Keras 3 does.
"""

from __future__ import annotations

import numpy as np

from ._registry import Registry

__all__ = ["L1", "L1L2", "L2", "Regularizer", "get", "serialize"]


def _factor(name, value) -> float:
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if not ok or not 0 <= value < float("inf"):
        raise ValueError(f"{name}: expected a non-negative float, got {value!r}")
    return float(value)


class Regularizer:
    """A penalty l1·Σ|w| + l2·Σw² of an array, with its gradient."""

    l1 = 0.0
    l2 = 0.0

    def __call__(self, x) -> float:
        """The penalty of x."""
        x = np.asarray(x)
        value = 0.0
        if self.l1:
            value += self.l1 * float(np.abs(x).sum())
        if self.l2:
            value += self.l2 * float(np.square(x).sum())
        return value

    def gradient(self, x) -> np.ndarray:
        """d(penalty)/dx."""
        x = np.asarray(x)
        return (self.l1 * np.sign(x) + (2 * self.l2) * x).astype(x.dtype, copy=False)

    def get_config(self) -> dict:
        """The constructor arguments (Keras's config)."""
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    """l1 · Σ|w| (Keras's default l1 = 0.01)."""

    def __init__(self, l1=0.01):
        self.l1 = _factor("l1", l1)

    def get_config(self):
        """{"l1": ...}."""
        return {"l1": self.l1}


class L2(Regularizer):
    """l2 · Σw² (Keras's default l2 = 0.01)."""

    def __init__(self, l2=0.01):
        self.l2 = _factor("l2", l2)

    def get_config(self):
        """{"l2": ...}."""
        return {"l2": self.l2}


class L1L2(Regularizer):
    """l1 · Σ|w| + l2 · Σw² (Keras's defaults 0 and 0)."""

    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = _factor("l1", l1), _factor("l2", l2)


# The names users pass; a saved {"class_name", "config"} names the class itself.
_REGISTRY = Registry(
    "regularizer",
    Regularizer,
    {"l1": L1, "l2": L2, "l1_l2": L1L2, "L1": L1, "L2": L2, "L1L2": L1L2},
)


def get(value, argument="regularizer"):
    """A Regularizer from an instance, a name, a saved config dict ({"class_name",
    "config"}), or None; a ValueError naming `argument` otherwise."""
    return _REGISTRY.option(value, argument)


def serialize(value) -> dict | None:
    """{"class_name", "config"} of a regularizer (None for None)."""
    return _REGISTRY.serialize_option(value)


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
