"""Training callbacks with Keras's names, arguments and behaviour."""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np

__all__ = [
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "LambdaCallback",
    "LearningRateScheduler",
    "ModelCheckpoint",
    "ReduceLROnPlateau",
    "TerminateOnNaN",
]


class Callback:
    """Base class of fit's callbacks: override the hooks you need (Keras's names).

    A callback sees the model (`self.model`, set by fit) and the epoch's logs: a dict of
    the loss, the metrics and, with validation, their `val_` twins.
    """

    model = None

    def set_model(self, model):
        """Called by fit before training: the model this callback serves."""
        self.model = model

    def on_train_begin(self, logs=None):
        """Called once when fit starts."""

    def on_train_end(self, logs=None):
        """Called once when fit ends (also after an interrupt or a stop)."""

    def on_epoch_begin(self, epoch, logs=None):
        """Called at the start of every epoch (0-based)."""

    def on_epoch_end(self, epoch, logs=None):
        """Called after every epoch with its logs (loss, metrics, val_*)."""

    def on_train_batch_end(self, batch, logs=None):
        """Called after every training batch with {"loss": the batch's loss}."""


class _Monitor(Callback):
    """Tracks the best value of a logged quantity (min for losses/errors, max otherwise)."""

    def __init__(self, monitor, mode, min_delta):
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"mode: expected 'auto', 'min' or 'max', got {mode!r}")
        self.monitor = monitor
        if mode == "auto":
            mode = "max" if ("acc" in monitor or monitor.endswith("auc")) else "min"
        self.mode = mode
        self.min_delta = abs(float(min_delta))
        self.best = math.inf if mode == "min" else -math.inf

    def improved(self, value) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def current(self, logs):
        value = (logs or {}).get(self.monitor)
        if value is None:
            warnings.warn(
                f"{type(self).__name__}: '{self.monitor}' is not in the logs "
                f"(available: {sorted(logs or {})}); skipping",
                stacklevel=3,
            )
        return value


class EarlyStopping(_Monitor):
    """Stops fit when `monitor` has not improved by `min_delta` for `patience` epochs.

    Args:
        monitor: The logged value to watch ("val_loss" by default).
        min_delta: The smallest change that counts as an improvement.
        patience: Epochs without improvement before stopping.
        verbose: 1 prints a line when training stops.
        mode: "min", "max" or "auto" (max for accuracy-like names).
        restore_best_weights: Put back the weights of the best epoch when stopping.
        baseline: A value the monitor must beat, or None.
        start_from_epoch: Epochs to wait before watching.

    Example:
        >>> model.fit(x, y, validation_split=0.2, callbacks=[EarlyStopping(patience=3)])
    """

    def __init__(
        self,
        monitor="val_loss",
        min_delta=0,
        patience=0,
        verbose=0,
        mode="auto",
        baseline=None,
        restore_best_weights=False,
        start_from_epoch=0,
    ):
        super().__init__(monitor, mode, min_delta)
        self.patience, self.verbose, self.baseline = int(patience), verbose, baseline
        self.restore_best_weights, self.start_from_epoch = restore_best_weights, start_from_epoch

    def on_train_begin(self, logs=None):
        """Resets the wait counter and the best value."""
        self.wait, self.stopped_epoch, self.best_weights, self.best_epoch = 0, 0, None, 0
        self.best = math.inf if self.mode == "min" else -math.inf
        if self.baseline is not None:
            self.best = float(self.baseline)

    def on_epoch_end(self, epoch, logs=None):
        """Tracks the best value; stops training after `patience` epochs without one."""
        value = self.current(logs)
        if value is None or epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = self.model.get_weights()
        self.wait += 1
        if self.improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.get_weights()
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        """Restores the best weights when asked to and training stopped early."""
        if self.stopped_epoch and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(
                    f"Restoring model weights from the end of the best epoch: "
                    f"{self.best_epoch + 1}."
                )
            self.model.set_weights(self.best_weights)


class ModelCheckpoint(_Monitor):
    """Saves the model (atomically) after each epoch, or only when `monitor` improves."""

    def __init__(
        self,
        filepath,
        monitor="val_loss",
        verbose=0,
        save_best_only=False,
        save_weights_only=False,
        mode="auto",
    ):
        super().__init__(monitor, mode, 0)
        self.filepath, self.verbose = str(filepath), verbose
        self.save_best_only, self.save_weights_only = save_best_only, save_weights_only

    def on_epoch_end(self, epoch, logs=None):
        """Saves the model (or only its best epoch's) to the formatted path."""
        logs = logs or {}
        path = self.filepath.format(epoch=epoch + 1, **logs)
        if self.save_best_only:
            value = self.current(logs)
            if value is None or not self.improved(value):
                return
            if self.verbose:
                print(f"\nEpoch {epoch + 1}: {self.monitor} improved from {self.best:.5f} to "
                      f"{value:.5f}, saving model to {path}")  # fmt: skip
            self.best = value
        if self.save_weights_only:
            self.model.save_weights(path)
        else:
            self.model.save(path)


class ReduceLROnPlateau(_Monitor):
    """Multiplies the learning rate by `factor` when `monitor` stalls for `patience` epochs.

    Args:
        monitor: The logged value to watch.
        factor: The multiplier, in (0, 1).
        patience: Epochs without improvement before a reduction.
        verbose: 1 prints a line at every reduction.
        mode: "min", "max" or "auto".
        min_delta: The smallest change that counts as an improvement.
        cooldown: Epochs to wait after a reduction.
        min_lr: The learning rate never goes below it.
    """

    def __init__(
        self,
        monitor="val_loss",
        factor=0.1,
        patience=10,
        verbose=0,
        mode="auto",
        min_delta=1e-4,
        cooldown=0,
        min_lr=0.0,
    ):
        if not 0 < factor < 1:
            raise ValueError(f"factor: expected a number in (0, 1), got {factor!r}")
        super().__init__(monitor, mode, min_delta)
        self.factor, self.patience, self.verbose = float(factor), int(patience), verbose
        self.cooldown, self.min_lr = int(cooldown), float(min_lr)

    def on_train_begin(self, logs=None):
        """Resets the counters."""
        self.wait = self.cooldown_counter = 0
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch, logs=None):
        """Reduces the learning rate after `patience` epochs without improvement."""
        value = self.current(logs)
        if value is None:
            return
        if logs is not None:
            logs["learning_rate"] = self.model.optimizer.learning_rate
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.improved(value):
            self.best, self.wait = value, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience:
                opt = self.model.optimizer
                new_lr = max(opt.learning_rate * self.factor, self.min_lr)
                if new_lr < opt.learning_rate:
                    if self.verbose:
                        print(
                            f"\nEpoch {epoch + 1}: ReduceLROnPlateau reducing learning rate "
                            f"to {new_lr}."
                        )
                    opt.learning_rate = new_lr
                self.cooldown_counter, self.wait = self.cooldown, 0


class LearningRateScheduler(Callback):
    """Sets the learning rate at each epoch start to schedule(epoch, current_lr)."""

    def __init__(self, schedule, verbose=0):
        if not callable(schedule):
            raise TypeError("schedule: expected a callable (epoch, lr) -> lr")
        self.schedule, self.verbose = schedule, verbose

    def on_epoch_begin(self, epoch, logs=None):
        """Sets the optimizer's learning rate to schedule(epoch, lr)."""
        lr = self.schedule(epoch, self.model.optimizer.learning_rate)
        if not isinstance(lr, (int, float, np.floating)) or not np.isfinite(lr) or lr < 0:
            raise ValueError(
                f"LearningRateScheduler: schedule returned {lr!r}, expected a float >= 0"
            )
        self.model.optimizer.learning_rate = float(lr)
        if self.verbose:
            print(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")


class TerminateOnNaN(Callback):
    """Stops training as soon as a batch's loss is NaN or infinite."""

    def on_train_batch_end(self, batch, logs=None):
        """Stops training when a batch's loss is NaN or infinite."""
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            print(f"Batch {batch}: Invalid loss, terminating training", file=sys.stdout)
            self.model.stop_training = True


class CSVLogger(Callback):
    """Writes each epoch's logs as a CSV row, as Keras's: an `epoch` column, then the logged
    values in sorted order.

    Args:
        filename: The CSV file.
        separator: The field separator.
        append: Add to an existing file (no second header) instead of starting it afresh.

    Example:
        >>> model.fit(x, y, epochs=5, callbacks=[CSVLogger("training.csv")])
    """

    def __init__(self, filename, separator=",", append=False):
        self.filename, self.separator, self.append = str(filename), separator, bool(append)
        self._file = None
        self._keys: list[str] | None = None

    def on_train_begin(self, logs=None):
        """Opens the file (appending, or afresh); under a DataParallel, on rank 0 only."""
        import os

        from .distribution import is_writer

        if not is_writer():
            return

        has_rows = self.append and os.path.exists(self.filename)
        has_rows = has_rows and os.path.getsize(self.filename) > 0
        self._file = open(self.filename, "a" if self.append else "w", newline="")
        self._keys = None if not has_rows else []  # [] marks "header already written"

    def on_epoch_end(self, epoch, logs=None):
        """Writes the epoch's row (and the header before the first one)."""
        import csv

        logs = logs or {}
        if self._file is None:  # not the writing rank
            return
        writer = csv.writer(self._file, delimiter=self.separator)
        if not self._keys:
            header_needed = self._keys is None
            self._keys = sorted(logs)
            if header_needed:
                writer.writerow(["epoch", *self._keys])
        writer.writerow([epoch, *(logs.get(k, "NA") for k in self._keys)])
        self._file.flush()

    def on_train_end(self, logs=None):
        """Closes the file."""
        if self._file is not None:
            self._file.close()
            self._file = None


class LambdaCallback(Callback):
    """A callback made of plain functions, as Keras's: each argument given is called at its
    hook with that hook's arguments (`on_epoch_end(epoch, logs)`, ...).

    Example:
        >>> LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, logs["loss"]))
    """

    _HOOKS = ("on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
              "on_train_batch_end")  # fmt: skip

    def __init__(self, on_train_begin=None, on_train_end=None, on_epoch_begin=None,
                 on_epoch_end=None, on_train_batch_end=None):  # fmt: skip
        given = dict(zip(self._HOOKS, (on_train_begin, on_train_end, on_epoch_begin,
                                       on_epoch_end, on_train_batch_end)))  # fmt: skip
        for name, fn in given.items():
            if fn is None:
                continue
            if not callable(fn):
                raise TypeError(f"{name}: expected a callable, got {type(fn).__name__}")
            if name in ("on_train_begin", "on_train_end"):  # Keras passes them `logs`
                setattr(self, name, lambda logs=None, _fn=fn: _fn(logs or {}))
            else:  # (epoch or batch, logs)
                setattr(self, name, lambda i, logs=None, _fn=fn: _fn(i, logs or {}))


class History(Callback):
    """`history.history`: per-epoch lists of every logged value (loss, metrics, val_*)."""

    def __init__(self):
        self.history: dict[str, list] = {}
        self.epoch: list[int] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for k, v in (logs or {}).items():
            self.history.setdefault(k, []).append(v)


def __dir__():  # what tab completion and dir() show: the public names only
    return __all__
