"""Random state for the models API: one seedable generator, so `set_random_seed(n)` makes a
run (initial weights, shuffling, dropout masks) repeat bit for bit."""

from __future__ import annotations

import threading

import numpy as np

__all__ = ["set_random_seed"]

_lock = threading.Lock()
_rng = np.random.default_rng()


def set_random_seed(seed) -> None:
    """Seed every random draw rnncore makes (weights, shuffling, dropout)."""
    global _rng
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise TypeError(f"seed: expected a non-negative int, got {seed!r}")
    with _lock:
        _rng = np.random.default_rng(int(seed))


def new_generator(seed=None) -> np.random.Generator:
    """A generator of its own: from `seed` when given, else drawn from the global one."""
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise TypeError(f"seed: expected None or a non-negative int, got {seed!r}")
        return np.random.default_rng(int(seed))
    with _lock:
        return np.random.default_rng(_rng.integers(0, 2**63))


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
