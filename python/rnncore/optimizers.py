"""Optimizers with Keras's names, defaults and update rules.

An optimizer updates parameter arrays in place from a dict of gradients keyed like the
parameters; its per-parameter slots (moments) are keyed the same way.
"""

from __future__ import annotations

import numpy as np

from . import schedules
from ._registry import Registry

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Adamax", "Nadam", "Optimizer", "RMSprop", "get",
           "schedules"]  # fmt: skip

_FLAT = "flat"  # the slots key of every parameter's values as one vector (Optimizer.apply)


def _positive(name, value, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero) or not np.isfinite(value):
        raise ValueError(f"{name}: expected a positive number, got {value!r}")
    return float(value)


def _norm(g) -> float:
    """L2 norm in float64: float32 gradients of 1e20 would overflow as a sum of squares."""
    return float(np.linalg.norm(np.ravel(g).astype(np.float64)))


class Optimizer:
    """Base class of the optimizers: updates parameters in place from their gradients.

    Args:
        learning_rate: Step size, or a schedule (`rnncore.optimizers.schedules`) giving it
            for each update.
        clipnorm: Clip each gradient to this norm, or None.
        clipvalue: Clip each gradient's entries to [-clipvalue, clipvalue], or None.
        global_clipnorm: Clip all gradients together to this norm, or None.
        weight_decay: Before each update, every parameter shrinks by
            parameter * weight_decay * learning_rate (decoupled weight decay, as Keras 3
            applies it to any optimizer), or None.

    Updates of all parameters of one dtype run as one flat array operation.
    """

    def __init__(self, learning_rate, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 weight_decay=None):  # fmt: skip
        if isinstance(learning_rate, dict):  # a schedule, as get_config wrote it
            learning_rate = schedules.deserialize(learning_rate)
        self._schedule = None
        self._applying = 0  # 1 inside apply: the schedule's step is the update's index
        if isinstance(learning_rate, schedules.LearningRateSchedule):
            self._schedule = learning_rate
        else:  # positive when made; a callback may lower it to 0 later
            self.learning_rate = _positive("learning_rate", learning_rate)
        self.weight_decay = (
            None if weight_decay is None else _positive("weight_decay", weight_decay, True)
        )
        self.clipnorm = None if clipnorm is None else _positive("clipnorm", clipnorm)
        self.clipvalue = None if clipvalue is None else _positive("clipvalue", clipvalue)
        self.global_clipnorm = (
            None if global_clipnorm is None else _positive("global_clipnorm", global_clipnorm)
        )
        if sum(c is not None for c in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError("only one of clipnorm, clipvalue and global_clipnorm may be set")
        self.iterations = 0
        self.slots: dict = {}  # {key: {name: array}}; key _FLAT holds the flat slots
        self._fills: dict = {}  # {slot name: its initial value}
        self._flat_shapes: list | None = None  # [(key, shape)] of the flat layout

    @property
    def learning_rate(self) -> float:
        """The step size of the current update (the schedule's value at it, with a schedule)."""
        if self._schedule is not None:
            return float(self._schedule(self.iterations - self._applying))
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        if getattr(self, "_schedule", None) is not None:
            raise TypeError(
                "learning_rate: this optimizer follows a schedule; it cannot be set to a number"
            )
        self._learning_rate = _positive("learning_rate", value, allow_zero=True)

    def _clip(self, grads: dict) -> dict:
        if self.clipvalue is not None:
            return {k: np.clip(g, -self.clipvalue, self.clipvalue) for k, g in grads.items()}
        if self.clipnorm is not None:
            out = {}
            for k, g in grads.items():
                n = _norm(g)
                out[k] = g * (self.clipnorm / n) if n > self.clipnorm else g
            return out
        if self.global_clipnorm is not None:
            n = float(np.sqrt(sum(_norm(g) ** 2 for g in grads.values())))
            if n > self.global_clipnorm:
                return {k: g * (self.global_clipnorm / n) for k, g in grads.items()}
        return grads

    def apply(self, params: dict, grads: dict) -> None:
        """params[k] -= update(grads[k]) in place, for every k in grads.

        Every update rule here is elementwise, so all parameters of one dtype update as one
        flat vector: a dozen NumPy calls per step instead of a dozen per parameter (most of
        a small model's optimizer time), with the same bits. Each parameter's slots are
        views of the flat slots, so `slots[k]` still holds its moments."""
        grads = self._clip(grads)
        self.iterations += 1
        self._applying = 1
        try:
            self._apply(params, grads)
        finally:
            self._applying = 0

    def _apply(self, params: dict, grads: dict) -> None:
        if self.weight_decay:
            for k in grads:
                params[k] -= params[k] * (self.weight_decay * self.learning_rate)
        self._begin_step()
        dtypes = {params[k].dtype for k in grads}
        if len(dtypes) != 1:  # mixed dtypes: one parameter at a time
            for k, g in grads.items():
                p = params[k]
                p -= self._step(k, p, g.astype(p.dtype, copy=False)).astype(p.dtype, copy=False)
            return
        (dtype,) = dtypes
        keys = tuple(grads)
        flat_g = np.concatenate([grads[k].astype(dtype, copy=False).ravel() for k in keys])
        self._flat_layout(keys, params, dtype)
        update = self._step(_FLAT, flat_g, flat_g).astype(dtype, copy=False)
        for k, part in self._views(update):
            params[k] -= part

    def _flat_layout(self, keys, params, dtype) -> None:
        """Makes the flat slots cover `keys` in this order (moving each key's slot values
        over when the set of parameters changes)."""
        if self._flat_shapes is not None and tuple(k for k, _ in self._flat_shapes) == keys:
            return
        self._flat_shapes = [(k, params[k].shape) for k in keys]
        for name in self.slots.pop(_FLAT, {}):
            self._share_out(name, self._flat_slot(name, dtype, self._fills[name]))

    def _share_out(self, name, flat) -> None:
        """Makes each parameter's slot `name` its part of `flat`, keeping what it held."""
        for k, view in self._views(flat):
            part = self.slots.setdefault(k, {})
            if name in part:
                view[...] = part[name]
            part[name] = view

    def _views(self, flat):
        """(key, that parameter's part of a flat array, in its shape), in layout order."""
        start = 0
        for k, shape in self._flat_shapes:
            n = int(np.prod(shape))
            yield k, flat[start : start + n].reshape(shape)
            start += n

    def _flat_slot(self, name, dtype, fill):
        total = sum(int(np.prod(shape)) for _, shape in self._flat_shapes)
        flat = np.full(total, fill, dtype)
        self.slots.setdefault(_FLAT, {})[name] = flat
        return flat

    def _slot(self, key, name, like, fill=0.0):
        """The slot `name` of parameter `key` (or of the flat vector), made on first use."""
        slots = self.slots.setdefault(key, {})
        if name not in slots:
            self._fills[name] = fill
            if key is _FLAT:  # each parameter's slot is its part of the flat one
                self._share_out(name, self._flat_slot(name, like.dtype, fill))
            else:
                slots[name] = np.full_like(like, fill)
        return slots[name]

    def _begin_step(self) -> None:
        """Once per apply, after iterations grows: state shared by every parameter's step."""

    def _step(self, key, p, g):
        raise NotImplementedError

    config_keys: tuple = ()

    def get_config(self):
        """The constructor arguments (Keras's config)."""
        keys = ("clipnorm", "clipvalue", "global_clipnorm", "weight_decay") + self.config_keys
        rate = schedules.serialize(self._schedule) if self._schedule else self.learning_rate
        return {"learning_rate": rate, **{k: getattr(self, k) for k in keys}}


class SGD(Optimizer):
    """Stochastic gradient descent with optional (Nesterov) momentum ("sgd")."""

    config_keys = ("momentum", "nesterov")

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.momentum = _positive("momentum", momentum, allow_zero=True)
        self.nesterov = bool(nesterov)

    def _step(self, key, p, g):
        lr = self.learning_rate
        if self.momentum == 0:
            return lr * g
        m = self._slot(key, "m", p)
        m *= self.momentum
        m -= lr * g
        return -(self.momentum * m - lr * g) if self.nesterov else -m


class Adam(Optimizer):
    """Adam (Kingma and Ba 2015), Keras's defaults ("adam")."""

    config_keys = ("beta_1", "beta_2", "epsilon")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _step(self, key, p, g):
        t = self.iterations
        m, v = self._slot(key, "m", p), self._slot(key, "v", p)
        m += (g - m) * (1 - self.beta_1)
        v += (g * g - v) * (1 - self.beta_2)
        lr = self.learning_rate * np.sqrt(1 - self.beta_2**t) / (1 - self.beta_1**t)
        return lr * m / (np.sqrt(v) + self.epsilon)


class AdamW(Adam):
    """Adam with decoupled weight decay, Keras's defaults ("adamw")."""

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, **kwargs):  # fmt: skip
        if weight_decay is None:
            raise ValueError("weight_decay: expected a float for AdamW, got None")
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay=weight_decay,
                         **kwargs)  # fmt: skip


class Nadam(Optimizer):
    """Adam with Nesterov momentum (Dozat 2016), as Keras 3 defines it ("nadam")."""

    config_keys = ("beta_1", "beta_2", "epsilon")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self._u_product = 1.0  # the product of the momentum schedule's u_t so far

    def _u(self, step: int) -> float:
        return self.beta_1 * (1.0 - 0.5 * 0.96**step)

    def _begin_step(self) -> None:
        self._u_product *= self._u(self.iterations)

    def _step(self, key, p, g):
        t, b1, b2 = self.iterations, self.beta_1, self.beta_2
        u_t, u_next = self._u(t), self._u(t + 1)
        m, v = self._slot(key, "m", p), self._slot(key, "v", p)
        m += (g - m) * (1 - b1)
        v += (g * g - v) * (1 - b2)
        m_hat = u_next * m / (1 - self._u_product * u_next) + (1 - u_t) * g / (1 - self._u_product)
        v_hat = v / (1 - b2**t)
        return self.learning_rate * m_hat / (np.sqrt(v_hat) + self.epsilon)


class Adamax(Optimizer):
    """Adam with the infinity norm (Kingma and Ba 2015), Keras's defaults ("adamax")."""

    config_keys = ("beta_1", "beta_2", "epsilon")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)

    def _step(self, key, p, g):
        m, u = self._slot(key, "m", p), self._slot(key, "u", p)
        m += (g - m) * (1 - self.beta_1)
        np.maximum(self.beta_2 * u, np.abs(g), out=u)
        return self.learning_rate * m / ((1 - self.beta_1**self.iterations) * (u + self.epsilon))


class RMSprop(Optimizer):
    """RMSprop as Keras 3 defines it ("rmsprop", compile's default): epsilon inside the
    square root, and `centered` divides by the gradient's estimated variance instead."""

    config_keys = ("rho", "momentum", "epsilon", "centered")

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 **kwargs):  # fmt: skip
        super().__init__(learning_rate, **kwargs)
        self.rho, self.epsilon, self.centered = float(rho), float(epsilon), bool(centered)
        self.momentum = _positive("momentum", momentum, allow_zero=True)

    def _step(self, key, p, g):
        v = self._slot(key, "v", p)
        v *= self.rho
        v += (1 - self.rho) * g * g
        denominator = v + self.epsilon
        if self.centered:
            mean_g = self._slot(key, "mean_g", p)
            mean_g *= self.rho
            mean_g += (1 - self.rho) * g
            denominator = v - mean_g * mean_g + self.epsilon
        inc = self.learning_rate * g / np.sqrt(denominator)
        if self.momentum == 0:
            return inc
        m = self._slot(key, "m", p)
        m *= self.momentum
        m += inc
        return m


class Adagrad(Optimizer):
    """Adagrad, Keras's defaults ("adagrad")."""

    config_keys = ("initial_accumulator_value", "epsilon")

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, **kwargs):
        super().__init__(learning_rate, **kwargs)
        self.initial_accumulator_value, self.epsilon = (
            float(initial_accumulator_value),
            float(epsilon),
        )

    def _step(self, key, p, g):
        acc = self._slot(key, "acc", p, self.initial_accumulator_value)
        acc += g * g
        return self.learning_rate * g / np.sqrt(acc + self.epsilon)  # as Keras 3


_CLASSES = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "nadam": Nadam, "adamax": Adamax,
            "rmsprop": RMSprop, "adagrad": Adagrad}  # fmt: skip


_REGISTRY = Registry("optimizer", Optimizer, _CLASSES, fold_case=True)


def serialize(optimizer: Optimizer) -> dict:
    """`{"class_name", "config"}` of a optimizer, as model files store it."""
    return _REGISTRY.serialize(optimizer)


def deserialize(spec) -> Optimizer:
    """The optimizer a `serialize` dict describes; ValueError for an unknown class."""
    return _REGISTRY.deserialize(spec)


def get(optimizer) -> Optimizer:
    """A Optimizer instance: `optimizer` itself, or a new one by name (e.g. "adam").

    Raises:
        ValueError: an unknown name, listing the known ones.
    """
    return _REGISTRY.get(optimizer)


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
