"""`rnncore demo`: the classic one-step forecasting chapter, trained and compared.

Six forecasters of the next value of the synthetic two-sine series (10,000 series of 50
steps; train/valid/test 7000/2000/1000): naive last value, linear, SimpleRNN(1), a deep
SimpleRNN, LSTM and GRU. Prints progress bars while training, then a table of validation MSE
(beside the figures published with the tutorial), parameters and training time.
"""

from __future__ import annotations

import time

import numpy as np

import rnncore
from rnncore.data import time_series_splits
from rnncore.layers import GRU, LSTM, Dense, Flatten, SimpleRNN

# Validation MSE published with the tutorial (Géron, Hands-On ML, ch. 15).
PUBLISHED = {"naive": 0.020, "linear": 0.0041, "simple_rnn_1": 0.0109, "deep_rnn": 0.0029}


def build_models(n_steps):
    """name -> (model, optimizer) for each trained forecaster."""
    inp = rnncore.Input((n_steps, 1))
    rs = {"return_sequences": True}
    return {
        "linear": (rnncore.Sequential([inp, Flatten(), Dense(1)]), "adam"),
        "simple_rnn_1": (
            rnncore.Sequential([rnncore.Input((n_steps, 1)), SimpleRNN(1)]),
            rnncore.optimizers.Adam(learning_rate=0.005),
        ),
        "deep_rnn": (
            rnncore.Sequential(
                [rnncore.Input((n_steps, 1)), SimpleRNN(20, **rs), SimpleRNN(20), Dense(1)]
            ),
            "adam",
        ),
        "lstm": (
            rnncore.Sequential([rnncore.Input((n_steps, 1)), LSTM(20, **rs), LSTM(20), Dense(1)]),
            "adam",
        ),
        "gru": (
            rnncore.Sequential([rnncore.Input((n_steps, 1)), GRU(20, **rs), GRU(20), Dense(1)]),
            "adam",
        ),
    }


def run(seed=0, quick=False, verbose=1, log=print):
    """Train every forecaster; returns (rows, histories, predictions, validation data)."""
    rnncore.utils.set_random_seed(seed)
    n_series, epochs = (2000, 3) if quick else (10000, 20)
    data = time_series_splits(n_series, 50, seed=42 + seed)
    x_train, y_train = data["train"]
    x_valid, y_valid = data["valid"]
    naive = x_valid[:, -1]
    rows = [("naive", float(np.mean((naive - y_valid) ** 2)), 0, 0.0)]
    histories, predictions = {}, {"naive": naive}
    for name, (model, optimizer) in build_models(50).items():
        log(f"\n== {name}: {model.count_params()} parameters")
        model.compile(optimizer=optimizer, loss="mse")
        start = time.perf_counter()
        h = model.fit(x_train, y_train, epochs=epochs, validation_data=(x_valid, y_valid),
                      verbose=verbose)  # fmt: skip
        elapsed = time.perf_counter() - start
        histories[name] = h.history
        predictions[name] = model.predict(x_valid)
        rows.append((name, model.evaluate(x_valid, y_valid), model.count_params(), elapsed))
    return rows, histories, predictions, (x_valid, y_valid)


def table(rows, quick=False) -> str:
    """The demo's results as aligned text rows; beside the published figures only for a full
    run (a quick one trains on fewer samples for fewer epochs, so it cannot match them)."""
    pub_head = "" if quick else f"{'published':>11}"
    lines = [f"{'model':<14}{'valid MSE':>11}{pub_head}{'params':>8}{'train s':>9}"]
    for name, mse, params, seconds in rows:
        pub = PUBLISHED.get(name)
        pub_cell = "" if quick else f"{(f'{pub:.4f}' if pub else '-'):>11}"
        lines.append(f"{name:<14}{mse:>11.4f}{pub_cell}{params:>8}{seconds:>9.1f}")
    if quick:
        lines.append("(quick run: the full run, without --quick, compares with the published MSE)")
    return "\n".join(lines)


def plot(path, histories, predictions, valid):
    """A PNG: three validation series with each model's forecast, and the learning curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x_valid, y_valid = valid
    color = {name: f"C{i}" for i, name in enumerate(predictions)}  # one colour per model
    marker = dict(zip(predictions, "xP^sDv*<>"))  # and one marker: overlapping ones stay visible
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.6))
    fig.suptitle("One-step forecasts of the two-sine series (validation set) and learning curves")
    steps = np.arange(x_valid.shape[1])
    for ax, i in zip(axes[:3], range(3)):
        ax.plot(steps, x_valid[i, :, 0], ".-", color="0.4", label="series")
        ax.plot(steps[-1] + 1, y_valid[i, 0], "ko", markersize=8, label="truth")
        for name, pred in predictions.items():
            ax.plot(steps[-1] + 1, pred[i, 0], marker[name], markersize=8, mew=1.5,
                    color=color[name], linestyle="none", label=name)  # fmt: skip
        ax.set_title(f"validation series {i}")
        ax.set_xlabel("time step")
        ax.set_ylabel("series value (unitless)")
    for name, hist in histories.items():
        epochs = np.arange(1, len(hist["val_loss"]) + 1)
        axes[3].plot(epochs, hist["val_loss"], color=color[name], label=name)
    axes[3].set_yscale("log")
    axes[3].set_xlabel("epoch")
    axes[3].set_ylabel("validation MSE (log scale)")
    axes[3].xaxis.get_major_locator().set_params(integer=True)
    axes[3].set_title("learning curves")
    # One legend for every panel, below them: it covers no data.
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(args) -> int:
    """`rnncore demo`: trains and compares the forecasting tutorial's models."""
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print(
                "--plot needs matplotlib: pip install 'rnncore[plot]' (or pip install matplotlib)"
            )
            return 2
    if args.threads:
        rnncore.set_num_threads(args.threads)
    print(f"rnncore {rnncore.__version__}: one-step forecasting of the synthetic two-sine series"
          f"{' (quick run)' if args.quick else ''}")  # fmt: skip
    start = time.perf_counter()
    rows, histories, predictions, valid = run(seed=args.seed, quick=args.quick)
    print("\n" + table(rows, quick=args.quick))
    print(f"\ntotal {time.perf_counter() - start:.1f} s, {rnncore.get_num_threads()} threads")
    if args.plot:
        plot(args.plot, histories, predictions, valid)
        print(f"plot written to {args.plot}")
    return 0
