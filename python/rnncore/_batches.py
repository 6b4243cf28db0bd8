"""Where fit, evaluate and predict take their batches from: arrays (batched, shuffled and,
under a DataParallel, shared among the ranks), or Python generators, iterators and
`utils.PyDataset`s yielding ``(x, y)`` or ``(x, y, sample_weight)``."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import numpy as np

from .utils import PyDataset

__all__ = ["ArrayBatches", "StreamBatches", "is_stream", "sample_weights"]


def is_stream(x) -> bool:
    """Whether x yields batches itself (a generator, an iterator or a PyDataset)."""
    return isinstance(x, (PyDataset, Iterator))


def unpack(batch, where: str, inputs_only: bool = False):
    """(x, y, sample_weight or None) from one yielded batch (for predict, a bare x too)."""
    if inputs_only and not isinstance(batch, tuple):
        return batch, None, None
    if isinstance(batch, tuple) and 1 <= len(batch) <= 3:
        x, y, sw = (*batch, None, None)[:3]
        return x, y, sw
    raise ValueError(f"{where}: expected batches (x, y) or (x, y, sample_weight), "
                     f"got {type(batch).__name__}")  # fmt: skip


def sample_weights(y, sample_weight, class_weight, n: int):
    """The weight of each sample (or of each step, (n, T)) as Keras derives it, or None.

    class_weight maps class ids to weights: the ids are y's (the argmax of one-hot rows).
    """
    if class_weight is not None and sample_weight is not None:
        raise ValueError("class_weight and sample_weight: give one of them, not both (as Keras)")
    if sample_weight is not None:
        sw = np.asarray(sample_weight, dtype=np.float64)
        if sw.ndim not in (1, 2) or len(sw) != n:
            raise ValueError(f"sample_weight: expected shape ({n},) or ({n}, steps), "
                             f"got {sw.shape}")  # fmt: skip
        return sw
    if class_weight is None:
        return None
    if not isinstance(class_weight, dict):
        raise TypeError(f"class_weight: expected a dict {{class id: weight}}, got "
                        f"{type(class_weight).__name__}")  # fmt: skip
    ids = np.asarray(y)
    if ids.ndim > 1:
        ids = ids.argmax(axis=-1) if ids.shape[-1] != 1 else ids[..., 0]
    ids = np.round(ids).astype(np.int64)
    lookup = {int(k): float(v) for k, v in class_weight.items()}
    return np.vectorize(lambda i: lookup.get(int(i), 1.0), otypes=[np.float64])(ids)


class ArrayBatches:
    """An epoch of (x, y, sample_weight) batches from arrays: shuffled from the model's
    generator, and, under a DataParallel, each rank's share of every global batch
    (auto_shard) or the same number of steps on every rank (its own shard)."""

    def __init__(self, x, y, sw, batch_size, shuffle, dist=None, steps=None):
        self.x, self.y, self.sw = x, y, sw
        self.batch_size, self.shuffle, self.dist = batch_size, shuffle, dist
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)
                                  or steps < 1):  # fmt: skip
            raise ValueError(f"steps: expected a positive int, got {steps!r}")
        self.steps = steps

    def epoch(self, rng):
        """Yields this epoch's batches."""
        n, size, dist = len(self.x), self.batch_size, self.dist
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        n_batches = -(-n // size)
        if self.steps is not None:
            n_batches = min(n_batches, self.steps)
        if dist is not None and not dist.auto_shard:  # every rank takes the same steps
            n_batches = dist.max_(n_batches)
        for b in range(n_batches):
            idx = order[b * size : (b + 1) * size]
            if dist is not None and dist.auto_shard:  # this rank's share of the global batch
                idx = idx[dist.share(len(idx))]
            yield self.x[idx], self.y[idx], None if self.sw is None else self.sw[idx]

    def __len__(self):
        n = -(-len(self.x) // self.batch_size)
        return n if self.steps is None else min(n, self.steps)


class StreamBatches:
    """An epoch of batches from a generator, an iterator or a PyDataset: `steps` of them (a
    PyDataset's len by default), or, for an iterator without steps, until it ends."""

    def __init__(self, source, steps, where, prepare, inputs_only=False):
        self.source, self.where, self.prepare = source, where, prepare
        self.inputs_only = inputs_only
        if steps is None and isinstance(source, PyDataset):
            steps = len(source)
        if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int)
                                  or steps < 1):  # fmt: skip
            raise ValueError(f"steps: expected a positive int, got {steps!r}")
        self.steps = steps
        self.exhausted = False

    def epoch(self, rng=None):
        """Yields this epoch's prepared batches (x, y, sample_weight)."""
        count = 0
        while self.steps is None or count < self.steps:
            if isinstance(self.source, PyDataset):
                batch = self.source[count % len(self.source)]
            else:
                try:
                    batch = next(self.source)
                except StopIteration:
                    self.exhausted = True
                    break
            count += 1
            yield self.prepare(*unpack(batch, self.where, self.inputs_only))
        if isinstance(self.source, PyDataset):
            self.source.on_epoch_end()
        if count == 0:
            warnings.warn(f"{self.where}: the input ran out of data; give steps_per_epoch for "
                          "an endless generator, or a PyDataset", stacklevel=4)  # fmt: skip

    def __len__(self):
        return self.steps if self.steps is not None else 0  # 0: unknown until it ends
