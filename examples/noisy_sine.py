"""Noisy sine: windows of 10 values -> the next one, SimpleRNN vs LSTM.

The series is sin(π·n·2.025) + U(0, 1) for n < 100 (a slow wave under heavy noise, as in the
tutorial); 80 % of the windows train (a quarter of them validate, for early stopping), the
rest test. Prints each model's test MSE beside the
MSE of always predicting the noise mean, and with --plot draws the test forecasts.

    python examples/noisy_sine.py [--quick] [--plot noisy_sine.png]
"""

from __future__ import annotations

import argparse

import numpy as np

import rnncore
from rnncore.layers import LSTM, Dense, SimpleRNN

WINDOW = 10


def make_data(seed):
    rng = np.random.default_rng(seed)
    n = np.arange(100)
    series = (np.sin(np.pi * n * 2.025) + rng.uniform(0, 1, n.size)).astype(np.float32)
    x = np.stack([series[i : i + WINDOW] for i in range(series.size - WINDOW)])[..., None]
    y = series[WINDOW:, None]
    split = int(0.8 * len(x))
    return (x[:split], y[:split]), (x[split:], y[split:]), series


def main(argv=None):
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--quick", action="store_true", help="a small, short run")
    ap.add_argument(
        "--seed", type=int, default=0, help="seed of the data, weights and shuffling (default: 0)"
    )
    ap.add_argument("--plot", metavar="PATH", help="write the test-set predictions to this PNG")
    args = ap.parse_args(argv)
    epochs = 20 if args.quick else 200
    (x_tr, y_tr), (x_te, y_te), series = make_data(args.seed)
    n_te = np.arange(series.size - len(y_te), series.size)
    baseline = float(np.mean((y_te[:, 0] - (np.sin(np.pi * n_te * 2.025) + 0.5)) ** 2))
    print(f"{len(x_tr)} training windows, {len(x_te)} test windows; MSE of the noiseless "
          f"wave + 0.5: {baseline:.4f} (the noise floor, 1/12 = 0.0833)")  # fmt: skip
    preds = {}
    for name, layer in [("SimpleRNN", SimpleRNN(8)), ("LSTM", LSTM(8))]:
        rnncore.utils.set_random_seed(args.seed)
        model = rnncore.Sequential([rnncore.Input((WINDOW, 1)), layer, Dense(1)])
        model.compile(rnncore.optimizers.Adam(0.01), "mse")
        stop = rnncore.callbacks.EarlyStopping(patience=15, restore_best_weights=True)
        model.fit(x_tr, y_tr, epochs=epochs, batch_size=16, verbose=0, validation_split=0.25,
                  callbacks=[stop])  # fmt: skip
        preds[name] = model.predict(x_te)
        print(f"{name:<10} test MSE {model.evaluate(x_te, y_te):.4f}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(9, 4))
        ax.plot(np.arange(series.size), series, ".-", color="0.6", label="series")
        t = np.arange(series.size - len(y_te), series.size)
        for (name, p), marker in zip(preds.items(), "o^sD"):
            ax.plot(t, p[:, 0], marker + "-", markersize=5, label=f"{name} forecast")
        ax.set_title("Noisy sine: one-step forecasts of the test windows")
        ax.set_xlabel("sample index")
        ax.set_ylabel("value (unitless)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)  # beside the data
        fig.tight_layout()
        fig.savefig(args.plot, dpi=100)
        print(f"plot written to {args.plot}")


if __name__ == "__main__":
    main()
