"""Sequential models: compile / fit / evaluate / predict / save, as in Keras.

The model chains its layers' forward passes (carrying the time mask), turns the loss
gradient into parameter gradients with the layers' backward passes in reverse order, and lets
the optimizer update the parameters in place.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from . import _safetensors
from . import callbacks as callbacks_mod
from . import layers as layers_mod
from . import losses as losses_mod
from . import metrics as metrics_mod
from . import optimizers as optimizers_mod
from ._validate import float_dtype
from ._version import __version__
from .layers import InputLayer, Layer
from .layers.base import as_input_shape, shape_str
from .utils import new_generator

__all__ = ["History", "Sequential", "load_model"]

FILE_FORMAT = "rnncore.sequential/1"


class History(callbacks_mod.Callback):
    """`history.history`: per-epoch lists of every logged value (loss, metrics, val_*)."""

    def __init__(self):
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


class Sequential:
    """A linear stack of layers: `Sequential([Input((T, F)), LSTM(32), Dense(1)])`."""

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
        out = {}

        def visit(layer):
            if layer.trainable:
                for k, v in layer.params.items():
                    out[(layer, k)] = v
                for sub in layer.sublayers():
                    visit(sub)

        for layer in self.layers:
            visit(layer)
        return out

    def count_params(self) -> int:
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
        mask, ctxs = None, []
        for layer in self.layers:
            layer.ensure_built(x.shape)
            y, ctx = layer.forward(x, mask, training)
            mask = layer.compute_mask(x, mask)
            ctxs.append(ctx)
            x = y
        return x, mask, ctxs

    def _backward(self, ctxs, dy, grads):
        for layer, ctx in zip(reversed(self.layers), reversed(ctxs)):
            dy = layer.backward(ctx, dy, grads)
            if dy is None:
                break

    def __call__(self, x, training=False):
        y, _, _ = self._forward(self._prepare_x(x), bool(training))
        return y

    def predict(self, x, batch_size=32, verbose=0):
        x = self._prepare_x(x)
        batch_size = _batch_size(batch_size)
        outs = []
        bar = Progbar(_num_batches(len(x), batch_size), verbose)
        for i, start in enumerate(range(0, len(x), batch_size)):
            outs.append(self._forward(x[start : start + batch_size], False)[0])
            bar.update(i + 1, {})
        if not outs:
            return self._forward(x, False)[0]
        return np.concatenate(outs, axis=0)

    # ---- training ----
    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        if loss is None:
            raise ValueError("compile: a loss is required (e.g. loss='mse')")
        self.optimizer = optimizers_mod.get(optimizer)
        self.loss = losses_mod.get(loss)
        names = list(metrics or [])
        for n in names:
            metrics_mod.get(n, self.loss, 2)  # unknown names fail now, not mid-fit
        self.metric_names = names

    def _require_compiled(self, what):
        if self.loss is None:
            raise RuntimeError(f"{what}: call compile(optimizer, loss) first")

    def _metrics_for(self, y_pred):
        return [metrics_mod.get(n, self.loss, y_pred.shape[-1]) for n in self.metric_names]

    def _batch_stats(self, x, y, training):
        """Loss and metric sums for one batch; trains on it when `training`."""
        y_pred, mask, ctxs = self._forward(x, training)
        weights = mask.astype(y_pred.dtype) if (mask is not None and y_pred.ndim == 3) else None
        loss, dpred = self.loss.value_and_grad(y, y_pred, weights)
        if training:
            grads = {}
            self._backward(ctxs, dpred, grads)
            self.optimizer.apply(self._leaf_params(), grads)
        n = float(weights.sum()) if weights is not None else float(np.prod(y_pred.shape[:-1]))
        stats = {"loss": (loss * n, n)}
        for m in self._metrics_for(y_pred):
            v = m.values(y, y_pred)
            w = weights if weights is not None else np.ones(v.shape, v.dtype)
            stats[m.name] = (float((v * w).sum()), float(w.sum()))
        return stats

    def fit(
        self,
        x=None,
        y=None,
        batch_size=32,
        epochs=1,
        verbose=1,
        validation_split=0.0,
        validation_data=None,
        shuffle=True,
        callbacks=None,
        initial_epoch=0,
    ):
        self._require_compiled("fit")
        x, y = self._prepare_x(x), _check_y(x, y)
        _require_samples("x", x)
        batch_size = _batch_size(batch_size)
        if not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs: expected a non-negative int, got {epochs!r}")
        if not 0 <= validation_split < 1:
            raise ValueError(
                f"validation_split: expected a float in [0, 1), got {validation_split!r}"
            )
        if validation_data is None and validation_split > 0:
            split_at = int(np.ceil(len(x) * (1 - validation_split)))
            x, validation_data = x[:split_at], (x[split_at:], y[split_at:])
            y = y[:split_at]
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise ValueError("validation_data: expected a tuple (x_val, y_val)")
            vx = self._prepare_x(validation_data[0])
            validation_data = (
                _require_samples("validation data", vx),
                _check_y(vx, validation_data[1]),
            )
        if self._rng is None:
            self._rng = new_generator()
        history = self.history = History()
        cbs = list(callbacks or []) + [history]
        for cb in cbs:
            if not isinstance(cb, callbacks_mod.Callback):
                raise TypeError(f"callbacks: expected Callback instances, got {type(cb).__name__}")
            cb.set_model(self)
        self.stop_training = False
        for cb in cbs:
            cb.on_train_begin()
        try:
            for epoch in range(initial_epoch, epochs):
                for cb in cbs:
                    cb.on_epoch_begin(epoch)
                logs = self._train_epoch(x, y, batch_size, shuffle, cbs, epoch, epochs, verbose)
                if validation_data is not None:
                    val = self._evaluate_logs(*validation_data, batch_size)
                    logs.update({"val_" + k: v for k, v in val.items()})
                if verbose:
                    self._bar.finish(logs)
                for cb in cbs:
                    cb.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
        except KeyboardInterrupt:
            # Ctrl-C stops the program as usual, but cleanly: the callbacks finish below,
            # model.history keeps the completed epochs (fit's return value never arrives) and
            # the weights stay usable (an update in flight may have reached only some arrays).
            self.stop_training = True
            if verbose:
                print(f"\nInterrupted; model.history holds {len(history.epoch)} completed epochs")
            raise
        finally:
            for cb in cbs:
                cb.on_train_end()
        return history

    def _train_epoch(self, x, y, batch_size, shuffle, cbs, epoch, epochs, verbose):
        order = self._rng.permutation(len(x)) if shuffle else np.arange(len(x))
        n_batches = _num_batches(len(x), batch_size)
        if verbose:
            print(f"Epoch {epoch + 1}/{epochs}")
        self._bar = Progbar(n_batches, verbose)
        totals: dict = {}
        for b in range(n_batches):
            idx = order[b * batch_size : (b + 1) * batch_size]
            stats = self._batch_stats(x[idx], y[idx], training=True)
            _accumulate(totals, stats)
            self._bar.update(b + 1, _means(totals))
            for cb in cbs:
                cb.on_train_batch_end(b, {"loss": _means(stats)["loss"]})
            if self.stop_training:
                break
        return _means(totals)

    def _evaluate_logs(self, x, y, batch_size):
        totals: dict = {}
        for start in range(0, len(x), batch_size):
            sl = slice(start, start + batch_size)
            _accumulate(totals, self._batch_stats(x[sl], y[sl], training=False))
        return _means(totals)

    def evaluate(self, x, y, batch_size=32, verbose=0, return_dict=False):
        """The loss (a float), or [loss, *metrics] when compiled with metrics."""
        self._require_compiled("evaluate")
        x = _require_samples("x", self._prepare_x(x))
        logs = self._evaluate_logs(x, _check_y(x, y), _batch_size(batch_size))
        if verbose:
            Progbar(_num_batches(len(x), _batch_size(batch_size)), verbose).finish(logs)
        if return_dict:
            return logs
        values = list(logs.values())
        return values[0] if len(values) == 1 else values

    # ---- weights and state ----
    def get_weights(self):
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights):
        weights = list(weights)
        counts = [len(layer.get_weights()) for layer in self.layers]
        if len(weights) != sum(counts):
            raise ValueError(f"set_weights: expected {sum(counts)} arrays, got {len(weights)}")
        start = 0
        for layer, n in zip(self.layers, counts):
            layer.set_weights(weights[start : start + n])
            start += n

    def reset_states(self):
        for layer in self.layers:
            layer.reset_states()

    # ---- files ----
    def get_config(self):
        cfg = {"name": self.name, "layers": [layers_mod.serialize(lyr) for lyr in self.layers]}
        if self.dtype is not None:
            cfg["dtype"] = self.dtype.name
        if self.built_input_shape is not None:
            cfg["input_shape"] = list(self.built_input_shape)
        return cfg

    def save(self, path):
        """One safetensors file: the weights (Keras layout) plus the architecture as JSON."""
        tensors = {}
        for layer in self.layers:
            for j, w in enumerate(layer.get_weights()):
                tensors[f"{layer.name}.{j}"] = w
        metadata = {
            "format": FILE_FORMAT,
            "rnncore_version": __version__,
            "architecture": json.dumps({"class_name": "Sequential", "config": self.get_config()}),
        }
        if self.loss is not None:
            metadata["compile"] = json.dumps(
                {
                    "optimizer": optimizers_mod.serialize(self.optimizer),
                    "loss": losses_mod.serialize(self.loss),
                    "metrics": self.metric_names,
                }
            )
        _safetensors.write(path, tensors, metadata)

    save_weights = save

    def load_weights(self, path):
        """Weights from a file written by save()/save_weights() for this architecture."""
        tensors, metadata = _read_model_file(path)
        self._assign_tensors(path, tensors)

    def _assign_tensors(self, path, tensors):
        if self.built_input_shape is not None:
            self.build()
        if not all(layer.built for layer in self.layers):
            raise ValueError(
                f"{path}: the model's weights do not exist yet (no input shape known); "
                "call build(input_shape) or run it once before loading weights"
            )
        expected = {}
        for layer in self.layers:
            for j, w in enumerate(layer.get_weights()):
                expected[f"{layer.name}.{j}"] = w.shape
        if set(tensors) != set(expected):
            missing, extra = (
                sorted(set(expected) - set(tensors)),
                sorted(set(tensors) - set(expected)),
            )
            raise ValueError(
                f"{path}: weights do not fit the architecture (missing {missing[:5]}, "
                f"unexpected {extra[:5]})"
            )
        for name, shape in expected.items():
            if tensors[name].shape != shape:
                raise ValueError(
                    f"{path}: weight {name!r} expected shape {shape}, got {tensors[name].shape}"
                )
        for layer in self.layers:
            n = len(layer.get_weights())
            layer.set_weights([tensors[f"{layer.name}.{j}"] for j in range(n)])

    def summary(self, print_fn=print):
        shape = (None,) + tuple(self.built_input_shape) if self.built_input_shape else None
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


def _accumulate(totals: dict, stats: dict) -> None:
    """Adds a batch's {name: (weighted sum, weight)} into running totals of the same form."""
    for k, (s, n) in stats.items():
        ps, pn = totals.get(k, (0.0, 0.0))
        totals[k] = (ps + s, pn + n)


def _means(totals: dict) -> dict:
    return {k: s / max(n, 1e-12) for k, (s, n) in totals.items()}


def _set_default_dtype(layer, dtype):
    if layer.dtype is None:
        layer.dtype = dtype
    for sub in layer.sublayers():
        _set_default_dtype(sub, dtype)


def _require_samples(name, x):
    """Losses and metrics are means over samples: an empty set has none to average."""
    if len(x) == 0:
        raise ValueError(f"{name}: expected at least one sample, got an empty array")
    return x


def _batch_size(batch_size):
    if batch_size is None:
        return 32
    if (
        isinstance(batch_size, bool)
        or not isinstance(batch_size, (int, np.integer))
        or batch_size <= 0
    ):
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    return int(batch_size)


def _num_batches(n, batch_size):
    return -(-n // batch_size)


def _check_y(x, y):
    if y is None:
        raise ValueError("y: labels are required")
    y = np.asarray(y)
    if len(y) != len(x):
        raise ValueError(f"y: expected {len(x)} samples (as many as x), got {len(y)}")
    return y


def _read_model_file(path):
    tensors, metadata = _safetensors.read(path)
    if metadata.get("format") != FILE_FORMAT:
        raise ValueError(
            f"{path}: not an rnncore model file (metadata format {metadata.get('format')!r}, "
            f"expected {FILE_FORMAT!r})"
        )
    return tensors, metadata


def load_model(path) -> Sequential:
    """A model saved by `model.save(path)`: architecture rebuilt, weights checked and loaded."""
    tensors, metadata = _read_model_file(path)
    try:
        arch = json.loads(metadata["architecture"])
        cfg = arch["config"]
        if arch.get("class_name") != "Sequential" or not isinstance(cfg.get("layers"), list):
            raise ValueError("not a Sequential")
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: invalid architecture in metadata ({e})") from None
    model = Sequential(name=cfg.get("name", "sequential"), dtype=cfg.get("dtype"))
    if cfg.get("input_shape") is not None:
        model.add(layers_mod.Input(tuple(cfg["input_shape"])))
    for spec in cfg["layers"]:
        model.add(layers_mod.deserialize(spec))
    model._assign_tensors(path, tensors)
    if "compile" in metadata:  # compiled as when saved (fresh optimizer state)
        try:
            spec = json.loads(metadata["compile"])
            model.compile(
                optimizers_mod.deserialize(spec["optimizer"]),
                losses_mod.deserialize(spec["loss"]),
                spec["metrics"],
            )
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: invalid compile settings in metadata ({e})") from None
    return model


class Progbar:
    """Keras-style progress: verbose=1 a live bar with ETA, verbose=2 one line per epoch."""

    WIDTH = 30

    def __init__(self, target, verbose, stream=None):
        self.target, self.verbose = max(target, 1), verbose
        self.stream = stream or sys.stdout
        self.start = self.last_draw = time.perf_counter()
        self.drawn = 0  # length of the line on screen, so a shorter one can blank it out

    @staticmethod
    def _values(logs):
        return "".join(f" - {k}: {v:.4f}" for k, v in logs.items())

    def update(self, current, logs):
        if self.verbose != 1:
            return
        now = time.perf_counter()
        if current < self.target and now - self.last_draw < 0.1:
            return
        self.last_draw = now
        done = int(self.WIDTH * current / self.target)
        bar = (
            "=" * max(done - 1, 0) + (">" if done < self.WIDTH else "=") + "." * (self.WIDTH - done)
        )
        eta = (now - self.start) / current * (self.target - current)
        self._draw(f"{current}/{self.target} [{bar}] - ETA: {eta:.0f}s{self._values(logs)}")

    def finish(self, logs):
        if not self.verbose:
            return
        elapsed = time.perf_counter() - self.start
        per_step = elapsed / self.target * 1000
        bar = f" [{'=' * self.WIDTH}]" if self.verbose == 1 else ""
        line = f"{self.target}/{self.target}{bar} - {elapsed:.0f}s {per_step:.0f}ms/step"
        self._draw(line + self._values(logs), end="\n")

    def _draw(self, line, end=""):
        self.stream.write("\r" + line.ljust(self.drawn) + end)
        self.stream.flush()
        self.drawn = 0 if end else len(line)
