"""Data-parallel training speed: LSTM at the medium shape, one process against MPI ranks.

    python benchmarks/mpi_scaling.py [--epochs 3]

Runs, one after the other on this machine: one process without MPI (all cores), 1 rank
under mpiexec (all cores), and as many ranks as cores with 1 thread each. Each trains
Input(100, 128) -> LSTM(256) -> Dense(1) with Adam on global batches of 64 (the bench's
medium shape) and reports samples/s, the time and bytes of the Allreduces per step, and
their share of the step. Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

BATCH, STEPS, FEATURES, HIDDEN = 64, 100, 128, 256
BATCHES_PER_EPOCH = 8


def train(epochs: int, use_mpi: bool) -> dict:
    """One run (this process is one rank when use_mpi); rank 0's figures as a dict."""
    import rnncore
    from rnncore import distribution, layers

    dist = None
    if use_mpi:
        dist = distribution.DataParallel()
        distribution.set_distribution(dist)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH * BATCHES_PER_EPOCH, STEPS, FEATURES)).astype(np.float32)
    y = rng.standard_normal((len(x), 1)).astype(np.float32)
    rnncore.utils.set_random_seed(0)
    model = rnncore.Sequential(
        [rnncore.Input((STEPS, FEATURES)), layers.LSTM(HIDDEN), layers.Dense(1)]
    )
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # warm-up
    seconds_before = dist.allreduce_seconds if dist else 0.0
    bytes_before = dist.allreduce_bytes if dist else 0
    start = time.perf_counter()
    model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0)
    elapsed = time.perf_counter() - start
    steps = epochs * BATCHES_PER_EPOCH
    reduce_s = (dist.allreduce_seconds - seconds_before) if dist else 0.0
    return {
        "ranks": dist.size if dist else 1,
        "threads": rnncore.get_num_threads(),
        "mpi": use_mpi,
        "samples_per_s": len(x) * epochs / elapsed,
        "step_ms": 1000 * elapsed / steps,
        "allreduce_ms": 1000 * reduce_s / steps,
        "allreduce_bytes": ((dist.allreduce_bytes - bytes_before) // steps) if dist else 0,
        "rank": dist.rank if dist else 0,
    }


def run(cmd: list[str], env: dict) -> dict:
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--worker", choices=["plain", "mpi"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = train(args.epochs, args.worker == "mpi")
        if result["rank"] == 0:
            print(json.dumps(result))
        return

    mpiexec = shutil.which("mpiexec") or os.path.join(os.path.dirname(sys.executable), "mpiexec")
    cores = os.cpu_count() or 1
    me = [sys.executable, os.path.abspath(__file__), "--epochs", str(args.epochs)]
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    rows = [
        run([*me, "--worker", "plain"], env),
        run([mpiexec, "-n", "1", *me, "--worker", "mpi"], env),
        run([mpiexec, "-n", str(cores), *me, "--worker", "mpi"], env),
    ]
    print(f"LSTM training, (B={BATCH} global, T={STEPS}, I={FEATURES}, H={HIDDEN}), Adam, "
          f"{args.epochs} epochs of {BATCHES_PER_EPOCH} steps")  # fmt: skip
    print(f"{'run':<22}{'samples/s':>10}{'step ms':>9}{'Allreduce ms':>14}{'share':>7}"
          f"{'bytes/step':>12}")  # fmt: skip
    for r in rows:
        name = f"{r['ranks']} rank x {r['threads']} thr" + ("" if r["mpi"] else " (no MPI)")
        share = r["allreduce_ms"] / r["step_ms"]
        print(f"{name:<22}{r['samples_per_s']:>10.0f}{r['step_ms']:>9.1f}"
              f"{r['allreduce_ms']:>14.2f}{share:>7.1%}{r['allreduce_bytes']:>12d}")  # fmt: skip


if __name__ == "__main__":
    main()
