"""Feed-forward layers: Dense, Dropout, Flatten, Embedding, Masking, Lambda."""

from __future__ import annotations

import numpy as np

from .. import initializers
from .._validate import integer_ids, positive_int, unit_rate
from .base import Layer, _KernelBiasLayer, add_grad, dense


class Dense(_KernelBiasLayer):
    """y = activation(x · kernel + bias) over the last axis."""

    supports_masking = True
    config_keys = ("units", "activation", "use_bias", "kernel_initializer", "bias_initializer")

    def __init__(
        self,
        units,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = positive_int("units", units)
        self._init_kernel_bias(activation, use_bias, kernel_initializer, bias_initializer, seed)

    def build(self, input_shape):
        """Creates kernel (features, units) and bias (units,)."""
        self._build_kernel_bias((input_shape[-1], self.units), self.units)

    def output_shape(self, input_shape):
        """The input shape with the last axis replaced by units."""
        return tuple(input_shape[:-1]) + (self.units,)

    def forward(self, x, mask, training):
        """activation(x · kernel + bias) over the last axis."""
        a = dense(x, self.params["kernel"], self.params["bias"] if self.use_bias else None)
        y = self._act(a, in_place=not training)  # training keeps a for backward
        return y, ((x, a, y) if training else None)

    def backward(self, ctx, dy, grads):
        """Gradients of kernel, bias and x."""
        x, a, y = ctx
        da = self._act.backward(a, y, dy)
        x2, da2 = x.reshape(-1, x.shape[-1]), da.reshape(-1, da.shape[-1])
        add_grad(grads, (self, "kernel"), x2.T @ da2)
        if self.use_bias:
            add_grad(grads, (self, "bias"), da2.sum(axis=0))
        return da @ self.params["kernel"].T


class Dropout(Layer):
    """Zeroes a fraction `rate` of inputs while training (scaled by 1/(1-rate))."""

    min_ndim = 1
    supports_masking = True
    config_keys = ("rate", "noise_shape", "seed")

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = unit_rate("rate", rate)
        self.noise_shape = None if noise_shape is None else list(noise_shape)
        self.seed = seed
        self._init_rng(seed)

    def forward(self, x, mask, training):
        """Zeroes a random fraction `rate` of x in training (the rest scaled up); x otherwise."""
        if not training or self.rate == 0:
            return x, None
        shape = x.shape
        if self.noise_shape is not None:
            shape = tuple(s if n is None else n for s, n in zip(x.shape, self.noise_shape))
        keep = (self._rng.random(shape) >= self.rate) / (1.0 - self.rate)
        keep = keep.astype(x.dtype)
        return x * keep, keep

    def backward(self, ctx, dy, grads):
        """The gradient through the same kept entries."""
        return dy if ctx is None else dy * ctx


class Flatten(Layer):
    """(batch, d1, d2, ...) -> (batch, d1·d2·...)."""

    variable_time = False

    def output_shape(self, input_shape):
        """(batch, product of the other axes)."""
        rest = input_shape[1:]
        return (input_shape[0], None if None in rest else int(np.prod(rest)))

    def forward(self, x, mask, training):
        """x reshaped to (batch, -1)."""
        return x.reshape(x.shape[0], -1), (x.shape if training else None)

    def backward(self, ctx, dy, grads):
        """The gradient reshaped back to x's shape."""
        return dy.reshape(ctx)


class Embedding(Layer):
    """Integer ids (batch, time) -> vectors (batch, time, output_dim); mask_zero masks id 0."""

    weight_roles = {"embeddings": ("embeddings",)}

    min_ndim = 1
    config_keys = ("input_dim", "output_dim", "embeddings_initializer", "mask_zero")

    def __init__(
        self,
        input_dim,
        output_dim,
        embeddings_initializer="uniform",
        mask_zero=False,
        seed=None,
        input_length=None,
        **kwargs,
    ):
        if input_length is not None:  # tf.keras 2's way of giving the sequence length
            kwargs.setdefault("input_shape", (input_length,))
        super().__init__(**kwargs)
        self.input_dim = positive_int("input_dim", input_dim)
        self.output_dim = positive_int("output_dim", output_dim)
        self.embeddings_initializer = embeddings_initializer
        initializers.get(embeddings_initializer, "embeddings_initializer")
        self.mask_zero = bool(mask_zero)
        self._init_rng(seed)

    def cast_input(self, x):
        """The ids as int64; TypeError/ValueError for non-integer or out-of-range ids."""
        return _as_ids(self.name, x, self.input_dim)

    def check_input(self, shape):  # any rank and length: ids are looked up one by one
        """Any rank and length: ids are looked up one by one."""
        if len(shape) < 1:
            raise ValueError(f"Embedding '{self.name}': expected ids of rank >= 1, got a scalar")

    def build(self, input_shape):
        """Creates the (input_dim, output_dim) embedding table."""
        init = initializers.get(self.embeddings_initializer, "embeddings_initializer")
        self._make("embeddings", (self.input_dim, self.output_dim), init, self._rng)

    def output_shape(self, input_shape):
        """The ids' shape plus output_dim."""
        return tuple(input_shape) + (self.output_dim,)

    def compute_mask(self, x, mask):
        """With mask_zero, the positions whose id is not 0."""
        return (x != 0) if self.mask_zero else None

    def forward(self, x, mask, training):
        """The rows of the table for the ids."""
        x = _as_ids(self.name, x, self.input_dim)
        return self.params["embeddings"][x], (x if training else None)

    def backward(self, ctx, dy, grads):
        """Adds each position's gradient into its id's row; ids have no gradient."""
        dw = np.zeros_like(self.params["embeddings"])
        np.add.at(dw, ctx.ravel(), dy.reshape(-1, self.output_dim))
        add_grad(grads, (self, "embeddings"), dw)
        return None  # integer inputs have no gradient


def _as_ids(name, x, input_dim):
    return integer_ids(
        name, x, input_dim, "token ids", f"token ids must be in [0, input_dim={input_dim})"
    )


class Masking(Layer):
    """Masks time steps whose features all equal mask_value (and zeroes them)."""

    min_ndim = 3
    supports_masking = True
    config_keys = ("mask_value",)

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        self.mask_value = float(mask_value)

    def compute_mask(self, x, mask):
        """The time steps where any feature differs from mask_value."""
        return np.any(x != self.mask_value, axis=-1)

    def forward(self, x, mask, training):
        """x with the masked steps zeroed."""
        keep = np.any(x != self.mask_value, axis=-1, keepdims=True)
        return x * keep, (keep if training else None)

    def backward(self, ctx, dy, grads):
        """The gradient with the masked steps zeroed."""
        return dy * ctx


class Lambda(Layer):
    """Keras's Lambda: a stateless NumPy function of the input as a layer.

    Args:
        function: f(inputs, **arguments) -> outputs, on arrays.
        output_shape: The per-sample output shape (default: what f gives on zeros).
        backward: Optional g(grad_output, inputs, outputs) -> grad_inputs, so the layer
            trains; without it, training through the layer says so.
        arguments: Keyword arguments for f.
        **kwargs: Layer arguments (name, ...).
    """

    min_ndim = 1

    def __init__(self, function, output_shape=None, backward=None, arguments=None, **kwargs):
        if not callable(function):
            raise TypeError(f"function: expected a callable, got {type(function).__name__}")
        if backward is not None and not callable(backward):
            raise TypeError(f"backward: expected a callable, got {type(backward).__name__}")
        super().__init__(**kwargs)
        self.function, self._backward_fn = function, backward
        self.arguments = dict(arguments or {})
        self._given_shape = None if output_shape is None else tuple(output_shape)

    def call(self, inputs):
        """function(inputs, **arguments)."""
        return self.function(inputs, **self.arguments)

    def backward(self, grad_output, inputs, outputs):
        """The backward function given, or a clear error when there is none."""
        if self._backward_fn is None:
            raise NotImplementedError(f"{self.name}: Lambda without backward=; give "
                                      "backward=g(grad_output, inputs, outputs) to train "
                                      "through it")  # fmt: skip
        return self._backward_fn(grad_output, inputs, outputs)

    def output_shape(self, input_shape):
        """(batch, *output_shape) when given, else the shape the function gives on zeros."""
        if self._given_shape is not None:
            return (input_shape[0], *self._given_shape)
        from .base import _user_output_shape

        return _user_output_shape(self, input_shape)

    def get_config(self):
        """A function cannot be saved: refused, naming the layer."""
        raise ValueError(f"{self.name}: a Lambda's function cannot be saved; write a Layer "
                         "subclass with call() and get_config() instead")  # fmt: skip
