"""Random state for the models API: one seedable generator, so `set_random_seed(n)` makes a
run (initial weights, shuffling, dropout masks) repeat bit for bit."""

from __future__ import annotations

import random
import threading

import numpy as np

__all__ = ["set_random_seed"]

_lock = threading.Lock()
_rng = np.random.default_rng()


def set_random_seed(seed) -> None:
    """Seed every random draw rnncore makes (weights, shuffling, dropout), and, as Keras's
    does, Python's `random` and NumPy's global generator.

    Layers draw their generator when first used (at build), so the seed fixes the weights of
    every layer built after this call, even one constructed before it.
    """
    global _rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TypeError(f"seed: expected a non-negative int, got {seed!r}")
    with _lock:
        _rng = np.random.default_rng(int(seed))
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)  # noqa: NPY002 -- the global generator, as Keras seeds it


def check_seed(seed) -> None:
    """TypeError unless `seed` is None or a non-negative int."""
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise TypeError(f"seed: expected None or a non-negative int, got {seed!r}")


def new_generator(seed=None) -> np.random.Generator:
    """A generator of its own: from `seed` when given, else drawn from the global one."""
    check_seed(seed)
    if seed is not None:
        return np.random.default_rng(int(seed))
    with _lock:
        return np.random.default_rng(_rng.integers(0, 2**63))


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
