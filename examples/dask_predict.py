"""Scoring a large array with a saved model on a Dask cluster.

    python examples/dask_predict.py                      # a local cluster of 2 processes
    python examples/dask_predict.py --scheduler tcp://host:8786   # an existing cluster

The input is a dask array chunked along the samples; each worker loads the model file once
and scores the chunks it is given. Needs `pip install "rnncore[dask]"`.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import dask.array as da
import numpy as np
from distributed import Client, LocalCluster

import rnncore
from rnncore import distribution, layers


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scheduler", help="address of a running Dask scheduler")
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--quick", action="store_true", help="2,000 samples")
    args = parser.parse_args(argv)
    samples = 2_000 if args.quick else args.samples

    rnncore.utils.set_random_seed(0)
    model = rnncore.Sequential([rnncore.Input((50, 1)), layers.GRU(32), layers.Dense(1)])
    path = os.path.join(tempfile.gettempdir(), "dask_predict.rnncore")
    model.save(path)  # workers read it: on a cluster, put it on a shared file system

    x = da.random.default_rng(0).standard_normal((samples, 50, 1), chunks=(samples // 8, 50, 1))
    x = x.astype(np.float32)
    if args.scheduler:
        client = Client(args.scheduler)
    else:
        client = Client(LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None))
    with client:
        y = distribution.predict_dask(path, x, batch_size=256).compute()
        check = model.predict(x[:1000].compute(), batch_size=256)
        gap = np.abs(y[:1000] - check).max()  # batches differ in size: float32 rounding only
        print(f"scored {len(y)} sequences in {x.numblocks[0]} chunks on "
              f"{len(client.scheduler_info()['workers'])} workers; "
              f"first 1000 vs model.predict: max difference {gap:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
