"""One side of the data-parallel tests: run under `mpiexec -n 2` (or alone for the reference).

    python tests/mpi_fit.py SCENARIO OUT_DIR [--single]

Scenarios:
  auto       every rank passes the same arrays; 2 epochs, global batch 64, an uneven last
             batch, sample weights, validation data, ModelCheckpoint and CSVLogger. With
             --single: the same without a distribution (the reference).
  own-shard  auto_shard=False: each rank passes its own rows (unequal counts, so one rank
             runs out of batches first); with --single the equivalent train_on_batch steps.
  fail       rank 1 raises in a callback during epoch 1: the job must abort, not hang.

Each rank writes OUT_DIR/rank<r>.npz (weights, and history as JSON) and the number of model
files it wrote.
"""

from __future__ import annotations

import json
import pathlib
import sys

import numpy as np

import rnncore
from rnncore import callbacks, distribution, layers, saving

SAMPLES, STEPS, FEATURES = 161, 6, 3  # fit on 141 = 2 global batches of 64 + an odd 13


def make_model():
    rnncore.utils.set_random_seed(0)
    model = rnncore.Sequential(
        [rnncore.Input((STEPS, FEATURES)), layers.LSTM(5), layers.Dense(2)], dtype="float64"
    )
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return model


def make_data():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((SAMPLES, STEPS, FEATURES))
    y = np.stack([x[:, :, 0].mean(1), x[:, -1, 1]], axis=1)
    return x, y


def count_writes():
    """Counts model files written by this process (only rank 0 may write)."""
    written = []
    original = saving.save_model

    def counting(model, path):
        written.append(str(path))
        original(model, path)

    saving.save_model = counting
    return written


def auto(out: pathlib.Path, rank: int, single: bool):
    model, (x, y) = make_model(), make_data()
    written = count_writes()
    cbs = [callbacks.ModelCheckpoint(str(out / "ckpt-{epoch}.rnncore")),
           callbacks.CSVLogger(str(out / "log.csv"))]  # fmt: skip
    weights = np.linspace(0.5, 1.5, 141)  # sample weights travel with their rows
    history = model.fit(x[:141], y[:141], batch_size=64, epochs=2, verbose=1,
                        validation_data=(x[141:], y[141:]), callbacks=cbs,
                        sample_weight=weights)  # fmt: skip
    x_eval = model.evaluate(x, y, batch_size=50, return_dict=True)
    return model, {"history": history.history, "evaluate": x_eval, "written": written}


def own_shard(out: pathlib.Path, rank: int, single: bool):
    model, (x, y) = make_model(), make_data()
    shards = [slice(0, 100), slice(100, 160)]  # per-rank batch 25: 4 batches and 3
    if not single:
        history = model.fit(x[shards[rank]], y[shards[rank]], batch_size=25, epochs=1,
                            shuffle=False, verbose=0)  # fmt: skip
        return model, {"history": history.history}
    for b in range(4):  # each global step is both ranks' b-th batches together
        idx = np.concatenate([np.arange(s.start, s.stop)[b * 25 : (b + 1) * 25] for s in shards])
        model.train_on_batch(x[idx], y[idx])
    return model, {}


def fail(out: pathlib.Path, rank: int, single: bool):
    model, (x, y) = make_model(), make_data()

    def on_epoch_end(epoch, logs):
        if rank == 1 and epoch == 1:
            raise RuntimeError("deliberate failure on rank 1")

    model.fit(x, y, batch_size=64, epochs=3, verbose=0,
              callbacks=[callbacks.LambdaCallback(on_epoch_end=on_epoch_end)])  # fmt: skip
    return model, {}


def main():
    scenario, out = sys.argv[1], pathlib.Path(sys.argv[2])
    single = "--single" in sys.argv
    rank = 0
    if not single:
        dist = distribution.DataParallel(auto_shard=scenario != "own-shard")
        distribution.set_distribution(dist)
        rank = dist.rank
    model, info = {"auto": auto, "own-shard": own_shard, "fail": fail}[scenario](out, rank, single)
    weights = {f"w{i}": w for i, w in enumerate(model.get_weights())}
    np.savez(out / f"{'single' if single else f'rank{rank}'}.npz", **weights,
             info=np.array(json.dumps(info)), threads=rnncore.get_num_threads())  # fmt: skip


if __name__ == "__main__":
    main()
