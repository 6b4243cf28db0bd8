"""Wrappers: Bidirectional runs a recurrent layer both ways; TimeDistributed maps over time."""

from __future__ import annotations

import numpy as np

from .base import Layer, deserialize, serialize
from .recurrent import _Recurrent


def _with_layers(owner, config, keys):
    """A wrapper's config with its wrapped layers' specs made layers; ValueError naming the
    missing entry (a damaged or crafted file)."""
    config = dict(config)
    for key in keys:
        if key not in config:
            raise ValueError(f"{owner} config: expected a {key!r} entry")
        config[key] = deserialize(config[key])
    return config


def _check_backward_layer(layer, backward, merge_mode):
    """Keras's rules for an explicit backward_layer: a recurrent layer running the other way,
    returning what the forward one returns (and as many units where the outputs are merged
    elementwise)."""
    if not isinstance(backward, _Recurrent):
        raise TypeError(
            f"backward_layer: expected a SimpleRNN, LSTM or GRU instance, got "
            f"{type(backward).__name__}"
        )
    if backward.go_backwards == layer.go_backwards:
        raise ValueError(
            f"backward_layer: expected go_backwards={not layer.go_backwards} (the opposite of "
            f"the forward layer's), got {backward.go_backwards}"
        )
    for arg in ("return_sequences", "return_state", "stateful"):
        if getattr(backward, arg) != getattr(layer, arg):
            raise ValueError(
                f"backward_layer: expected {arg}={getattr(layer, arg)} (as the forward layer), "
                f"got {getattr(backward, arg)}"
            )
    if merge_mode in ("sum", "mul", "ave") and backward.units != layer.units:
        raise ValueError(
            f"backward_layer: merge_mode={merge_mode!r} needs as many units as the forward "
            f"layer ({layer.units}), got {backward.units}"
        )


class Bidirectional(Layer):
    """Runs a recurrent layer forwards and a copy backwards, merging the two outputs."""

    min_ndim = 3
    MERGE_MODES = ("concat", "sum", "mul", "ave", None)

    def __init__(self, layer, merge_mode="concat", backward_layer=None, **kwargs):
        if not isinstance(layer, _Recurrent):
            raise TypeError(
                f"layer: expected a SimpleRNN, LSTM or GRU instance, got {type(layer).__name__}"
            )
        if layer.return_state:
            raise NotImplementedError("Bidirectional: return_state is not supported")
        if merge_mode not in self.MERGE_MODES:
            raise ValueError(f"merge_mode: expected one of {self.MERGE_MODES}, got {merge_mode!r}")
        kwargs.setdefault("name", "bidirectional_" + layer.name)
        kwargs.setdefault("input_shape", layer.input_shape)
        kwargs.setdefault("dtype", layer.dtype)
        super().__init__(**kwargs)
        self.merge_mode = merge_mode
        self.return_sequences = layer.return_sequences
        if backward_layer is not None:
            _check_backward_layer(layer, backward_layer, merge_mode)
        else:
            cfg = layer.get_config()
            cfg.update(name="backward_" + layer.name, go_backwards=not layer.go_backwards)
            cfg.pop("input_shape", None)
            if layer.seed is not None:
                cfg["seed"] = layer.seed + 1
            backward_layer = type(layer).from_config(cfg)
        layer.name = layer.name if layer.name.startswith("forward_") else "forward_" + layer.name
        self.forward_layer, self.backward_layer = layer, backward_layer
        for sub in self.sublayers():
            sub.zero_output_for_mask = self.return_sequences  # as Keras does
            sub.dtype = sub.dtype or self.dtype

    def sublayers(self):
        """The forward and backward layers (both directions)."""
        return [self.forward_layer, self.backward_layer]

    def build(self, input_shape):
        """Builds both layers for the input shape."""
        for sub in self.sublayers():
            sub.dtype = sub.dtype or self.dtype
            sub.ensure_built(input_shape)

    def output_shape(self, input_shape):
        """The merged output shape (concat joins both directions' feature axes)."""
        shape = self.forward_layer.output_shape(input_shape)
        if self.merge_mode == "concat":
            back = self.backward_layer.output_shape(input_shape)
            return shape[:-1] + (shape[-1] + back[-1],)
        return shape

    def compute_mask(self, x, mask):
        """The input mask when returning sequences, else None."""
        return mask if self.return_sequences else None

    def forward(self, x, mask, training):
        """Both directions over x, their outputs merged by merge_mode."""
        yf, cf = self.forward_layer.forward(x, mask, training)
        yb, cb = self.backward_layer.forward(x, mask, training)
        if self.return_sequences:
            yb = yb[:, ::-1]
        m = self.merge_mode
        if m == "concat":
            y = np.concatenate([yf, yb], axis=-1)
        elif m == "sum":
            y = yf + yb
        elif m == "mul":
            y = yf * yb
        elif m == "ave":
            y = (yf + yb) / 2
        else:
            y = [yf, yb]
        return y, ((cf, cb, yf, yb) if training else None)

    def backward(self, ctx, dy, grads):
        """The merged gradient split into both directions; their dx summed."""
        cf, cb, yf, yb = ctx
        m = self.merge_mode
        if m == "concat":
            H = yf.shape[-1]
            dyf, dyb = dy[..., :H], dy[..., H:]
        elif m == "sum":
            dyf = dyb = dy
        elif m == "mul":
            dyf, dyb = dy * yb, dy * yf
        elif m == "ave":
            dyf = dyb = dy / 2
        else:
            dyf, dyb = dy
        if self.return_sequences:
            dyb = dyb[:, ::-1]
        dx = self.forward_layer.backward(cf, np.ascontiguousarray(dyf), grads)
        return dx + self.backward_layer.backward(cb, np.ascontiguousarray(dyb), grads)

    def get_weights(self):
        """The forward layer's weights, then the backward layer's (Keras's order)."""
        return self.forward_layer.get_weights() + self.backward_layer.get_weights()

    def _assign(self, weights):
        n = len(self.forward_layer.get_weights())
        self.forward_layer._assign(weights[:n])
        self.backward_layer._assign(weights[n:])

    def get_config(self):
        """The config with both wrapped layers serialized."""
        cfg = super().get_config()
        cfg["merge_mode"] = self.merge_mode
        cfg["layer"] = serialize(self.forward_layer)
        cfg["backward_layer"] = serialize(self.backward_layer)
        return cfg

    @classmethod
    def from_config(cls, config):
        """A Bidirectional from `get_config()`'s dict."""
        return cls(**_with_layers(cls.__name__, config, ("layer", "backward_layer")))


class TimeDistributed(Layer):
    """Applies a layer to every time step: (batch, time, ...) -> (batch, time, ...)."""

    min_ndim = 3
    supports_masking = True

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer) or isinstance(layer, (_Recurrent, Bidirectional)):
            raise TypeError(f"layer: expected a non-recurrent Layer, got {type(layer).__name__}")
        kwargs.setdefault("name", "time_distributed_" + layer.name)
        kwargs.setdefault("input_shape", layer.input_shape)
        kwargs.setdefault("dtype", layer.dtype)
        super().__init__(**kwargs)
        self.layer = layer

    def sublayers(self):
        """The wrapped layer."""
        return [self.layer]

    def build(self, input_shape):
        """Builds the wrapped layer for one step's shape."""
        self.layer.dtype = self.layer.dtype or self.dtype
        self.layer.ensure_built((None,) + tuple(input_shape[2:]))

    def output_shape(self, input_shape):
        """(batch, time) plus the wrapped layer's output shape."""
        inner = self.layer.output_shape((None,) + tuple(input_shape[2:]))
        return tuple(input_shape[:2]) + tuple(inner[1:])

    def forward(self, x, mask, training):
        """The wrapped layer on every step at once (batch and time merged)."""
        B, T = x.shape[:2]
        y, ctx = self.layer.forward(x.reshape((B * T,) + x.shape[2:]), None, training)
        return y.reshape((B, T) + y.shape[1:]), ctx

    def backward(self, ctx, dy, grads):
        """The wrapped layer's backward on the merged axes."""
        B, T = dy.shape[:2]
        dx = self.layer.backward(ctx, dy.reshape((B * T,) + dy.shape[2:]), grads)
        return None if dx is None else dx.reshape((B, T) + dx.shape[1:])

    def get_weights(self):
        """The wrapped layer's weights."""
        return self.layer.get_weights()

    def _assign(self, weights):
        self.layer._assign(weights)

    def get_config(self):
        """The config with the wrapped layer serialized."""
        cfg = super().get_config()
        cfg["layer"] = serialize(self.layer)
        return cfg

    @classmethod
    def from_config(cls, config):
        """A TimeDistributed from `get_config()`'s dict."""
        return cls(**_with_layers(cls.__name__, config, ("layer",)))
