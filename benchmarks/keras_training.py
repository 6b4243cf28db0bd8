"""Training overhead vs Keras: one epoch of the classic synthetic time-series task.

7000 series x 50 steps x 1 feature, SimpleRNN(20, return_sequences) -> SimpleRNN(20) ->
Dense(1), Adam, MSE, batch 32 -- timed in rnncore and in Keras 3 (TensorFlow CPU backend) in
the same process with the same thread count. Run with nothing else on the machine:

    pip install tensorflow-cpu keras
    KERAS_BACKEND=tensorflow python benchmarks/keras_training.py --threads 2 [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import rnncore
from rnncore.data import generate_time_series


def epoch_times(fit_one_epoch, epochs):
    times = []
    for _ in range(epochs + 1):  # the first epoch warms up (graph tracing, allocation)
        start = time.perf_counter()
        fit_one_epoch()
        times.append(time.perf_counter() - start)
    return times[1:]


def rnncore_model():
    from rnncore.layers import Dense, SimpleRNN

    model = rnncore.Sequential(
        [rnncore.Input((50, 1)), SimpleRNN(20, return_sequences=True), SimpleRNN(20), Dense(1)]
    )
    model.compile(optimizer="adam", loss="mse")
    return model


def keras_model(threads):
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    model = keras.Sequential(
        [
            keras.Input((50, 1)),
            keras.layers.SimpleRNN(20, return_sequences=True),
            keras.layers.SimpleRNN(20),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="mse")
    return model, keras.__version__ + " / tensorflow " + tf.__version__


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs after one warm-up")
    args = ap.parse_args(argv)
    series = generate_time_series(10000, 51)
    x, y = series[:7000, :50], series[:7000, -1]
    rnncore.set_num_threads(args.threads)
    rnncore.utils.set_random_seed(0)
    ours = rnncore_model()
    t_ours = epoch_times(lambda: ours.fit(x, y, batch_size=32, epochs=1, verbose=0), args.epochs)
    print(f"rnncore {rnncore.__version__}: epoch {statistics.median(t_ours):.3f} s "
          f"(runs {', '.join(f'{t:.3f}' for t in t_ours)})")  # fmt: skip
    try:
        theirs, version = keras_model(args.threads)
    except ImportError as e:
        print(f"Keras with the TensorFlow backend is not installed ({e}); skipped")
        return
    t_keras = epoch_times(lambda: theirs.fit(x, y, batch_size=32, epochs=1, verbose=0), args.epochs)
    print(f"keras {version}: epoch {statistics.median(t_keras):.3f} s "
          f"(runs {', '.join(f'{t:.3f}' for t in t_keras)})")  # fmt: skip
    print(f"speed-up: {statistics.median(t_keras) / statistics.median(t_ours):.2f}x "
          f"(threads={args.threads})")  # fmt: skip


if __name__ == "__main__":
    main()
