"""Layers of the functional API that join or reshape tensors: Concatenate, Add, Subtract,
Multiply, Average (several inputs, one output), RepeatVector, Reshape and the global poolings.
Merges AND their inputs' masks, as Keras does."""

from __future__ import annotations

import numpy as np

from .._validate import positive_int
from .base import Layer, shape_str


class _Merge(Layer):
    """A layer of several inputs (a list) and one output, without weights."""

    supports_masking = True
    min_inputs: int = 2
    max_inputs: int | None = None

    def ensure_built(self, input_shape):
        """Checks the list of input shapes (no weights to build)."""
        if not isinstance(input_shape, (list, tuple)) or not all(
            isinstance(s, (list, tuple)) for s in input_shape
        ):
            raise ValueError(f"{self.name}: expected a list of inputs, got one of shape "
                             f"{shape_str(tuple(input_shape))}")  # fmt: skip
        n = len(input_shape)
        if n < self.min_inputs or (self.max_inputs is not None and n > self.max_inputs):
            want = (
                self.min_inputs if self.max_inputs == self.min_inputs else f">= {self.min_inputs}"
            )
            raise ValueError(f"{self.name}: expected {want} inputs, got {n}")
        self._check_shapes([tuple(s) for s in input_shape])
        self.built = True

    def _check_shapes(self, shapes):
        first = shapes[0]
        for s in shapes[1:]:
            if len(s) != len(first) or any(a is not None and b is not None and a != b
                                           for a, b in zip(s[1:], first[1:])):  # fmt: skip
                raise ValueError(f"{self.name}: expected inputs of one shape, got "
                                 f"{', '.join(shape_str(x) for x in shapes)}")  # fmt: skip

    def output_shape(self, input_shape):
        """The inputs' common shape."""
        return tuple(input_shape[0])

    def compute_mask(self, x, mask):
        """The AND of the inputs' masks (None when none has one)."""
        masks = [m for m in (mask or []) if m is not None]
        return np.logical_and.reduce(masks) if masks else None

    def forward(self, x, mask, training):
        """The merged output, and the inputs kept for backward."""
        y = self._merge([np.asarray(v) for v in x])
        return y, (list(x) if training else None)


class Add(_Merge):
    """The sum of its inputs."""

    def _merge(self, xs):
        return sum(xs[1:], xs[0])

    def backward(self, ctx, dy, grads):
        """dy to every input."""
        return [dy] * len(ctx)


class Subtract(_Merge):
    """The first input minus the second."""

    min_inputs = max_inputs = 2

    def _merge(self, xs):
        return xs[0] - xs[1]

    def backward(self, ctx, dy, grads):
        """dy and -dy."""
        return [dy, -dy]


class Multiply(_Merge):
    """The elementwise product of its inputs."""

    def _merge(self, xs):
        y = xs[0]
        for v in xs[1:]:
            y = y * v
        return y

    def backward(self, ctx, dy, grads):
        """dy times the product of the other inputs, for each input."""
        return [dy * self._merge([v for j, v in enumerate(ctx) if j != i] or [np.ones_like(dy)])
                for i in range(len(ctx))]  # fmt: skip


class Average(_Merge):
    """The mean of its inputs."""

    def _merge(self, xs):
        return sum(xs[1:], xs[0]) / len(xs)

    def backward(self, ctx, dy, grads):
        """dy / n to every input."""
        return [dy / len(ctx)] * len(ctx)


class Concatenate(_Merge):
    """Its inputs joined along `axis` (the last by default).

    Args:
        axis: The axis to join along (not the batch axis).
        **kwargs: Layer arguments (name, ...).
    """

    config_keys = ("axis",)

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or axis == 0:
            raise ValueError(f"axis: expected a non-batch axis (an int, not 0), got {axis!r}")
        self.axis = int(axis)

    def _check_shapes(self, shapes):
        ndim = len(shapes[0])
        if not -ndim <= self.axis < ndim or self.axis % ndim == 0:
            raise ValueError(f"{self.name}: axis {self.axis} for inputs of rank {ndim}")
        keep = [i for i in range(1, ndim) if i != self.axis % ndim]
        for s in shapes[1:]:
            if len(s) != ndim or any(s[i] is not None and shapes[0][i] is not None
                                     and s[i] != shapes[0][i] for i in keep):  # fmt: skip
                raise ValueError(f"{self.name}: inputs differ outside axis {self.axis}: "
                                 f"{', '.join(shape_str(x) for x in shapes)}")  # fmt: skip

    def output_shape(self, input_shape):
        """The shape with the joined axis summed."""
        shape = list(input_shape[0])
        sizes = [s[self.axis] for s in input_shape]
        shape[self.axis] = None if None in sizes else sum(sizes)
        return tuple(shape)

    def compute_mask(self, x, mask):
        """The AND of the masks (joining features keeps the time steps)."""
        return super().compute_mask(x, mask)

    def _merge(self, xs):
        return np.concatenate(xs, axis=self.axis)

    def backward(self, ctx, dy, grads):
        """dy split back into the inputs' parts."""
        cuts = np.cumsum([v.shape[self.axis] for v in ctx])[:-1]
        return np.split(dy, cuts, axis=self.axis)


class RepeatVector(Layer):
    """(batch, features) -> (batch, n, features): the input repeated n times.

    Args:
        n: Repetitions.
        **kwargs: Layer arguments (name, ...).
    """

    config_keys = ("n",)

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        self.n = positive_int("n", n)

    def output_shape(self, input_shape):
        """(batch, n, features)."""
        return (input_shape[0], self.n, *input_shape[1:])

    def forward(self, x, mask, training):
        """x repeated along a new time axis."""
        return np.repeat(x[:, None], self.n, axis=1), (True if training else None)

    def backward(self, ctx, dy, grads):
        """The repeats' gradients summed."""
        return dy.sum(axis=1)


class Reshape(Layer):
    """Reshapes each sample to `target_shape` (one entry may be -1).

    Args:
        target_shape: The per-sample shape.
        **kwargs: Layer arguments (name, ...).
    """

    min_ndim = 1
    config_keys = ("target_shape",)

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        shape = list(target_shape)
        if sum(1 for s in shape if s == -1) > 1 or any(
            isinstance(s, bool) or not isinstance(s, (int, np.integer)) or (s < 1 and s != -1)
            for s in shape
        ):
            raise ValueError(f"target_shape: expected positive ints and at most one -1, "
                             f"got {target_shape!r}")  # fmt: skip
        self.target_shape = [int(s) for s in shape]

    def output_shape(self, input_shape):
        """(batch, *target_shape), the -1 resolved when the input size is known."""
        size = None if None in input_shape[1:] else int(np.prod(input_shape[1:]))
        shape = list(self.target_shape)
        if -1 in shape:
            known = int(np.prod([s for s in shape if s != -1]))
            shape[shape.index(-1)] = None if size is None else size // known
        elif size is not None and int(np.prod(shape)) != size:
            raise ValueError(f"{self.name}: cannot reshape {shape_str(tuple(input_shape))} "
                             f"to {tuple(self.target_shape)}")  # fmt: skip
        return (input_shape[0], *shape)

    def forward(self, x, mask, training):
        """Each sample reshaped."""
        return x.reshape((len(x), *self.target_shape)), (x.shape if training else None)

    def backward(self, ctx, dy, grads):
        """dy in the input's shape."""
        return dy.reshape(ctx)

    def compute_mask(self, x, mask):
        """No mask: the time axis is gone."""
        return None


class GlobalAveragePooling1D(Layer):
    """(batch, steps, features) -> (batch, features): the mean over steps (the unmasked
    ones when a mask arrives)."""

    min_ndim = 3
    supports_masking = True

    def output_shape(self, input_shape):
        """(batch, features)."""
        return (input_shape[0], input_shape[2])

    def forward(self, x, mask, training):
        """The mean over (unmasked) steps."""
        w = np.ones(x.shape[:2], x.dtype) if mask is None else mask.astype(x.dtype)
        count = np.maximum(w.sum(axis=1, keepdims=True), 1)
        return (x * w[..., None]).sum(axis=1) / count, ((w, count) if training else None)

    def backward(self, ctx, dy, grads):
        """dy shared out over the counted steps."""
        w, count = ctx
        return (dy / count)[:, None, :] * w[..., None]

    def compute_mask(self, x, mask):
        """No mask: the time axis is gone."""
        return None


class GlobalMaxPooling1D(Layer):
    """(batch, steps, features) -> (batch, features): the maximum over steps."""

    min_ndim = 3
    supports_masking = True

    def output_shape(self, input_shape):
        """(batch, features)."""
        return (input_shape[0], input_shape[2])

    def forward(self, x, mask, training):
        """The maximum over steps."""
        where = x.argmax(axis=1)
        y = np.take_along_axis(x, where[:, None], axis=1)[:, 0]
        return y, ((x.shape, where) if training else None)

    def backward(self, ctx, dy, grads):
        """dy to each feature's maximal step."""
        shape, where = ctx
        dx = np.zeros(shape, dy.dtype)
        np.put_along_axis(dx, where[:, None], dy[:, None], axis=1)
        return dx

    def compute_mask(self, x, mask):
        """No mask: the time axis is gone."""
        return None
