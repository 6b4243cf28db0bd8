"""Training callbacks with Keras's names, arguments and behaviour."""

from __future__ import annotations

import math
import sys
import warnings

import numpy as np

from . import saving

__all__ = [
    "BackupAndRestore",
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
        # a wrong extension fails here, as in Keras, not after the first epoch's training
        saving.file_kind(filepath, ("rnncore", "weights.h5") if save_weights_only
                         else ("rnncore", "keras"), "ModelCheckpoint")  # fmt: skip
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


class BackupAndRestore(Callback):
    """Backs up the training state after every epoch so that a `fit` that was killed resumes
    where it stopped, with the same results as a run that never stopped (Keras's callback).

    The backup (in `backup_dir`) holds the weights (by position, as Keras's weights files),
    the optimizer's state (step count,
    moments, learning rate) and the random generators' states (shuffling, dropout). The next
    `fit` with this callback restores it and starts at the epoch after the last one backed
    up; a `fit` that completes deletes the backup (unless `delete_checkpoint=False`).
    Every file is written atomically, and the record naming the epoch is written last, so a
    kill during a backup leaves the previous one usable. The files are read with size checks
    and never unpickled.

    Args:
        backup_dir: A folder for the backup (made if missing).
        save_freq: "epoch" (the only choice here, as Keras's default).
        delete_checkpoint: Delete the backup when `fit` completes.

    Example:
        >>> model.fit(x, y, epochs=50, callbacks=[BackupAndRestore("/tmp/backup")])
    """

    _STATE, _WEIGHTS, _ARRAYS = "state.json", "weights.npz", "optimizer.npz"

    def __init__(self, backup_dir, save_freq="epoch", delete_checkpoint=True):
        if save_freq != "epoch":
            raise ValueError(f"save_freq: only 'epoch' is supported, got {save_freq!r}")
        self.backup_dir = str(backup_dir)
        self.delete_checkpoint = bool(delete_checkpoint)

    def _path(self, name):
        import os

        return os.path.join(self.backup_dir, name)

    def on_train_begin(self, logs=None):
        """Restores a backup, if there is one, and tells fit where to resume."""
        import json
        import os

        if not os.path.exists(self._path(self._STATE)):
            return
        with open(self._path(self._STATE), "rb") as f:
            raw = f.read(1 << 20)  # the record is small; a larger file is not ours
        try:
            state = json.loads(raw)
            epoch = int(state["epoch"])
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{self._path(self._STATE)}: not a backup record ({e})") from None
        _check_archive(self._path(self._WEIGHTS), self.model)
        with np.load(self._path(self._WEIGHTS), allow_pickle=False) as saved:
            self.model.set_weights([saved[f"w{i}"] for i in range(len(saved.files))])
        _restore_optimizer(self.model, state, self._path(self._ARRAYS))
        _restore_generators(self.model, state["generators"])
        self.model._resume_epoch = epoch + 1

    def on_epoch_end(self, epoch, logs=None):
        """Backs up the state reached at the end of this epoch."""
        import json
        import os

        from ._files import atomic_write
        from .distribution import is_writer

        if not is_writer():
            return
        os.makedirs(self.backup_dir, exist_ok=True)
        weights = {f"w{i}": w for i, w in enumerate(self.model.get_weights())}  # by position
        with atomic_write(self._path(self._WEIGHTS)) as f:
            np.savez(f, **weights)
        state = {"epoch": epoch, **_optimizer_record(self.model, self._path(self._ARRAYS)),
                 "generators": _generator_states(self.model)}  # fmt: skip
        with atomic_write(self._path(self._STATE)) as f:
            f.write(json.dumps(state).encode())

    def on_train_end(self, logs=None):
        """Deletes the backup after a fit that ran to its end (not after an interruption)."""
        import os

        if self.delete_checkpoint and self.model._fit_completed:
            for name in (self._STATE, self._WEIGHTS, self._ARRAYS):
                if os.path.exists(self._path(name)):
                    os.remove(self._path(name))


def _param_keys(model) -> list:
    """The model's parameter keys in a fixed order (the same for the same architecture)."""
    return list(model._leaf_params())


def _optimizer_record(model, arrays_path) -> dict:
    """The optimizer's scalar state (returned) and its slot arrays (written to arrays_path)."""
    from ._files import atomic_write

    opt = model.optimizer
    keys = _param_keys(model)
    arrays: dict = {}  # {"p<index>.<slot>": array}
    for i, key in enumerate(keys):
        for name, value in opt.slots.get(key, {}).items():
            arrays[f"p{i}.{name}"] = np.asarray(value)
    with atomic_write(arrays_path) as f:
        np.savez(f, **arrays)
    rate = None if opt._schedule is not None else float(opt.learning_rate)
    return {"iterations": int(opt.iterations), "learning_rate": rate,
            "fills": {k: float(v) for k, v in opt._fills.items()}}  # fmt: skip


def _restore_optimizer(model, state, arrays_path) -> None:
    opt = model.optimizer
    keys = _param_keys(model)
    params = model._leaf_params()
    slots: dict = {}
    _check_archive(arrays_path, model)
    with np.load(arrays_path, allow_pickle=False) as saved:
        for name in saved.files:
            index, _, slot = name.partition(".")
            i = int(index[1:]) if index[1:].isdigit() else -1
            if not 0 <= i < len(keys):
                raise ValueError(f"{arrays_path}: {name!r} names no parameter of this model")
            value = saved[name]
            if value.shape != params[keys[i]].shape:
                raise ValueError(f"{arrays_path}: {name!r} has shape {value.shape}, the "
                                 f"parameter {params[keys[i]].shape}")  # fmt: skip
            slots.setdefault(keys[i], {})[slot] = value.astype(params[keys[i]].dtype)
    # Per-parameter slots: the next update lays them out flat again, keeping their values.
    opt.slots, opt._flat_shapes = slots, None
    opt._fills = {str(k): float(v) for k, v in state["fills"].items()}
    opt.iterations = int(state["iterations"])
    if state["learning_rate"] is not None:
        opt.learning_rate = float(state["learning_rate"])


def _check_archive(path, model) -> None:
    """Refuses an archive with more entries, or larger ones, than this model's arrays could
    fill (a crafted file must not make the reader inflate gigabytes)."""
    import zipfile

    biggest = max((w.nbytes for w in model.get_weights()), default=0) + 4096  # + .npy header
    most = 8 * (len(model.get_weights()) + 1)
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except zipfile.BadZipFile as e:
        raise ValueError(f"{path}: not a backup archive ({e})") from None
    if len(entries) > most or any(e.file_size > biggest for e in entries):
        raise ValueError(f"{path}: entries larger or more numerous than this model's arrays")


def _generators(model) -> list:
    """(owner, generator) for the model's shuffling generator and each layer's own."""
    from .layers.base import walk

    out = [(model, model._rng)] if model._rng is not None else []
    made = [(layer, getattr(layer, "_rng_made", None)) for layer in walk(model.layers)]
    return out + [(layer, g) for layer, g in made if g is not None]


def _generator_states(model) -> list:
    return [g.bit_generator.state for _, g in _generators(model)]


def _restore_generators(model, states) -> None:
    from .utils import new_generator

    if model._rng is None:
        model._rng = new_generator()
    from .layers.base import walk

    for layer in walk(model.layers):  # every layer's generator made, as when backed up
        _ = getattr(layer, "_rng", None)
    owners = _generators(model)
    if len(owners) != len(states):
        raise ValueError("BackupAndRestore: the backup is of a model with other layers")
    for (_, generator), state in zip(owners, states):
        generator.bit_generator.state = state


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
