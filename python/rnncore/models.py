"""Sequential models: a linear stack of layers, as in Keras.

The model chains its layers' forward passes (carrying the time mask) and turns the loss
gradient into parameter gradients with the layers' backward passes in reverse order. The
training loop (compile / fit / evaluate) is in training.py, the files in saving.py.
"""

from __future__ import annotations

import json

import numpy as np

from . import _keras_files, distribution, io, saving
from . import layers as layers_mod
from ._validate import float_dtype
from .callbacks import History
from .layers import InputLayer, KerasTensor, Layer
from .layers.base import as_input_shape, shape_str, walk
from .saving import load_model, model_from_json
from .training import TrainingLoop

__all__ = ["History", "Model", "Sequential", "clone_model", "load_model", "model_from_json"]  # noqa: F822 (Model: __getattr__)


class Sequential(TrainingLoop):
    """A linear stack of layers: `Sequential([Input((T, F)), LSTM(32), Dense(1)])`."""

    architecture = "Sequential"  # the class_name of its JSON and model files

    def __init__(self, layers=None, name="sequential", dtype=None):
        self.name = name
        self.dtype = None if dtype is None else float_dtype(dtype)
        self.layers: list[Layer] = []
        self.input_layer: InputLayer | None = None
        self.optimizer = None
        self.loss = None
        self.metric_names: list[str] = []
        self.stop_training = False
        self.history = None
        self.built_input_shape = None  # per-sample shape (no batch axis) seen or declared
        self._rng = None
        for layer in layers or []:
            self.add(layer)

    # ---- structure ----
    def add(self, layer):
        """Appends a layer (an InputLayer first fixes the input shape).

        Raises:
            TypeError: not a Layer.
            ValueError: a second InputLayer, or a layer that is already in the model.
        """
        if isinstance(layer, KerasTensor) and isinstance(layer.node.layer, InputLayer):
            layer = layer.node.layer  # Input(...) starts a Sequential
        if isinstance(layer, Sequential):
            for sub in layer.layers:
                self.add(sub)
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"add: expected a Layer, got {type(layer).__name__}")
        if isinstance(layer, InputLayer):
            if self.layers or self.input_layer is not None:
                raise ValueError("add: an Input may only come first")
            self.input_layer = layer
            self.built_input_shape = layer.input_shape
            return
        if getattr(layer, "return_state", False):
            raise ValueError(f"{layer.name}: return_state=True layers do not fit in a Sequential")
        if getattr(layer, "merge_mode", "concat") is None:
            raise ValueError(
                f"{layer.name}: merge_mode=None gives two outputs; not in a Sequential"
            )
        if any(existing.name == layer.name for existing in self.layers):
            raise ValueError(f"add: a layer named {layer.name!r} is already in the model")
        if not self.layers and self.input_layer is None and layer.input_shape is not None:
            self.built_input_shape = layer.input_shape
        if self.dtype is not None:
            _set_default_dtype(layer, self.dtype)
        self.layers.append(layer)
        if self.built_input_shape is not None:
            self.build()

    @property
    def input_dtype(self):
        """The dtype inputs are cast to (the InputLayer's, else the model's)."""
        return self.dtype or np.dtype(np.float32)

    def build(self, input_shape=None):
        """Create every layer's weights for samples of `input_shape` (no batch axis)."""
        if input_shape is not None:
            self.built_input_shape = as_input_shape(input_shape)
        if self.built_input_shape is None:
            raise ValueError(
                f"{self.name}: the input shape is unknown; start with Input(shape) or pass "
                "input_shape to the first layer (or call the model on data)"
            )
        shape = (None,) + tuple(self.built_input_shape)
        for layer in self.layers:
            layer.ensure_built(shape)
            shape = layer.output_shape(shape)
        return shape

    def _leaf_params(self) -> dict:
        """{(layer, name): array} for every trainable parameter."""
        trainable = [lyr for lyr in walk(self.layers, lambda lyr: lyr.trainable) if lyr.trainable]
        return {(layer, k): v for layer in trainable for k, v in layer.params.items()}

    def count_params(self) -> int:
        """The number of weights (scalars) in all layers."""
        return sum(layer.count_params() for layer in self.layers)

    # ---- running ----
    def _prepare_x(self, x):
        if not self.layers:
            raise ValueError(f"{self.name}: the model has no layers")
        first = self.layers[0]
        x = np.asarray(x)
        if isinstance(first, layers_mod.Embedding):
            x = first.cast_input(x)
        else:
            if x.dtype.kind not in "fiub":
                raise TypeError(f"x: expected a numeric array, got dtype {x.dtype}")
            x = x.astype(self.input_dtype, copy=False)
        want = self.built_input_shape
        if want is not None and (
            x.ndim != len(want) + 1
            or any(w is not None and w != s for s, w in zip(x.shape[1:], want))
        ):
            raise ValueError(
                f"x: expected input shape {shape_str((None,) + tuple(want))}, got {tuple(x.shape)}"
            )
        if want is None:
            self.build(x.shape[1:])
        return x

    def _forward(self, x, training):
        mask, ctxs = None, _Contexts()
        for i, layer in enumerate(self.layers):
            layer.ensure_built(x.shape)
            y, ctx = layer.forward(x, mask, training)
            mask = layer.compute_mask(x, mask)
            ctxs.append(ctx)
            ctxs.note_activity(i, layer, y)  # its penalty joins the loss (see _regularization)
            x = y
        return x, mask, ctxs

    def _backward(self, ctxs, dy, grads):
        for i in reversed(range(len(self.layers))):
            layer = self.layers[i]
            dy = ctxs.with_activity_grad(i, dy)
            dy = layer.backward(ctxs[i], dy, grads)
            if dy is None:
                break

    def _regularization(self, ctxs, grads=None) -> float:
        """The penalties added to the loss: every layer's weight regularizers and, from the
        forward pass `ctxs`, the activity regularizers (divided by the batch size, as Keras 3
        does); their weight gradients go into `grads` when given."""
        return sum(layer.weight_penalty(grads) for layer in self.layers) + ctxs.activity_penalty()

    def _apply_constraints(self) -> None:
        for layer in self.layers:
            layer.apply_constraints()

    def __call__(self, x, training=False):
        """The model applied to x (no batching): `y = model(x)`."""
        y, _, _ = self._forward(self._prepare_x(x), bool(training))
        return y

    def get_weights(self):
        """Every layer's weights in order (Keras's layout)."""
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights):
        """Sets every layer's weights from `get_weights()`'s list.

        Raises:
            ValueError: a wrong number of arrays or a wrong shape.
        """
        weights = list(weights)
        counts = [len(layer.get_weights()) for layer in self.layers]
        if len(weights) != sum(counts):
            raise ValueError(f"set_weights: expected {sum(counts)} arrays, got {len(weights)}")
        start = 0
        for layer, n in zip(self.layers, counts):
            layer.set_weights(weights[start : start + n])
            start += n

    def reset_states(self):
        """Forgets the state of every stateful layer."""
        for layer in self.layers:
            layer.reset_states()

    # ---- files ----
    def get_config(self):
        """{name, layers (serialized), dtype, input_shape}: what rebuilds the model."""
        cfg = {"name": self.name, "layers": [layers_mod.serialize(lyr) for lyr in self.layers]}
        if self.dtype is not None:
            cfg["dtype"] = self.dtype.name
        if self.built_input_shape is not None:
            cfg["input_shape"] = list(self.built_input_shape)
        if self.batch_size is not None:
            cfg["batch_size"] = self.batch_size
        return cfg

    @property
    def weights(self) -> list:
        """Every layer's `weights` (Keras layout), in layer order."""
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self) -> list:
        """The weights training updates (those of trainable layers)."""
        return [w for layer in self.layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self) -> list:
        """The weights of frozen layers (trainable=False)."""
        return [w for layer in self.layers for w in layer.non_trainable_weights]

    @property
    def batch_size(self):
        """The batch size fixed by `Input(batch_size=)`, or None."""
        return None if self.input_layer is None else self.input_layer.batch_size

    def get_layer(self, name=None, index=None):
        """A layer by its name or its index in `layers`, as Keras's get_layer.

        Raises:
            ValueError: neither or both given, or no layer has that name or index.
        """
        if (name is None) == (index is None):
            raise ValueError("get_layer: expected a name or an index (one of them)")
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, int):
                raise ValueError(f"index: expected an int, got {index!r}")
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"index: expected one in [0, {len(self.layers)}), got {index}")
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        names = [layer.name for layer in self.layers]
        raise ValueError(f"name: no layer named {name!r}; the layers are {names}")

    def to_json(self, **kwargs) -> str:
        """The architecture as JSON (no weights), for `rnncore.models.model_from_json`.

        Args:
            **kwargs: Passed to json.dumps (indent=2, say).
        """
        return json.dumps({"class_name": self.architecture, "config": self.get_config()}, **kwargs)

    def save(self, path) -> None:
        """Writes the model, atomically, in the format its extension names.

        `.rnncore` (or `.safetensors`): rnncore's own file, weights (Keras layout) plus the
        architecture and compile settings. `.keras`: a Keras 3 archive that
        `keras.models.load_model` opens (h5py needed; compile settings are not kept).
        Under a DataParallel only rank 0 writes (every rank holds the same weights).

        Args:
            path: Where to write; its extension picks the format.

        Raises:
            ValueError: another extension (the message lists these).
        """
        self._write(path, "keras", _keras_files.save_keras_model, "save")

    def save_weights(self, path) -> None:
        """Writes the weights, atomically, in the format its extension names.

        `.weights.h5`: Keras 3's layout, which Keras's `load_weights` reads (h5py needed).
        `.rnncore` (or `.safetensors`): rnncore's own file, as `save` writes it.

        Args:
            path: Where to write; its extension picks the format.

        Raises:
            ValueError: another extension (the message lists these).
        """
        self._write(path, "weights.h5", _keras_files.save_keras_weights, "save_weights")

    def _write(self, path, keras_kind, keras_writer, method) -> None:
        """rnncore's file, or Keras's `keras_kind` by keras_writer, as path's extension says;
        only rank 0 of a DataParallel writes."""
        kind = saving.file_kind(path, ("rnncore", keras_kind), method)
        if distribution.is_writer():
            (keras_writer if kind == keras_kind else saving.save_model)(self, path)

    def load_weights(self, path) -> None:
        """Weights for this architecture from a file `save`/`save_weights` wrote, or from
        a Keras 3 `.keras` / `.weights.h5` file of the same layers.

        Args:
            path: The file; Keras files are recognised by their contents.
        """
        if saving.is_zip_or_hdf5(path):
            io.load_keras_weights(self, path)
            return
        tensors, _ = saving.read_model_file(path)
        saving.assign_tensors(self, path, tensors)

    def summary(self, print_fn=print):
        """Prints the layers, their output shapes and parameter counts (as Keras).

        Args:
            print_fn: Where the lines go (print by default).

        Raises:
            ValueError: the input shape is not known yet.
        """
        shape = (
            (self.batch_size,) + tuple(self.built_input_shape) if self.built_input_shape else None
        )
        if shape is None:
            raise ValueError(
                f"{self.name}: summary needs the input shape; build or call the model first"
            )
        self.build()
        rows = []
        for layer in self.layers:
            shape = layer.output_shape(shape)
            rows.append((f"{layer.name} ({type(layer).__name__})", shape_str(shape),
                         f"{layer.count_params():,}"))  # fmt: skip
        w0 = max([len("Layer (type)")] + [len(r[0]) for r in rows]) + 2
        w1 = max([len("Output Shape")] + [len(r[1]) for r in rows]) + 2
        w2 = max([len("Param #")] + [len(r[2]) for r in rows])
        line = "=" * (w0 + w1 + w2)
        out = [
            f'Model: "{self.name}"',
            line,
            f"{'Layer (type)':<{w0}}{'Output Shape':<{w1}}{'Param #':>{w2}}",
            line,
        ]
        out += [f"{a:<{w0}}{b:<{w1}}{c:>{w2}}" for a, b, c in rows]
        total = self.count_params()
        trainable = sum(v.size for v in self._leaf_params().values())
        out += [line, f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                f"Non-trainable params: {total - trainable:,}"]  # fmt: skip
        print_fn("\n".join(out))


class _Contexts(list):
    """The layers' backward contexts of one forward pass, and the outputs of the calls with
    an activity regularizer ({call number: (layer, output)})."""

    def __init__(self):
        super().__init__()
        self.activity: dict = {}

    def note_activity(self, i, layer, y) -> None:
        """Keeps call i's output when its layer has an activity regularizer."""
        if layer.activity_regularizer is not None:
            self.activity[i] = (layer, y)

    def with_activity_grad(self, i, dy):
        """dy plus the gradient of call i's activity penalty (per sample, as Keras 3)."""
        if i not in self.activity:
            return dy
        layer, y = self.activity[i]
        return dy + layer.activity_regularizer.gradient(y) / len(y)

    def activity_penalty(self) -> float:
        """The activity penalties of the pass, each divided by the batch size (Keras 3)."""
        return sum(layer.activity_regularizer(y) / len(y) for layer, y in self.activity.values())


def _set_default_dtype(layer, dtype):
    if layer.dtype is None:
        layer.dtype = dtype
    for sub in layer.sublayers():
        _set_default_dtype(sub, dtype)


def clone_model(model: Sequential) -> Sequential:
    """A model of the same architecture with fresh weights (not compiled), as Keras's
    clone_model: `clone.set_weights(model.get_weights())` copies the weights over."""
    if not isinstance(model, Sequential):
        raise TypeError(f"model: expected a Sequential, got {type(model).__name__}")
    return model_from_json(model.to_json())


def __getattr__(name):
    """`models.Model` (functional.py, which builds on this module), as keras.models has it."""
    if name == "Model":
        from .functional import Model

        return Model
    raise AttributeError(f"module 'rnncore.models' has no attribute {name!r}")


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
