"""Data-parallel training over MPI: the same script on every rank, one line to distribute.

    mpiexec -n 2 python examples/mpi_train.py            # 2 ranks on this machine
    srun --ntasks 8 python examples/mpi_train.py         # under Slurm
    python examples/mpi_train.py                         # one process, the same model

Every rank passes the same arrays; `batch_size` is the global batch and each rank computes its
share, so the weights trained are those one process would train (to rounding). Only rank 0
prints and writes the checkpoint. Needs `pip install "rnncore[mpi]"`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import rnncore
from rnncore import callbacks, distribution, layers
from rnncore.data import time_series_splits


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch", type=int, default=64, help="global batch size")
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "mpi_train.rnncore"))
    parser.add_argument("--quick", action="store_true", help="2 epochs on 1000 series")
    args = parser.parse_args(argv)

    dist = distribution.DataParallel()  # mpi4py's COMM_WORLD; one rank without mpiexec
    distribution.set_distribution(dist)
    data = time_series_splits(n_series=1000 if args.quick else 10000, seed=42)
    epochs = 2 if args.quick else args.epochs

    rnncore.utils.set_random_seed(42)  # the same on every rank (rank 0's weights are used)
    model = rnncore.Sequential([rnncore.Input((50, 1)), layers.LSTM(20, return_sequences=True),
                                layers.LSTM(20), layers.Dense(1)])  # fmt: skip
    model.compile(optimizer="adam", loss="mse")
    start = time.perf_counter()
    history = model.fit(*data["train"], batch_size=args.batch, epochs=epochs,
                        validation_data=data["valid"], verbose=2 if dist.is_writer else 0,
                        callbacks=[callbacks.ModelCheckpoint(args.out)])  # fmt: skip
    seconds = time.perf_counter() - start
    test_mse = model.evaluate(*data["test"])  # reduced over the ranks: the same everywhere
    if dist.is_writer:
        print(f"{dist.size} rank(s) x {rnncore.get_num_threads()} thread(s): "
              f"{seconds:.1f} s, val_loss {history.history['val_loss'][-1]:.5f}, "
              f"test MSE {test_mse:.5f}, Allreduce {dist.allreduce_seconds:.2f} s, "
              f"model saved to {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
