"""The training loop shared by models: compile, fit, evaluate, predict, and the progress bar.

A model using it provides `_prepare_x(x)`, `_forward(x, training) -> (y, mask, ctxs)`,
`_backward(ctxs, dy, grads)`, `_leaf_params()`, `_regularization(ctxs, grads)` (penalties
added to the loss) and `_apply_constraints()`; `TrainingLoop` turns those into Keras's
`compile` / `fit` / `evaluate` / `predict`: batches, the loss and its gradient, the optimizer step,
metrics, validation, callbacks and the progress bar.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from . import callbacks as callbacks_mod
from . import distribution as distribution_mod
from . import losses as losses_mod
from . import metrics as metrics_mod
from . import optimizers as optimizers_mod
from ._batches import ArrayBatches, StreamBatches, is_stream, sample_weights
from .callbacks import History
from .utils import new_generator

# Loss reductions whose per-rank gradients combine into the global batch's exactly.
_SHARDABLE = ("sum_over_batch_size", "mean")

__all__ = ["Progbar", "TrainingLoop"]


class TrainingLoop:
    """Keras's compile / fit / evaluate over a model's forward and backward passes."""

    optimizer = None
    loss = None
    metric_names: list = []
    _metrics: list = []
    stop_training = False
    history = None
    _rng = None
    _synced_with = None  # the DataParallel whose rank 0 this model's weights came from
    _resume_epoch = None  # the epoch a restored backup resumes at (BackupAndRestore)
    _fit_completed = False  # the last fit ended without an exception

    def predict(self, x, batch_size=32, verbose=0, steps=None):
        """The model's outputs for x, computed `batch_size` samples at a time.

        Args:
            x: Inputs, samples first, e.g. (samples, steps, features); or a generator,
                iterator or `utils.PyDataset` yielding input batches (or tuples whose first
                item is the inputs).
            batch_size: Samples per forward pass (arrays only).
            verbose: 1 shows a progress bar.
            steps: Batches to draw from a generator (default: until it ends, or a
                PyDataset's length).

        Returns:
            The outputs, samples first (dropout inactive).

        Example:
            >>> y_hat = model.predict(x_test)
        """
        verbose = verbose if distribution_mod.is_writer() else 0
        if is_stream(x):
            source = StreamBatches(x, steps, "predict", lambda xb, *_: self._prepare_x(xb),
                                   inputs_only=True)  # fmt: skip
            batches = list(source.epoch())
            if not batches:
                raise ValueError("predict: the input yielded no batches")
            return _concat([self._forward(xb, False)[0] for xb in batches])
        x = self._prepare_x(x)
        batch_size = _batch_size(batch_size)
        outs = []
        bar = Progbar(_num_batches(len(x), batch_size), verbose)
        for i, start in enumerate(range(0, len(x), batch_size)):
            outs.append(self._forward(x[start : start + batch_size], False)[0])
            bar.update(i + 1, {})
        bar.finish({})  # the progress line ends with a newline, as Keras's does
        if not outs:
            return self._forward(x, False)[0]
        return _concat(outs)

    # ---- weights and state ----

    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Sets the optimizer, the loss and the metrics fit and evaluate use.

        Args:
            optimizer: An Optimizer, or a name ("adam", "sgd", "rmsprop", "adagrad").
            loss: A Loss, or a name ("mse", "mae", "huber", "binary_crossentropy",
                "categorical_crossentropy", "sparse_categorical_crossentropy").
            metrics: Metrics to report: names ("accuracy" or "acc", "mae", "mse",
                "binary_accuracy", ...) or functions (y_true, y_pred) -> a value per sample,
                reported under the name given (a function's own name). Saved model files
                keep the named ones.

        Raises:
            ValueError: no loss, or an unknown name.

        Example:
            >>> model.compile(optimizer="adam", loss="mse", metrics=["mae"])
        """
        if loss is None:
            raise ValueError("compile: a loss is required (e.g. loss='mse')")
        self.optimizer = optimizers_mod.get(optimizer)
        self.loss = losses_mod.get(loss)
        self._metrics = list(metrics or [])  # names, functions and Metric objects, as given
        # unknown names fail now, not mid-fit; these give each metric's totals and result
        self._metric_objs = {}
        for spec in self._metrics:
            metric = metrics_mod.get(spec, self.loss, 2)
            name, n = metric.name, 0
            while name in self._metric_objs:  # a repeated name gets _1, _2, ... as in Keras
                n += 1
                name = f"{metric.name}_{n}"
            metric.name = name
            self._metric_objs[name] = metric
        self.metric_names = list(self._metric_objs)

    def _prepare_y(self, x, y):
        """The labels as an array of as many samples as x."""
        return _check_y(x, y)

    def _require_compiled(self, what):
        if self.loss is None:
            raise RuntimeError(f"{what}: call compile(optimizer, loss) first")

    def _metrics_for(self, y_pred):
        """The compiled metrics for these predictions ("accuracy" depends on the outputs)."""
        out = []
        for spec, name in zip(self._metrics, self._metric_objs):
            metric = metrics_mod.get(spec, self.loss, y_pred.shape[-1])
            metric.name = name
            out.append(metric)
        return out

    def _stat_layout(self) -> list:
        """[(name, floats in its totals)]: "loss", then each metric (for the reductions)."""
        return [("loss", 2)] + [(name, m.size) for name, m in self._metric_objs.items()]

    def _logs(self, totals: dict) -> dict:
        """{name: value} from epoch totals: the mean loss, each metric's result."""
        logs = {}
        for name, sums in totals.items():
            metric = self._metric_objs.get(name) if name != "loss" else None
            logs[name] = metric.result(sums) if metric else float(sums[0] / max(sums[1], 1e-12))
        return logs

    def _batch_stats(self, x, y, training, sample_weight=None):
        """Loss and metric sums for one batch; trains on it when `training`.

        Under a DataParallel, x and y are this rank's share of the global batch (possibly
        none of it): the gradients and sums are reduced over the ranks before the update."""
        dist = distribution_mod.distribution()
        if dist is not None and getattr(self.loss, "reduction", "mean") not in _SHARDABLE:
            # each rank's gradient is weighted by its share of the values, which is the
            # global gradient only when the loss is a mean over them
            raise ValueError(f"loss: reduction={self.loss.reduction!r} is not supported under "
                             f"a DataParallel; use one of {_SHARDABLE}")  # fmt: skip
        stats, grads = ({}, {})
        if len(x):
            stats, grads = self._local_stats(x, y, training, sample_weight)
        if dist is not None:
            params = self._leaf_params() if training else {}
            stats, grads = dist.reduce_step(params, grads, stats, self._stat_layout())
        if training:
            self.optimizer.apply(self._leaf_params(), grads)
            self._apply_constraints()
        return stats

    def _local_stats(self, x, y, training, sample_weight=None):
        """({name: (weighted sum, weight)}, gradients of the mean loss) for one batch.

        As Keras: the loss is sum(loss · sample_weight) over the real (unmasked) values,
        divided by their count; metrics are not weighted by sample_weight."""
        y_pred, mask, ctxs = self._forward(x, training)
        masked = mask.astype(y_pred.dtype) if (mask is not None and y_pred.ndim == 3) else None
        count = float(masked.sum()) if masked is not None else float(np.prod(y_pred.shape[:-1]))
        weights = masked
        if sample_weight is not None:
            sw = _per_value(sample_weight, y_pred).astype(y_pred.dtype, copy=False)
            weights = sw if masked is None else sw * masked
        loss, dpred = self.loss.value_and_grad(y, y_pred, weights, count)
        grads: dict = {}
        if training:
            self._backward(ctxs, dpred, grads)
        loss += self._regularization(ctxs, grads if training else None)
        stats = {"loss": np.array([loss * count, count])}
        for m in self._metrics_for(y_pred):
            stats[m.name] = m.sums(y, y_pred, masked)
        return stats, grads

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
        class_weight=None,
        sample_weight=None,
        steps_per_epoch=None,
        validation_steps=None,
        validation_freq=1,
    ):
        """Trains the model on (x, y) for `epochs` passes, as Keras's fit.

        Args:
            x: Inputs, samples first; or a generator, iterator or `utils.PyDataset` yielding
                batches (x, y) or (x, y, sample_weight) (then y and sample_weight are not
                given here).
            y: Targets, one per sample.
            batch_size: Samples per gradient step.
            epochs: The epoch to stop before (training runs initial_epoch .. epochs-1).
            verbose: 0 silent, 1 a progress bar, 2 one line per epoch.
            validation_split: The fraction of the samples, taken from the end, held out for
                validation (ignored when validation_data is given).
            validation_data: (x_val, y_val) or (x_val, y_val, sample_weight), or a generator
                or PyDataset of such batches, scored after every epoch (see
                validation_freq).
            shuffle: Shuffle the samples every epoch (from the seeded generator).
            callbacks: Callback instances (EarlyStopping, ModelCheckpoint, ...).
            initial_epoch: The epoch to start from (to resume training).
            class_weight: {class id: weight}: each sample's loss weighted by its class's
                (the id is y's, or the argmax of a one-hot y).
            sample_weight: A weight per sample, (samples,), or per step, (samples, steps).
            steps_per_epoch: Batches per epoch (a generator without it runs until it ends;
                with arrays it may cut the epoch short).
            validation_steps: Batches drawn from a validation generator per validation.
            validation_freq: Validate every this many epochs (an int), or after the epochs
                listed (1-based), as Keras.

        Returns:
            A History: `history.history` maps "loss", the metrics and their "val_" twins to
            per-epoch lists.

        Raises:
            RuntimeError: the model is not compiled.
            ValueError: empty or mismatched x and y, or a bad argument (named).

        Example:
            >>> history = model.fit(x, y, epochs=10, batch_size=32, validation_split=0.2)
        """
        options = dict(x=x, y=y, batch_size=batch_size, epochs=epochs, verbose=verbose,
                       validation_split=validation_split, validation_data=validation_data,
                       shuffle=shuffle, callbacks=callbacks, initial_epoch=initial_epoch,
                       class_weight=class_weight, sample_weight=sample_weight,
                       steps_per_epoch=steps_per_epoch, validation_steps=validation_steps,
                       validation_freq=validation_freq)  # fmt: skip
        return _on_every_rank(self._fit, options)

    def _fit(self, o):
        self._require_compiled("fit")
        epochs, verbose, validation_freq = o["epochs"], o["verbose"], o["validation_freq"]
        if not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs: expected a non-negative int, got {epochs!r}")
        _check_freq(validation_freq)
        train, validation = self._fit_sources(o)
        if self._rng is None:
            self._rng = new_generator()
        dist = distribution_mod.distribution()
        if dist is not None:
            self._sync_replicas(dist)
            verbose = verbose if dist.is_writer else 0
        history = self.history = History()
        cbs = list(o["callbacks"] or []) + [history]
        for cb in cbs:
            if not isinstance(cb, callbacks_mod.Callback):
                raise TypeError(f"callbacks: expected Callback instances, got {type(cb).__name__}")
            cb.set_model(self)
        self.stop_training = False
        self._fit_completed = False
        self._resume_epoch = None  # set by BackupAndRestore when it restores a backup
        for cb in cbs:
            cb.on_train_begin()
        start = o["initial_epoch"] if self._resume_epoch is None else self._resume_epoch
        try:
            for epoch in range(start, epochs):
                for cb in cbs:
                    cb.on_epoch_begin(epoch)
                logs = self._train_epoch(train, cbs, epoch, epochs, verbose)
                if validation is not None and _validates(epoch, validation_freq):
                    val = self._evaluate_logs(validation)
                    logs.update({"val_" + k: v for k, v in val.items()})
                if verbose:
                    self._bar.finish(logs)
                for cb in cbs:
                    cb.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
            self._fit_completed = True  # ran to its end (or stopped by a callback)
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

    def _sync_replicas(self, dist):
        """Every rank starts from rank 0's weights and shuffling generator."""
        weights = [np.ascontiguousarray(w) for w in self.get_weights()]
        dist.broadcast(weights)
        self.set_weights(weights)
        self._rng.bit_generator.state = dist.broadcast_object(self._rng.bit_generator.state)
        self._synced_with = dist

    def _fit_sources(self, o):
        """(training batches, validation batches or None) from fit's arguments."""
        dist = distribution_mod.distribution()
        x, y, validation_data = o["x"], o["y"], o["validation_data"]
        batch_size = _batch_size(o["batch_size"])
        if is_stream(x):
            _no_stream_under(dist, "fit")
            if y is not None or o["sample_weight"] is not None or o["validation_split"]:
                raise ValueError("y, sample_weight, validation_split: a generator or PyDataset "
                                 "yields the targets and weights itself; pass x alone")  # fmt: skip
            train = StreamBatches(x, o["steps_per_epoch"], "fit", self._batch_preparer(
                o["class_weight"]))  # fmt: skip
        else:
            x = self._prepare_x(x)
            y = self._prepare_y(x, y)
            _require_samples("x", x)
            sw = sample_weights(y, o["sample_weight"], o["class_weight"], len(x))
            split = o["validation_split"]
            if not 0 <= split < 1:
                raise ValueError(f"validation_split: expected a float in [0, 1), got {split!r}")
            if validation_data is None and split > 0:
                at = int(np.ceil(len(x) * (1 - split)))
                validation_data = (x[at:], y[at:], None if sw is None else sw[at:])
                x, y, sw = x[:at], y[:at], None if sw is None else sw[:at]
            train = ArrayBatches(x, y, sw, batch_size, o["shuffle"], dist, o["steps_per_epoch"])
        validation = None
        if validation_data is not None:
            validation = self._eval_source(validation_data, batch_size, o["validation_steps"],
                                           "validation_data")  # fmt: skip
        return train, validation

    def _batch_preparer(self, class_weight):
        """The checks and weights every yielded batch goes through."""

        def prepare(x, y, sw):
            x = _require_samples("x", self._prepare_x(x))
            y = self._prepare_y(x, y)
            return x, y, sample_weights(y, sw, class_weight, len(x))

        return prepare

    def _eval_source(self, data, batch_size, steps, what):
        """Batches to score: arrays (x, y[, sample_weight]) or a stream of batches."""
        dist = distribution_mod.distribution()
        if is_stream(data):
            _no_stream_under(dist, what)
            return StreamBatches(data, steps, what, self._batch_preparer(None))
        if not isinstance(data, (tuple, list)) or len(data) not in (2, 3):
            raise ValueError(f"{what}: expected a tuple (x, y) or (x, y, sample_weight)")
        vx = _require_samples(what, self._prepare_x(data[0]))
        vy = self._prepare_y(vx, data[1])
        sw = sample_weights(vy, data[2] if len(data) == 3 else None, None, len(vx))
        return ArrayBatches(vx, vy, sw, batch_size, False, dist, steps)

    def _train_epoch(self, train, cbs, epoch, epochs, verbose):
        if verbose:
            print(f"Epoch {epoch + 1}/{epochs}")
        self._bar = Progbar(len(train), verbose)
        totals: dict = {}
        for b, (xb, yb, swb) in enumerate(train.epoch(self._rng)):
            stats = self._batch_stats(xb, yb, True, swb)
            _accumulate(totals, stats)
            self._bar.update(b + 1, self._logs(totals))
            for cb in cbs:
                cb.on_train_batch_end(b, {"loss": self._logs(stats)["loss"]})
            if self.stop_training:
                break
        if not totals:  # a generator that had nothing left: Keras stops training too
            self.stop_training = True
        return self._logs(totals)

    def _evaluate_logs(self, source):
        dist = distribution_mod.distribution()
        totals: dict = {}
        for xb, yb, swb in source.epoch(None):
            if len(xb):
                _accumulate(totals, self._local_stats(xb, yb, False, swb)[0])
        if dist is not None:
            totals = dist.reduce_totals(totals, self._stat_layout())
        return self._logs(totals)

    def evaluate(self, x, y=None, batch_size=32, verbose=0, sample_weight=None, steps=None,
                 return_dict=False):  # fmt: skip
        """The loss on (x, y) (a float), or [loss, *metrics] when compiled with metrics.

        Args:
            x: Inputs, samples first; or a generator, iterator or `utils.PyDataset` of
                batches (x, y) or (x, y, sample_weight).
            y: Targets, one per sample.
            batch_size: Samples per forward pass.
            verbose: 1 or 2 prints the results.
            sample_weight: A weight per sample (or per step) for the loss.
            steps: Batches to score (a generator's, or the first of the arrays').
            return_dict: Return {"loss": ..., metric: ...} instead.

        Raises:
            RuntimeError: the model is not compiled.

        Example:
            >>> test_loss = model.evaluate(x_test, y_test)
        """
        data = x if is_stream(x) else (x, y, sample_weight)
        return _on_every_rank(self._evaluate, data, batch_size, steps, verbose, return_dict)

    def _evaluate(self, data, batch_size, steps, verbose, return_dict):
        self._require_compiled("evaluate")
        source = self._eval_source(data, _batch_size(batch_size), steps, "x")
        logs = self._evaluate_logs(source)
        if not logs:
            raise ValueError("evaluate: the input yielded no batches")
        if verbose and distribution_mod.is_writer():
            Progbar(len(source), verbose).finish(logs)
        return _returned(logs, return_dict)

    # ---- one batch at a time (Keras's *_on_batch) ----
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict=False):  # fmt: skip
        """One gradient step on the batch (x, y); returns its loss (and metrics), as Keras.

        Args:
            x: One batch of inputs, samples first.
            y: Its targets.
            sample_weight: A weight per sample (or per step) for the loss.
            class_weight: {class id: weight} for the samples' losses.
            return_dict: Return {"loss": ..., metric: ...} instead of a float or a list.

        Raises:
            RuntimeError: the model is not compiled.

        Example:
            >>> loss = model.train_on_batch(x_batch, y_batch)
        """
        weights = (sample_weight, class_weight)
        return _on_every_rank(self._one_batch, "train_on_batch", x, y, weights, True, return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """The loss (and metrics) of the batch (x, y), without training on it.

        Args:
            x: One batch of inputs, samples first.
            y: Its targets.
            sample_weight: A weight per sample (or per step) for the loss.
            return_dict: Return {"loss": ..., metric: ...} instead of a float or a list.

        Raises:
            RuntimeError: the model is not compiled.
        """
        weights = (sample_weight, None)
        return _on_every_rank(self._one_batch, "test_on_batch", x, y, weights, False, return_dict)

    def _one_batch(self, what, x, y, weights, training, return_dict):
        self._require_compiled(what)
        x = _require_samples("x", self._prepare_x(x))
        y = self._prepare_y(x, y)
        sw = sample_weights(y, *weights, len(x))
        dist = distribution_mod.distribution()
        if dist is not None and training and self._synced_with is not dist:
            if self._rng is None:
                self._rng = new_generator()
            self._sync_replicas(dist)
        if dist is not None and dist.auto_shard:  # this rank's share of the global batch
            share = dist.share(len(x))
            x, y, sw = x[share], y[share], None if sw is None else sw[share]
        logs = self._logs(self._batch_stats(x, y, training, sw))
        return _returned(logs, return_dict)

    def predict_on_batch(self, x):
        """The model's outputs for one batch x (no batching, no progress bar)."""
        return self._forward(self._prepare_x(x), False)[0]

    @property
    def metrics_names(self) -> list:
        """The names `evaluate` returns values for: "loss", then the compiled metrics."""
        return ["loss", *self.metric_names]


def _concat(outs):
    """Batches' outputs joined along samples (each output of a several-output model)."""
    if isinstance(outs[0], list):
        return [np.concatenate(parts, axis=0) for parts in zip(*outs)]
    return np.concatenate(outs, axis=0)


def _per_value(sample_weight, y_pred):
    """Sample weights (samples,) or (samples, steps) broadcast to y_pred.shape[:-1]."""
    sw = np.asarray(sample_weight)
    target = y_pred.shape[:-1]
    if sw.ndim < len(target):
        sw = sw.reshape(sw.shape + (1,) * (len(target) - sw.ndim))
    try:
        return np.broadcast_to(sw, target)
    except ValueError:
        raise ValueError(f"sample_weight: shape {sw.shape} does not fit outputs of shape "
                         f"{tuple(y_pred.shape)}") from None  # fmt: skip


def _check_freq(freq):
    ok = isinstance(freq, (int, np.integer)) and not isinstance(freq, bool) and freq >= 1
    ok = ok or (isinstance(freq, (list, tuple, set)) and all(isinstance(e, int) for e in freq))
    if not ok:
        raise ValueError(f"validation_freq: expected a positive int or a list of epochs, got "
                         f"{freq!r}")  # fmt: skip


def _validates(epoch, freq) -> bool:
    """Whether validation runs after `epoch` (0-based), as Keras reads validation_freq."""
    if isinstance(freq, (int, np.integer)):
        return (epoch + 1) % int(freq) == 0
    return epoch + 1 in freq


def _no_stream_under(dist, what):
    if dist is not None:
        raise NotImplementedError(
            f"{what}: under a DataParallel, pass arrays (with auto_shard=False each rank passes "
            "its own); generators and PyDatasets are not divided among the ranks"
        )


def _on_every_rank(run, *args):
    """run(*args); under a DataParallel, an exception on this rank aborts every rank (a
    rank left waiting in a collective would hang the job)."""
    dist = distribution_mod.distribution()
    if dist is None:
        return run(*args)
    try:
        return run(*args)
    except BaseException as error:
        dist.abort(error)
        raise  # not reached: Abort ends the process


def _returned(logs: dict, return_dict: bool):
    """Keras's return forms: the dict, or the loss alone, or [loss, *metrics]."""
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def _accumulate(totals: dict, stats: dict) -> None:
    """Adds a batch's {name: totals array} into running totals of the same form."""
    for k, sums in stats.items():
        totals[k] = totals[k] + sums if k in totals else np.array(sums, np.float64)


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


class Progbar:
    """Keras-style progress: verbose=1 a live bar with ETA, verbose=2 one line per epoch.
    A target of 0 means unknown (a generator without steps): steps are counted instead."""

    WIDTH = 30

    def __init__(self, target, verbose, stream=None):
        self.unknown = target == 0
        self.target, self.verbose = max(target, 1), verbose
        self.seen = 0
        self.stream = stream or sys.stdout
        self.start = self.last_draw = time.perf_counter()
        self.drawn = 0  # length of the line on screen, so a shorter one can blank it out

    @staticmethod
    def _values(logs):
        return "".join(f" - {k}: {v:.4f}" for k, v in logs.items())

    def update(self, current, logs):
        """Redraws the bar at step `current` (verbose=1, at most every 0.1 s)."""
        self.seen = current
        if self.verbose != 1:
            return
        now = time.perf_counter()
        if (self.unknown or current < self.target) and now - self.last_draw < 0.1:
            return
        self.last_draw = now
        if self.unknown:
            self._draw(f"{current}/Unknown - {now - self.start:.0f}s{self._values(logs)}")
            return
        done = int(self.WIDTH * current / self.target)
        bar = (
            "=" * max(done - 1, 0) + (">" if done < self.WIDTH else "=") + "." * (self.WIDTH - done)
        )
        eta = (now - self.start) / current * (self.target - current)
        self._draw(f"{current}/{self.target} [{bar}] - ETA: {eta:.0f}s{self._values(logs)}")

    def finish(self, logs):
        """Prints the epoch's final line with its time per step and logs."""
        if not self.verbose:
            return
        elapsed = time.perf_counter() - self.start
        if self.unknown:
            self.target = max(self.seen, 1)
        per_step = elapsed / self.target * 1000
        bar = f" [{'=' * self.WIDTH}]" if self.verbose == 1 else ""
        line = f"{self.target}/{self.target}{bar} - {elapsed:.0f}s {per_step:.0f}ms/step"
        self._draw(line + self._values(logs), end="\n")

    def _draw(self, line, end=""):
        self.stream.write("\r" + line.ljust(self.drawn) + end)
        self.stream.flush()
        self.drawn = 0 if end else len(line)


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
