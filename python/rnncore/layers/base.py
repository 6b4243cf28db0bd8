"""The layer protocol every layer follows, the model's input, and the layer registry.

A layer has a small protocol, which models chain:
  build(input_shape)                      creates `params` (shapes include the batch axis as None)
  forward(x, mask, training) -> (y, ctx)  ctx holds what backward needs (None when not training)
  backward(ctx, dy, grads) -> dx          adds d(loss)/d(param) into grads[(layer, name)]
  compute_mask(x, mask) -> mask           the (batch, time) boolean mask passed downstream
A layer is also callable on arrays like a Keras layer: `y = layer(x)` builds it on first use.
Every public subclass is registered by its class name (`LAYER_CLASSES`), which is how saved
architectures find their classes again.
"""

from __future__ import annotations

import inspect
import re
import threading
from collections import Counter
from typing import Any

import numpy as np

from .. import _core, activations, constraints, initializers, regularizers
from .._validate import check_memory, float_dtype, positive_int
from ..utils import check_seed, new_generator

_name_lock = threading.Lock()
_name_counts: Counter = Counter()

LAYER_CLASSES: dict[str, type[Layer]] = {}
"""Layer classes by name, for deserialization: rnncore's own and every public subclass."""


def _auto_name(cls_name: str) -> str:
    base = re.sub(r"(?<=[a-z])([A-Z])", r"_\1", cls_name).lower()  # as Keras: Conv1D -> conv1d
    with _name_lock:
        n = _name_counts[base]
        _name_counts[base] += 1
    return base if n == 0 else f"{base}_{n}"


def shape_str(shape) -> str:
    """A shape as Keras prints it: `(None, 50, 1)`."""
    return "(" + ", ".join("None" if s is None else str(s) for s in shape) + ")"


def dense(x, kernel, bias):
    """bias + x · kernel over x's last axis, on the compiled kernels' GEMM.

    The C runtime computes Dense and Conv1D with the same code, so both give the same bits.
    x is cast to the kernel's dtype; kernel is [features, units], bias [units] or None.
    """
    features, units = kernel.shape
    rows = np.ascontiguousarray(x.reshape(-1, features), dtype=kernel.dtype)
    b = None if bias is None else np.ascontiguousarray(bias, dtype=kernel.dtype)
    a = _core.dense(rows, np.ascontiguousarray(kernel.T), b)
    return a.reshape(x.shape[:-1] + (units,))


def snake_case(name: str) -> str:
    """A class name as Keras writes it in files and default names: "SimpleRNN" ->
    "simple_rnn", "GlobalAveragePooling1D" -> "global_average_pooling1d"."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def add_grad(grads, key, g):
    """Adds gradient `g` into `grads[key]` (a layer used twice accumulates both)."""
    if key in grads:
        grads[key] = grads[key] + g
    else:
        grads[key] = g


def walk(layers, enter=lambda layer: True):
    """Each layer and, where enter(layer), its sublayers, depth first."""
    for layer in layers:
        yield layer
        if enter(layer):
            yield from walk(layer.sublayers(), enter)


class Layer:
    """Base class: naming, lazy building, calling on arrays, weights and config."""

    min_ndim = 2  # input rank (with the batch axis) this layer accepts
    supports_masking = False  # passes an incoming mask through unchanged

    def __init_subclass__(cls, **kwargs):
        """Registers every public subclass by name, so saved architectures find it again.

        A class may replace an earlier one of its name (a notebook cell run twice), except
        rnncore's own classes, which keep their names.
        """
        super().__init_subclass__(**kwargs)
        if cls.__name__.startswith("_"):
            return
        known = LAYER_CLASSES.get(cls.__name__)
        if known is None or not known.__module__.startswith("rnncore."):
            LAYER_CLASSES[cls.__name__] = cls
        if getattr(cls, "call", None) is not None:  # a user-written layer (Keras's protocol)
            _adopt_user_layer(cls)

    # Weights that regularizers and constraints may name: {role: parameter names}, so a
    # layer takes `<role>_regularizer=` and `<role>_constraint=` (Keras's arguments).
    weight_roles: dict[str, tuple[str, ...]] = {}

    def __init__(self, *, name=None, input_shape=None, dtype=None, trainable=True,
                 activity_regularizer=None, **weight_options):  # fmt: skip
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name: expected a str, got {type(name).__name__}")
        self.regularizers: dict = {}  # {role: Regularizer}
        self.constraints: dict = {}  # {role: Constraint}
        for key, value in weight_options.items():
            role, _, kind = key.rpartition("_")
            if role not in self.weight_roles or kind not in ("regularizer", "constraint"):
                raise TypeError(f"{type(self).__name__}: unexpected keyword argument {key!r}")
            if kind == "regularizer" and value is not None:
                self.regularizers[role] = regularizers.get(value, key)
            elif value is not None:
                self.constraints[role] = constraints.get(value, key)
        self.activity_regularizer = regularizers.get(activity_regularizer, "activity_regularizer")
        self.name = name or _auto_name(type(self).__name__)
        self.input_shape = None if input_shape is None else as_input_shape(input_shape)
        self.dtype = None if dtype is None else float_dtype(dtype)
        self.trainable = bool(trainable)
        self.params: dict[str, np.ndarray] = {}
        self.built = False
        self.built_shape = None  # input shape (batch axis None) the weights were made for
        self._build_lock = threading.Lock()

    # ---- hooks for subclasses ----
    def build(self, input_shape):
        """Creates the weights for inputs of `input_shape` (batch axis first, None)."""
        pass

    def output_shape(self, input_shape):
        """The output shape for an input of `input_shape` (batch axis first)."""
        return input_shape

    def forward(self, x, mask, training):
        """(y, ctx) for input x and its (batch, time) mask; ctx is what backward needs
        (None when not training).
        """
        raise NotImplementedError

    def backward(self, ctx, dy, grads):
        """d(loss)/dx from d(loss)/dy; adds each weight's gradient into grads[(self, name)]."""
        raise NotImplementedError

    def compute_mask(self, x, mask):
        """The (batch, time) mask this layer passes on (its input's, or None)."""
        return mask if self.supports_masking else None

    def check_input(self, shape):
        """Raise a clear ValueError when an input of `shape` (batch first) does not fit."""
        if len(shape) < self.min_ndim:
            raise ValueError(
                f"{type(self).__name__} '{self.name}': expected input of rank >= "
                f"{self.min_ndim} (batch first), got shape {shape_str(shape)}"
            )
        if self.built_shape is not None:
            want = self.built_shape
            ok = len(shape) == len(want) and all(
                w is None or s is None or w == s for s, w in zip(shape[1:], want[1:])
            )
            if not ok:
                raise ValueError(
                    f"{type(self).__name__} '{self.name}': expected input shape "
                    f"{shape_str(want)}, got {shape_str(shape)}"
                )

    # ---- randomness ----
    def _init_rng(self, seed) -> None:
        """Keeps `seed` (checked now) for the layer's generator, made on first use."""
        check_seed(seed)
        self._rng_seed = seed
        self._rng_made: np.random.Generator | None = None

    @property
    def _rng(self) -> np.random.Generator:
        """The layer's generator: from its seed, else drawn from the global one when first
        used (at build, as Keras does), so set_random_seed() before building fixes the
        weights even of layers constructed before it."""
        made = self._rng_made
        if made is None:
            made = self._rng_made = new_generator(self._rng_seed)
        return made

    @_rng.setter
    def _rng(self, generator: np.random.Generator) -> None:
        self._rng_made = generator

    # ---- building and calling ----
    @property
    def compute_dtype(self) -> np.dtype:
        """The float dtype the layer computes in (its dtype, float32 by default)."""
        return self.dtype or np.dtype(np.float32)

    def ensure_built(self, input_shape):
        """Checks an input of `input_shape` fits, and builds the weights on first use."""
        input_shape = tuple(input_shape)
        self.check_input(input_shape)
        if self.built:
            return
        with self._build_lock:
            if not self.built:
                self.build(input_shape)
                self.built_shape = (None,) + tuple(
                    None if i == 0 and len(input_shape) > 2 and self.variable_time else s
                    for i, s in enumerate(input_shape[1:])
                )
                self.built = True

    variable_time = True  # the time axis (axis 1 of a 3-D input) may change between calls

    def _check_weight_memory(self, *shapes):
        """MemoryError, before trying, for weights that could not fit in memory (initializers
        work in float64 and make a temporary or two)."""
        n = sum(int(np.prod(shape, dtype=object)) for shape in shapes)
        check_memory(self.name, 3 * 8 * n, f"weights of shapes {', '.join(map(str, shapes))}")

    def _make(self, name, shape, initializer, rng):
        self._check_weight_memory(tuple(shape))
        value = initializer(tuple(shape), rng)  # orthogonal gives a transposed (F-order) array
        self.params[name] = np.asarray(value, dtype=self.compute_dtype, order="C")

    def __call__(self, x, training=False, mask=None):
        """The layer applied to array x, as in Keras: `y = layer(x)` (builds on first use).

        Args:
            x: An array, batch axis first; or symbolic tensors (from `Input`), which
                records the call in a functional graph and returns symbolic outputs.
            training: Run as in training (dropout active).
            mask: An optional (batch, time) boolean mask.
        """
        from .graph import call_symbolic, is_symbolic
        from .tape import active, recording

        if is_symbolic(x):
            return call_symbolic(self, x)
        tape = active()
        given, x = x, self.cast_input(x)
        self.ensure_built(x.shape)
        if tape is None:
            return self.forward(x, mask, bool(training))[0]
        with recording(None):  # the layer's own steps are its backward's business
            y, ctx = self.forward(x, mask, True)  # inside a user call() that is training
        if x is not given:  # the cast made a new array: the tape passes its gradient through
            tape.record(f"{self.name}'s input cast", [given], [x], lambda d, grads: d)
        outs = y if isinstance(y, list) else [y]

        def backward(d, grads):
            return [self.backward(ctx, d if len(d) > 1 else d[0], grads)]

        tape.record(f"layer {self.name!r}", [x], outs, backward)
        return y

    def cast_input(self, x):
        """x as an array of the compute dtype; TypeError for non-numeric input."""
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise TypeError(f"{self.name}: expected a numeric array, got dtype {x.dtype}")
        return x.astype(self.compute_dtype, copy=False)

    # ---- user-written layers: call(), add_weight(), backward(grad_output, inputs, outputs) ----
    def add_weight(self, shape=None, initializer="glorot_uniform", dtype=None, trainable=True,
                   name=None, **kwargs):  # fmt: skip
        """A new weight of a user-written layer (Keras's add_weight), usually in build().

        It is an array that training updates in place. A trainable weight's gradient comes
        from the layer's backward() through `add_gradient`.

        Args:
            shape: The weight's shape.
            initializer: An initializer name ("glorot_uniform", "zeros", "random_normal", ...).
            dtype: Its dtype (the layer's by default).
            trainable: False for a weight that backward leaves alone.
            name: Its name (weight_<n> by default), unique in the layer.
            **kwargs: Keras's regularizer/constraint arguments: refused unless None.
        """
        extra = sorted(k for k, v in kwargs.items() if v is not None)
        if extra:
            raise NotImplementedError(f"add_weight: {extra} are not supported for user weights")
        name = f"weight_{len(self.params)}" if name is None else str(name)
        if name in self.params:
            raise ValueError(f"add_weight: {self.name} already has a weight named {name!r}")
        if not hasattr(self, "_rng_seed"):
            self._init_rng(None)
        self._make(name, tuple(shape or ()), initializers.get(initializer, "initializer"),
                   self._rng)  # fmt: skip
        if dtype is not None:
            self.params[name] = self.params[name].astype(dtype)
        self._frozen = getattr(self, "_frozen", set()) | ({name} if not trainable else set())
        return self.params[name]

    def add_gradient(self, weight, gradient) -> None:
        """Adds `gradient` to a weight's gradient, from inside a user layer's backward().

        Args:
            weight: The array add_weight returned, or its name.
            gradient: d(loss)/d(weight), the weight's shape.
        """
        grads = getattr(self, "_grads", None)
        if grads is None:
            raise RuntimeError("add_gradient: call it from the layer's backward()")
        name = weight if isinstance(weight, str) else next(
            (k for k, v in self.params.items() if v is weight), None)  # fmt: skip
        if name not in self.params:
            raise ValueError(f"add_gradient: {weight!r:.60} is not a weight of {self.name}")
        if name in getattr(self, "_frozen", set()):
            return
        g = np.asarray(gradient, dtype=self.params[name].dtype)
        if g.shape != self.params[name].shape:
            raise ValueError(f"add_gradient: {name} expected shape "
                             f"{self.params[name].shape}, got {g.shape}")  # fmt: skip
        add_grad(grads, (self, name), g)

    # ---- weights ----
    def sublayers(self):
        """The layers this one wraps (Bidirectional, TimeDistributed), else none."""
        return []

    def count_params(self) -> int:
        """The number of weights (scalars), wrapped layers included."""
        return int(sum(p.size for p in self.params.values())) + sum(
            s.count_params() for s in self.sublayers()
        )

    def get_weights(self):
        """Weights in Keras's layout and order."""
        return [p.copy() for p in self.params.values()]

    def _weight_names(self) -> list:
        """Keras's names of get_weights()'s arrays (the parameters' own names by default)."""
        return list(self.params)

    @property
    def weights(self) -> list:
        """The weights as Keras lists them (Keras layout and order), each a `Weight` that
        reads (`numpy()`) and writes (`assign`) the layer; wrapped layers' under their path."""
        if self.sublayers():
            own = [Weight(self, i, name, f"{self.name}/{name}") for i, name in
                   enumerate(self.params)]  # fmt: skip
            return own + [Weight(w.layer, w.index, w.name, f"{self.name}/{w.path}")
                          for sub in self.sublayers() for w in sub.weights]  # fmt: skip
        names = self._weight_names()
        return [Weight(self, i, name, f"{self.name}/{name}") for i, name in enumerate(names)]

    @property
    def trainable_weights(self) -> list:
        """`weights` when the layer is trainable, else []."""
        return self.weights if self.trainable else []

    @property
    def non_trainable_weights(self) -> list:
        """`weights` when the layer is frozen (trainable=False), else []."""
        return [] if self.trainable else self.weights

    def set_weights(self, weights):
        """Sets the weights from arrays in Keras's layout and order (see get_weights).

        Raises:
            ValueError: a wrong number of arrays or a wrong shape (named).
        """
        weights = list(weights)
        mine = self.get_weights()
        if len(weights) != len(mine):
            raise ValueError(f"{self.name}: expected {len(mine)} weight arrays, got {len(weights)}")
        for i, (w, cur) in enumerate(zip(weights, mine)):
            w = np.asarray(w)
            if w.shape != cur.shape:
                raise ValueError(
                    f"{self.name}: weight {i} expected shape {cur.shape}, got {w.shape}"
                )
        self._assign(weights)

    def _assign(self, weights):
        for p, w in zip(self.params.values(), weights):
            np.copyto(p, np.asarray(w, dtype=p.dtype))

    def reset_states(self):
        """Forgets carried state (stateful recurrent layers)."""
        for s in self.sublayers():
            s.reset_states()

    # ---- regularizers and constraints ----
    def weight_penalty(self, grads=None) -> float:
        """The regularizers' penalty of this layer's weights (its sublayers' too); adds their
        gradients into `grads` when given (trainable layers only)."""
        total = 0.0
        for role, reg in self.regularizers.items():
            for name in self.weight_roles[role]:
                if name in self.params:
                    total += reg(self.params[name])
                    if grads is not None and self.trainable:
                        add_grad(grads, (self, name), reg.gradient(self.params[name]))
        return total + sum(sub.weight_penalty(grads) for sub in self.sublayers())

    def apply_constraints(self) -> None:
        """Projects each constrained weight (in Keras's layout) after an update."""
        for role, constraint in self.constraints.items():
            arrays = [self.params[n] for n in self.weight_roles[role] if n in self.params]
            if arrays:
                self._set_keras_weight(role, arrays, constraint(self._keras_weight(role, arrays)))
        for sub in self.sublayers():
            sub.apply_constraints()

    def _keras_weight(self, role, arrays):
        """The weight of `role` as Keras lays it out (here: as stored)."""
        return arrays[0]

    def _set_keras_weight(self, role, arrays, value) -> None:
        np.copyto(arrays[0], value, casting="unsafe")

    # ---- config ----
    config_keys: tuple[str, ...] = ()

    def get_config(self) -> dict:
        """The constructor arguments that rebuild this layer (Keras's config)."""
        cfg = {"name": self.name, "trainable": self.trainable}
        if self.dtype is not None:
            cfg["dtype"] = self.dtype.name
        if self.input_shape is not None:
            cfg["input_shape"] = list(self.input_shape)
        for k in self.config_keys:
            cfg[k] = getattr(self, k)
        for role, reg in self.regularizers.items():
            cfg[f"{role}_regularizer"] = regularizers.serialize(reg)
        for role, con in self.constraints.items():
            cfg[f"{role}_constraint"] = constraints.serialize(con)
        if self.activity_regularizer is not None:
            cfg["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        return cfg

    @classmethod
    def from_config(cls, config):
        """A new layer from `get_config()`'s dict."""
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} name={self.name!r}>"


class _KernelBiasLayer(Layer):
    """Base of the layers computing activation(x · kernel + bias) (Dense, Conv1D): their
    shared arguments, checked once, and their two weights."""

    weight_roles = {"kernel": ("kernel",), "bias": ("bias",)}

    def _init_kernel_bias(self, activation, use_bias, kernel_initializer, bias_initializer,
                          seed):  # fmt: skip
        self.activation = activations.get(activation).name
        self._act = activations.get(self.activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        initializers.get(kernel_initializer, "kernel_initializer")
        initializers.get(bias_initializer, "bias_initializer")
        self._init_rng(seed)

    def _build_kernel_bias(self, kernel_shape: tuple, units: int) -> None:
        init = initializers.get(self.kernel_initializer, "kernel_initializer")
        self._make("kernel", kernel_shape, init, self._rng)
        if self.use_bias:
            binit = initializers.get(self.bias_initializer, "bias_initializer")
            self._make("bias", (units,), binit, self._rng)


def _user_call_kwargs(layer, training, mask) -> dict:
    params = inspect.signature(layer.call).parameters
    kwargs = {}
    if "training" in params:
        kwargs["training"] = training
    if "mask" in params:
        kwargs["mask"] = mask
    return kwargs


def _user_forward(self, x, mask, training):
    """A user layer's forward: its call(inputs[, training][, mask]); in training without a
    backward of its own, its calls of rnncore layers are recorded (tape.py)."""
    from .tape import Tape, recording

    tape = None
    if training and getattr(type(self), "_backward_of_user", None) is None:
        tape = Tape(self.name, True, [x])
        with recording(tape):
            y = self.call(x, **_user_call_kwargs(self, training, mask))
    else:
        y = self.call(x, **_user_call_kwargs(self, training, mask))
    y = [np.asarray(v) for v in y] if isinstance(y, (list, tuple)) else np.asarray(y)
    return y, ((x, y, tape) if training else None)


def _user_backward(self, ctx, dy, grads):
    """A user layer's backward: its backward(grad_output, inputs, outputs) -> grad_inputs,
    weight gradients added with add_gradient."""
    backward = getattr(type(self), "_backward_of_user", None)
    x, y, tape = ctx
    if backward is None:
        if tape is not None and tape.ops:  # call() chained rnncore layers: their gradients
            outputs, douts = (y, dy) if isinstance(y, list) else ([y], [dy])
            return tape.gradients(outputs, douts, grads)[0]
        raise NotImplementedError(
            f"{self.name}: {type(self).__name__} defines call() but no "
            "backward(grad_output, inputs, outputs); define one to train it (inference "
            "works without)"
        )
    self._grads = grads
    try:
        return backward(self, dy, x, y)
    finally:
        self._grads = None


def _user_output_shape(self, input_shape):
    """compute_output_shape when the layer has one, else the shape call() gives on zeros."""
    if hasattr(self, "compute_output_shape"):
        return tuple(self.compute_output_shape(tuple(input_shape)))
    probe = np.zeros([1 if s is None else s for s in input_shape], self.compute_dtype)
    y = np.asarray(self.call(probe, **_user_call_kwargs(self, False, None)))
    out = list((input_shape[0],) + y.shape[1:])
    for i in range(1, min(len(out), len(input_shape))):
        if input_shape[i] is None:
            out[i] = None  # a free axis in, a free axis out
    return tuple(out)


def _attribute_sublayers(self) -> list:
    """The layers a user layer keeps as attributes (Keras tracks them the same way)."""
    return [v for k, v in vars(self).items() if isinstance(v, Layer) and not k.startswith("_")]


def _user_get_weights(self):
    """Own weights, then each sublayer's (attribute order), as Keras lists them."""
    own = [p.copy() for p in self.params.values()]
    return own + [w for sub in self.sublayers() for w in sub.get_weights()]


def _user_assign(self, weights):
    n = len(self.params)
    Layer._assign(self, weights[:n])
    for sub in self.sublayers():
        k = len(sub.get_weights())
        sub._assign(weights[n : n + k])
        n += k


def _adopt_user_layer(cls) -> None:
    """Gives a class that defines call() the layer protocol: forward runs call(), backward
    runs the class's own backward(grad_output, inputs, outputs) if it has one; layers kept as
    attributes are its sublayers, their weights its weights."""
    for name, method in (("sublayers", _attribute_sublayers), ("get_weights", _user_get_weights),
                         ("_assign", _user_assign)):  # fmt: skip
        if name not in cls.__dict__:
            setattr(cls, name, method)
    own_backward = cls.__dict__.get("backward")
    if own_backward is not None and own_backward is not _user_backward:
        cls._backward_of_user = own_backward
    cls.backward = _user_backward
    if "forward" not in cls.__dict__:
        cls.forward = _user_forward
    if "output_shape" not in cls.__dict__:
        cls.output_shape = _user_output_shape


def as_input_shape(shape):
    """`shape` as a tuple of ints and None; TypeError/ValueError naming input_shape."""
    try:
        shape = tuple(shape)
    except TypeError:
        raise TypeError(f"input_shape: expected a tuple, got {shape!r}") from None
    for s in shape:
        if s is not None and (isinstance(s, bool) or not isinstance(s, (int, np.integer)) or s < 0):
            raise ValueError(f"input_shape: expected ints or None, got {shape!r}")
    return tuple(None if s is None else int(s) for s in shape)


class Weight:
    """One weight of a layer, as Keras's `layer.weights` shows it: a view that reads the
    layer's current value (Keras layout) and writes it back with `assign`."""

    def __init__(self, layer, index, name, path):
        self.layer, self.index, self.name, self.path = layer, index, name, path

    def numpy(self) -> np.ndarray:
        """A copy of the current value."""
        return self.layer.get_weights()[self.index]

    value = property(numpy, doc="A copy of the current value.")

    @property
    def shape(self) -> tuple:
        """The weight's shape (Keras layout)."""
        return self.numpy().shape

    @property
    def dtype(self):
        """The weight's dtype."""
        return self.numpy().dtype

    @property
    def trainable(self) -> bool:
        """Whether training updates it."""
        return self.layer.trainable

    def assign(self, value) -> None:
        """Sets the weight (same shape) in its layer.

        Args:
            value: The new value, in Keras's layout.
        """
        weights = self.layer.get_weights()
        weights[self.index] = np.asarray(value)
        self.layer.set_weights(weights)

    def __array__(self, dtype=None, copy=None):
        return self.numpy() if dtype is None else self.numpy().astype(dtype)

    def __repr__(self):
        return f"<Weight path={self.path!r} shape={self.shape} dtype={self.dtype}>"


class InputLayer(Layer):
    """The model's input: fixes the per-sample shape (and dtype) before any data is seen."""

    min_ndim = 1
    supports_masking = True

    def __init__(self, shape=None, dtype=None, name=None, input_shape=None, batch_size=None,
                 batch_shape=None):  # fmt: skip
        if batch_shape is not None:  # Keras's (batch, *shape) spelling
            if shape is not None or input_shape is not None or batch_size is not None:
                raise TypeError("InputLayer: give batch_shape, or shape and batch_size, not both")
            if not isinstance(batch_shape, (tuple, list)) or len(batch_shape) < 2:
                raise ValueError(f"batch_shape: expected (batch, *shape), got {batch_shape!r}")
            batch_size, shape = batch_shape[0], tuple(batch_shape[1:])
        if (shape is None) == (input_shape is None):
            raise TypeError("InputLayer: expected shape (or tf.keras 2's input_shape), one of them")
        super().__init__(name=name, input_shape=shape if shape is not None else input_shape)
        self.input_dtype = None if dtype is None else np.dtype(dtype)
        self.tensor: Any = None  # its symbolic tensor (graph.input_tensor), made on demand
        self.batch_size = None if batch_size is None else positive_int("batch_size", batch_size)

    def forward(self, x, mask, training):
        """Passes x through."""
        return x, None

    def backward(self, ctx, dy, grads):
        """Passes the gradient through."""
        return dy

    def get_config(self):
        """{name, shape (, dtype)}."""
        cfg = {"name": self.name, "shape": list(self.input_shape)}
        if self.batch_size is not None:
            cfg["batch_size"] = self.batch_size
        if self.input_dtype is not None:
            cfg["dtype"] = self.input_dtype.name
        return cfg


def serialize(layer: Layer) -> dict:
    """`{"class_name", "config"}` of a layer, as saved model files hold it."""
    cfg = layer.get_config()
    for k, v in cfg.items():
        if callable(v):
            raise ValueError(f"{layer.name}: cannot save {k}={v!r}; use a string name")
    return {"class_name": type(layer).__name__, "config": cfg}


def deserialize(spec) -> Layer:
    """The layer a `serialize` dict describes; ValueError for an unknown or malformed spec."""
    if not isinstance(spec, dict) or not isinstance(spec.get("config"), dict):
        raise ValueError(f"layer spec: expected {{'class_name', 'config'}}, got {spec!r:.200}")
    cls: Any = LAYER_CLASSES.get(str(spec.get("class_name")))
    if cls is None:
        raise ValueError(f"layer spec: unknown layer class {spec.get('class_name')!r}")
    try:
        if cls is InputLayer:
            cfg = dict(spec["config"])
            return InputLayer(tuple(cfg.pop("shape")), **cfg)
        return cls.from_config(spec["config"])
    except TypeError as e:
        raise ValueError(f"layer spec for {cls.__name__}: {e}") from None
