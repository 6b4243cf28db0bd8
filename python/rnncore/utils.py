"""Random state for the models API: one seedable generator, so `set_random_seed(n)` makes a
run (initial weights, shuffling, dropout masks) repeat bit for bit."""

from __future__ import annotations

import random
import threading

import numpy as np

from .text import pad_sequences  # Keras 3 keeps it in keras.utils

__all__ = ["PyDataset", "pad_sequences", "set_random_seed", "timeseries_dataset_from_array",
           "to_categorical"]  # fmt: skip

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


class _Windows(PyDataset):
    """timeseries_dataset_from_array's batches: windows gathered on demand."""

    def __init__(self, data, targets, starts, offsets, batch_size):
        super().__init__()
        self.data, self.targets, self.starts, self.offsets = data, targets, starts, offsets
        self.batch_size = batch_size

    def __len__(self) -> int:
        return -(-len(self.starts) // self.batch_size)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        starts = self.starts[index * self.batch_size : (index + 1) * self.batch_size]
        x = self.data[starts[:, None] + self.offsets]  # [batch, sequence_length, ...]
        return x if self.targets is None else (x, self.targets[starts])


def timeseries_dataset_from_array(data, targets, sequence_length, sequence_stride=1,
                                  sampling_rate=1, batch_size=128, shuffle=False, seed=None,
                                  start_index=None, end_index=None) -> PyDataset:  # fmt: skip
    """Sliding windows over a time series, batched, as Keras's function of that name.

    Window i holds data[start + p_i + k * sampling_rate] for k < sequence_length, where p_i
    steps by `sequence_stride`; its target is targets[start + p_i]. The result is a
    PyDataset that fit, evaluate and predict take, and that iterates over its batches.

    Args:
        data: Array [time, ...].
        targets: Array [time, ...] of targets, or None (batches are x only).
        sequence_length: Steps per window.
        sequence_stride: Steps between window starts.
        sampling_rate: Steps between a window's consecutive samples.
        batch_size: Windows per batch (the last batch may be smaller).
        shuffle: Shuffle the windows once (seeded by `seed`).
        seed: The shuffle's seed.
        start_index: First time step used (default 0).
        end_index: One past the last time step used (default len(data)).
    """
    data = np.asarray(data)
    for name, value in (("sequence_length", sequence_length), ("sequence_stride", sequence_stride),
                        ("sampling_rate", sampling_rate), ("batch_size", batch_size)):  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
    start = 0 if start_index is None else int(start_index)
    end = len(data) if end_index is None else int(end_index)
    if not 0 <= start < end <= len(data):
        raise ValueError(f"start_index, end_index: expected 0 <= start < end <= {len(data)}, "
                         f"got {start}, {end}")  # fmt: skip
    count = end - start - (sequence_length - 1) * sampling_rate
    if targets is not None:
        targets = np.asarray(targets)
        count = min(count, len(targets) - start)
    starts = start + np.arange(0, max(count, 0), sequence_stride)
    if shuffle:
        check_seed(seed)
        np.random.default_rng(seed).shuffle(starts)
    offsets = np.arange(sequence_length) * sampling_rate
    return _Windows(data, targets, starts, offsets, int(batch_size))


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
