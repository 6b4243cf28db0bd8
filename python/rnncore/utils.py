"""Random state for the models API: one seedable generator, so `set_random_seed(n)` makes a
run (initial weights, shuffling, dropout masks) repeat bit for bit."""

from __future__ import annotations

import random
import threading

import numpy as np

__all__ = ["PyDataset", "set_random_seed", "to_categorical"]

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


def to_categorical(y, num_classes=None, dtype="float32") -> np.ndarray:
    """One-hot rows for integer class ids, as Keras's `utils.to_categorical`.

    Args:
        y: Class ids (any shape; a trailing axis of 1 is dropped, as Keras does).
        num_classes: The number of classes (default: the largest id + 1).
        dtype: The output's dtype.

    Returns:
        An array of y's shape plus a last axis of num_classes.

    Raises:
        TypeError, ValueError: non-integer ids, or ids outside [0, num_classes).

    Example:
        >>> to_categorical([0, 2, 1], 3)
    """
    from ._validate import integer_ids  # the argument checks every reader shares

    y = np.asarray(y)
    if y.ndim > 1 and y.shape[-1] == 1:
        y = y[..., 0]
    n = int(y.max()) + 1 if num_classes is None and y.size else int(num_classes or 0)
    ids = integer_ids("y", y, n, "class ids", f"class ids must be in [0, num_classes={n})")
    out = np.zeros(ids.shape + (n,), dtype=dtype)
    np.put_along_axis(out, ids[..., None], 1, axis=-1)
    return out


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


class PyDataset:
    """Batches by index, as Keras 3's ``keras.utils.PyDataset``: subclass it with `__len__`
    (batches per epoch) and `__getitem__(index)` returning ``(x, y)`` or
    ``(x, y, sample_weight)``; `on_epoch_end` runs after every epoch (e.g. to reshuffle).

    `fit`, `evaluate` and `predict` take one in place of arrays. The batches are read in
    order in this process (`workers` and `use_multiprocessing` are accepted for Keras's
    signature; no worker pool is started).

    Example:
        >>> class Windows(rnncore.utils.PyDataset):
        ...     def __len__(self):
        ...         return 10
        ...     def __getitem__(self, i):
        ...         return x[i * 32 : (i + 1) * 32], y[i * 32 : (i + 1) * 32]
        >>> model.fit(Windows(), epochs=3)
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    def __len__(self) -> int:
        raise NotImplementedError("PyDataset: define __len__ (batches per epoch)")

    def __getitem__(self, index):
        raise NotImplementedError("PyDataset: define __getitem__(index) returning a batch")

    def on_epoch_end(self) -> None:
        """Called after every epoch; does nothing unless overridden."""

    @property
    def num_batches(self) -> int:
        """Batches per epoch (len(self))."""
        return len(self)


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
