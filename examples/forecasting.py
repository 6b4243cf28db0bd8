"""The forecasting chapter on the synthetic two-sine series, end to end.

One step ahead: naive, linear, SimpleRNN(1), deep SimpleRNN. Ten steps ahead three ways: the
one-step model run iteratively, a Dense(10) vector output, and sequence-to-sequence (every
step predicts the next 10; scored on the last step). Then LSTM and GRU sequence-to-sequence,
Conv1D(20, 4, strides 2) -> GRU -> GRU, a WaveNet-style stack of causal dilated Conv1D, and
a layer-normalised SimpleRNN sequence-to-sequence, and MC-dropout forecasts with error bars.
Prints one table of validation MSE; with several --seeds, also their mean ± std (markdown).

    python examples/forecasting.py [--quick] [--seeds 0 1 2] [--plot forecasting.png]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rnncore
from rnncore.data import generate_time_series
from rnncore.layers import (
    GRU,
    LSTM,
    Conv1D,
    Dense,
    Flatten,
    LayerNormSimpleRNN,
    SimpleRNN,
    TimeDistributed,
)

N_STEPS, AHEAD = 50, 10


def make_data(n_series, seed):
    series = generate_time_series(n_series, N_STEPS + AHEAD, seed)
    a, b = int(0.7 * n_series), int(0.9 * n_series)
    x = series[:, :N_STEPS]
    y1 = series[:, N_STEPS, 0:1]  # next value
    y10 = series[:, N_STEPS:, 0]  # next 10 values
    # sequence-to-sequence targets: at every step t, the 10 values after it  [n, 50, 10]
    yseq = np.stack([series[:, k + 1 : k + 1 + N_STEPS, 0] for k in range(AHEAD)], axis=-1)
    split = lambda arr: (arr[:a], arr[a:b])  # noqa: E731
    return {name: split(arr) for name, arr in
            {"x": x, "y1": y1, "y10": y10, "yseq": yseq}.items()}  # fmt: skip


def fit(model, x, y, val, epochs, lr=None):
    opt = rnncore.optimizers.Adam(lr) if lr else "adam"
    model.compile(opt, "mse")
    model.fit(x, y, epochs=epochs, validation_data=val, verbose=0)
    return model


def mse(a, b):
    return float(np.mean((a - b) ** 2))


def seq2seq(layers):
    return rnncore.Sequential([rnncore.Input((None, 1)), *layers, TimeDistributed(Dense(AHEAD))])


def main(argv=None):
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument(
        "--quick",
        action="store_true",
        help="a small, short run (its errors do not compare with the published ones)",
    )
    ap.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0],
        metavar="S",
        help="one run per seed; the table gives their mean (default: 0)",
    )
    ap.add_argument(
        "--plot",
        metavar="PATH",
        help="write the MC-dropout forecasts of the first seed to this PNG",
    )
    args = ap.parse_args(argv)
    runs = []
    for i, seed in enumerate(args.seeds):
        print(f"== seed {seed}")
        runs.append(chapter(seed, args.quick, args.plot if i == 0 else None))
    if len(runs) > 1:
        summarize(args.seeds, runs, args.quick)
    if args.quick:
        print("(quick run: 1000 series, 1 epoch; the full run compares with the published MSE)")


def summarize(seeds, runs, quick=False):
    """A Markdown table of the mean and spread over seeds (beside the published figures for a
    full run)."""
    pub = "" if quick else " published |"
    print(f"\n| experiment | validation MSE, mean ± std over seeds {seeds} |{pub} time |")
    print("|---|---|" + ("" if quick else "---|") + "---|")
    for k, (name, _, _, published) in enumerate(runs[0]):
        values = np.array([run[k][1] for run in runs])
        seconds = np.mean([run[k][2] for run in runs])
        cell = "" if quick else f" {published or '–'} |"
        print(f"| {name} | {values.mean():.4f} ± {values.std():.4f} |{cell} {seconds:.1f} s |")


def chapter(seed, quick, plot_path):
    """Every experiment once: [(name, validation MSE, seconds, published or None)]."""
    n_series, epochs = (1000, 1) if quick else (10000, 20)
    rnncore.utils.set_random_seed(seed)
    d = make_data(n_series, 42 + seed)
    (x_tr, x_va), (y1_tr, y1_va) = d["x"], d["y1"]
    (y10_tr, y10_va), (ys_tr, ys_va) = d["y10"], d["yseq"]
    rows = []

    def record(name, value, started, published=None):
        rows.append((name, value, time.perf_counter() - started, published))
        shown = published is not None and not quick  # a quick run cannot match them
        print(f"{name:<56}{value:>9.4f}{f'  (published {published})' if shown else ''}")

    rs = {"return_sequences": True}
    t = time.perf_counter()
    record("1 ahead: naive", mse(x_va[:, -1], y1_va), t, 0.020)
    t = time.perf_counter()
    m = fit(rnncore.Sequential([rnncore.Input((N_STEPS, 1)), Flatten(), Dense(1)]),
            x_tr, y1_tr, (x_va, y1_va), epochs)  # fmt: skip
    record("1 ahead: linear", m.evaluate(x_va, y1_va), t, 0.0041)
    t = time.perf_counter()
    m = fit(rnncore.Sequential([rnncore.Input((None, 1)), SimpleRNN(1)]),
            x_tr, y1_tr, (x_va, y1_va), epochs, lr=0.005)  # fmt: skip
    record("1 ahead: SimpleRNN(1)", m.evaluate(x_va, y1_va), t, 0.0109)
    t = time.perf_counter()
    deep = fit(rnncore.Sequential([rnncore.Input((None, 1)), SimpleRNN(20, **rs), SimpleRNN(20),
                                   Dense(1)]), x_tr, y1_tr, (x_va, y1_va), epochs)  # fmt: skip
    record("1 ahead: deep RNN", deep.evaluate(x_va, y1_va), t, 0.0029)

    t = time.perf_counter()
    record("10 ahead: naive (last value)", mse(np.repeat(x_va[:, -1], AHEAD, 1), y10_va), t, 0.227)
    t = time.perf_counter()
    window = x_va.copy()
    for _ in range(AHEAD):  # feed each forecast back in as the newest value
        window = np.concatenate([window, deep.predict(window[:, -N_STEPS:])[:, None, :]], axis=1)
    record("10 ahead: deep RNN, iterated", mse(window[:, N_STEPS:, 0], y10_va), t)
    t = time.perf_counter()
    m = fit(rnncore.Sequential([rnncore.Input((N_STEPS, 1)), Flatten(), Dense(AHEAD)]),
            x_tr, y10_tr, (x_va, y10_va), epochs)  # fmt: skip
    record("10 ahead: linear", m.evaluate(x_va, y10_va), t, 0.0188)
    t = time.perf_counter()
    m = fit(rnncore.Sequential([rnncore.Input((None, 1)), SimpleRNN(20, **rs), SimpleRNN(20),
                                Dense(AHEAD)]), x_tr, y10_tr, (x_va, y10_va), epochs)  # fmt: skip
    record("10 ahead: deep RNN, vector output", m.evaluate(x_va, y10_va), t, 0.0094)

    seq_models = {
        "seq2seq SimpleRNN": [SimpleRNN(20, **rs), SimpleRNN(20, **rs)],
        "seq2seq LSTM": [LSTM(20, **rs), LSTM(20, **rs)],
        "seq2seq GRU": [GRU(20, **rs), GRU(20, **rs)],
        "seq2seq layer-normalised SimpleRNN": [
            LayerNormSimpleRNN(20, **rs),
            LayerNormSimpleRNN(20, **rs),
        ],
        "Conv1D + GRU": [Conv1D(20, 4, strides=2, padding="valid"), GRU(20, **rs), GRU(20, **rs)],
        "WaveNet (causal dilated Conv1D)": [
            Conv1D(20, 2, padding="causal", dilation_rate=r, activation="relu")
            for r in (1, 2, 4, 8) * 2
        ],
    }
    published = {"seq2seq SimpleRNN": 0.0065}
    for name, layers in seq_models.items():
        t = time.perf_counter()
        ys_train, ys_valid = ys_tr, ys_va
        if name.startswith("Conv1D"):  # stride 2, kernel 4: output step j sees inputs up to 2j+3
            ys_train, ys_valid = ys_tr[:, 3::2], ys_va[:, 3::2]
        m = fit(seq2seq(layers), x_tr, ys_train, (x_va, ys_valid), epochs, lr=0.01)  # as the book
        last = mse(m.predict(x_va)[:, -1], ys_valid[:, -1])  # scored on the last time step
        record(f"10 ahead: {name} (last step)", last, t, published.get(name))

    t = time.perf_counter()
    mc = fit(rnncore.Sequential([rnncore.Input((None, 1)),
                                 SimpleRNN(20, dropout=0.1, recurrent_dropout=0.1, **rs),
                                 SimpleRNN(20, dropout=0.1, recurrent_dropout=0.1),
                                 Dense(AHEAD)]), x_tr, y10_tr, (x_va, y10_va), epochs)  # fmt: skip
    draws = np.stack([mc(x_va, training=True) for _ in range(20 if quick else 100)])
    mean, std = draws.mean(axis=0), draws.std(axis=0)
    record("10 ahead: MC dropout (mean of draws)", mse(mean, y10_va), t)
    inside = float(np.mean(np.abs(y10_va - mean) <= 2 * std))
    print(f"   MC dropout: mean std {std.mean():.4f}; {inside:.0%} of true values within ±2 std")
    if plot_path:
        plot(plot_path, x_va, y10_va, mean, std)
    return rows


def plot(path, x, y, mean, std):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    fig.suptitle(f"{AHEAD}-step forecasts with MC dropout (validation series)")
    past, future = np.arange(N_STEPS), np.arange(N_STEPS, N_STEPS + AHEAD)
    for i, ax in enumerate(axes):
        ax.plot(past, x[i, :, 0], ".-", color="0.4", label="series")
        ax.plot(future, y[i], "ko-", label="truth")
        ax.plot(future, mean[i], "rx-", label="MC-dropout mean")
        ax.fill_between(future, mean[i] - 2 * std[i], mean[i] + 2 * std[i], color="r", alpha=0.2,
                        label="±2 std")  # fmt: skip
        ax.set_title(f"validation series {i}")
        ax.set_xlabel("time step")
        ax.set_ylabel("series value (unitless)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=100)
    print(f"plot written to {path}")


if __name__ == "__main__":
    main()
