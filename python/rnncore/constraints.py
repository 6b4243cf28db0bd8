"""Weight constraints with Keras's names and formulas, applied after every update:
MaxNorm, NonNeg, UnitNorm. `axis` refers to the weight in Keras's layout (a kernel is
(inputs, units)), as in Keras."""

from __future__ import annotations

import numpy as np

from ._registry import Registry

__all__ = ["Constraint", "MaxNorm", "NonNeg", "UnitNorm", "get", "serialize"]

EPSILON = 1e-7  # Keras's backend.epsilon()


class Constraint:
    """Base class: `w = constraint(w)` after each optimizer step."""

    def __call__(self, w):
        """The constrained weight."""
        return w

    def get_config(self) -> dict:
        """The constructor arguments (Keras's config)."""
        return {}


class MaxNorm(Constraint):
    """Scales the weight vectors along `axis` whose norm exceeds max_value down to it."""

    def __init__(self, max_value=2, axis=0):
        self.max_value, self.axis = max_value, axis

    def __call__(self, w):
        """w with every norm along axis clipped to max_value."""
        norms = np.sqrt(np.square(w).sum(axis=self.axis, keepdims=True))
        return w * (np.clip(norms, 0, self.max_value) / (EPSILON + norms))

    def get_config(self):
        """{"max_value", "axis"}."""
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Negative entries set to zero."""

    def __call__(self, w):
        """max(w, 0)."""
        return np.maximum(w, 0)


class UnitNorm(Constraint):
    """Every weight vector along `axis` scaled to norm 1."""

    def __init__(self, axis=0):
        self.axis = axis

    def __call__(self, w):
        """w divided by its norms along axis."""
        return w / (EPSILON + np.sqrt(np.square(w).sum(axis=self.axis, keepdims=True)))

    def get_config(self):
        """{"axis"}."""
        return {"axis": self.axis}


# The names users pass; a saved {"class_name", "config"} names the class itself.
_REGISTRY = Registry(
    "constraint",
    Constraint,
    {
        "max_norm": MaxNorm,
        "non_neg": NonNeg,
        "unit_norm": UnitNorm,
        "MaxNorm": MaxNorm,
        "NonNeg": NonNeg,
        "UnitNorm": UnitNorm,
    },
)


def get(value, argument="constraint"):
    """A Constraint from an instance, a name, a saved config dict ({"class_name",
    "config"}), or None; a ValueError naming `argument` otherwise."""
    return _REGISTRY.option(value, argument)


def serialize(value) -> dict | None:
    """{"class_name", "config"} of a constraint (None for None)."""
    return _REGISTRY.serialize_option(value)


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
