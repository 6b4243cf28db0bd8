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


class Dot(_Merge):
    """The dot product of two inputs along `axes` (Keras's Dot, per sample).

    Args:
        axes: The (non-batch) axis of both inputs, or a pair (axis of the first, axis of the
            second), counted with the batch axis as 0.
        normalize: Keras's cosine option; not supported yet.
        **kwargs: Layer arguments (name, ...).
    """

    min_inputs = max_inputs = 2
    config_keys = ("axes", "normalize")

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        pair = list(axes) if isinstance(axes, (list, tuple)) else [axes, axes]
        if len(pair) != 2 or any(isinstance(a, bool) or not isinstance(a, (int, np.integer))
                                 for a in pair):  # fmt: skip
            raise ValueError(f"axes: expected an int or a pair of ints, got {axes!r}")
        if normalize:
            raise NotImplementedError("Dot: normalize=True is not supported yet")
        self.axes, self.normalize = axes, False
        self._pair = [int(a) for a in pair]

    def _axes(self, shapes):
        out = []
        for a, s in zip(self._pair, shapes):
            a = a % len(s)
            if a == 0:
                raise ValueError(f"{self.name}: axes may not name the batch axis")
            out.append(a)
        return out

    def _check_shapes(self, shapes):
        if any(len(s) not in (2, 3) for s in shapes):
            raise ValueError(f"{self.name}: expects inputs of rank 2 or 3, got "
                             f"{', '.join(shape_str(s) for s in shapes)}")  # fmt: skip
        i, j = self._axes(shapes)
        if None not in (shapes[0][i], shapes[1][j]) and shapes[0][i] != shapes[1][j]:
            raise ValueError(f"{self.name}: the dotted axes differ: {shapes[0][i]} vs "
                             f"{shapes[1][j]}")  # fmt: skip

    def output_shape(self, input_shape):
        """The first input's other axes, then the second's ((batch, 1) when none)."""
        i, j = self._axes(input_shape)
        rest = [s for k, s in enumerate(input_shape[0]) if k not in (0, i)]
        rest += [s for k, s in enumerate(input_shape[1]) if k not in (0, j)]
        return (input_shape[0][0], *(rest or [1]))

    def _operands(self, a, b):
        i, j = self._axes([a.shape, b.shape])
        a2 = np.moveaxis(a, i, -1).reshape(len(a), -1, a.shape[i])  # (B, Ra, K)
        b2 = np.moveaxis(b, j, 1).reshape(len(b), b.shape[j], -1)  # (B, K, Rb)
        return a2, b2

    def _merge(self, xs):
        a2, b2 = self._operands(*xs)
        y = a2 @ b2
        return y.reshape((len(y), *self.output_shape([x.shape for x in xs])[1:]))

    def backward(self, ctx, dy, grads):
        """The two inputs' gradients."""
        a, b = ctx
        a2, b2 = self._operands(a, b)
        dy2 = dy.reshape(len(dy), a2.shape[1], b2.shape[2])
        da2, db2 = dy2 @ b2.transpose(0, 2, 1), a2.transpose(0, 2, 1) @ dy2
        i, j = self._axes([a.shape, b.shape])
        da = np.moveaxis(da2.reshape(np.moveaxis(a, i, -1).shape), -1, i)
        db = np.moveaxis(db2.reshape(np.moveaxis(b, j, 1).shape), 1, j)
        return [da, db]

    def compute_mask(self, x, mask):
        """No mask (the time axes are contracted or paired)."""
        return None


class Permute(Layer):
    """Permutes the non-batch axes: `dims` (1-based), as Keras's Permute.

    Args:
        dims: A permutation of 1..rank-1.
        **kwargs: Layer arguments (name, ...).
    """

    config_keys = ("dims",)

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        dims = [int(d) for d in dims]
        if sorted(dims) != list(range(1, len(dims) + 1)):
            raise ValueError(f"dims: expected a permutation of 1..{len(dims)}, got {dims}")
        self.dims = dims

    def output_shape(self, input_shape):
        """The input shape with its axes permuted."""
        return (input_shape[0], *(input_shape[d] for d in self.dims))

    def forward(self, x, mask, training):
        """x with its axes permuted."""
        return x.transpose((0, *self.dims)), (True if training else None)

    def backward(self, ctx, dy, grads):
        """dy with the axes put back."""
        return dy.transpose(np.argsort((0, *self.dims)))

    def compute_mask(self, x, mask):
        """No mask: the time axis may have moved."""
        return None


class MaxPooling1D(Layer):
    """The maximum of each window of `pool_size` steps, every `strides` steps.

    Args:
        pool_size: Steps per window.
        strides: Steps between windows (pool_size by default).
        padding: "valid" (whole windows only) or "same" (ceil(steps / strides) windows).
        **kwargs: Layer arguments (name, ...).
    """

    min_ndim = 3
    config_keys = ("pool_size", "strides", "padding")

    def __init__(self, pool_size=2, strides=None, padding="valid", **kwargs):
        super().__init__(**kwargs)
        self.pool_size = positive_int("pool_size", _one(pool_size))
        strides = self.pool_size if strides is None else _one(strides)
        self.strides = positive_int("strides", strides)
        if padding not in ("valid", "same"):
            raise ValueError(f"padding: expected 'valid' or 'same', got {padding!r}")
        self.padding = padding

    def _geometry(self, T):
        if self.padding == "valid":
            return 0, max(0, (T - self.pool_size) // self.strides + 1)
        out = -(-T // self.strides)
        return max(0, (out - 1) * self.strides + self.pool_size - T) // 2, out

    def output_shape(self, input_shape):
        """(batch, windows, features)."""
        T = input_shape[1]
        return (input_shape[0], None if T is None else self._geometry(T)[1], input_shape[2])

    def forward(self, x, mask, training):
        """Each window's maximum."""
        B, T, F = x.shape
        left, out = self._geometry(T)
        taps = np.arange(out)[:, None] * self.strides + np.arange(self.pool_size) - left
        inside = (taps >= 0) & (taps < T)
        src = np.clip(taps, 0, T - 1)  # (out, pool): the step each tap reads
        windows = np.where(inside[None, :, :, None], x[:, src], -np.inf)  # (B, out, pool, F)
        where = windows.argmax(axis=2)  # (B, out, F)
        y = np.take_along_axis(windows, where[:, :, None], axis=2)[:, :, 0]
        steps = src[np.arange(out)[None, :, None], where]  # (B, out, F): each maximum's step
        return y, ((x.shape, steps) if training else None)

    def backward(self, ctx, dy, grads):
        """dy to each window's maximal step (summed where windows overlap)."""
        shape, steps = ctx  # steps: (B, out, F), the step each maximum came from
        dx = np.zeros(shape, dy.dtype)
        B, out, F = steps.shape
        np.add.at(dx, (np.arange(B)[:, None, None], steps, np.arange(F)[None, None, :]), dy)
        return dx

    def compute_mask(self, x, mask):
        """No mask: the steps are pooled."""
        return None


def _one(v):
    return v[0] if isinstance(v, (list, tuple)) and len(v) == 1 else v
