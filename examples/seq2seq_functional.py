"""Ten steps ahead with an encoder-decoder built with the functional API.

The encoder LSTM reads 50 steps of the synthetic two-sine series and hands its final states
to the decoder LSTM (`return_state=True`, `initial_state=`). Training feeds the decoder the
true previous values (teacher forcing); forecasting runs it one step at a time on its own
outputs, through two smaller models that share the trained layers: an encoder model giving
the states, and a one-step decoder model taking a value and states and giving the next value
and states. Compared with the naive forecast (the last value, repeated) and a linear model
(Flatten -> Dense(10)), by validation MSE over the 10 steps.

    python examples/seq2seq_functional.py [--quick] [--seed 0] [--plot seq2seq.png]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import rnncore
from rnncore.data import generate_time_series
from rnncore.layers import LSTM, Dense, Flatten, TimeDistributed

N_STEPS, AHEAD, UNITS = 50, 10, 32


def make_data(n_series, seed):
    """Encoder inputs [n, 50, 1], decoder inputs (the previous values) and targets [n, 10, 1],
    split 70/20 (train/validation)."""
    series = generate_time_series(n_series, N_STEPS + AHEAD, seed)
    x, y = series[:, :N_STEPS], series[:, N_STEPS:]
    previous = series[:, N_STEPS - 1 : N_STEPS + AHEAD - 1]  # teacher forcing
    a, b = int(0.7 * n_series), int(0.9 * n_series)
    return (x[:a], previous[:a], y[:a]), (x[a:b], previous[a:b], y[a:b])


def build():
    """The training model, and the encoder and one-step decoder models sharing its layers."""
    enc_in = rnncore.Input((N_STEPS, 1), name="history")
    dec_in = rnncore.Input((None, 1), name="previous")
    _, h, c = LSTM(UNITS, return_state=True, name="encoder")(enc_in)
    decoder = LSTM(UNITS, return_sequences=True, return_state=True, name="decoder")
    head = TimeDistributed(Dense(1, name="value"), name="head")
    seq, _, _ = decoder(dec_in, initial_state=[h, c])
    train = rnncore.Model([enc_in, dec_in], head(seq), name="seq2seq")
    encoder = rnncore.Model(enc_in, [h, c], name="encoder_model")
    h_in, c_in = rnncore.Input((UNITS,), name="h"), rnncore.Input((UNITS,), name="c")
    step_seq, h_out, c_out = decoder(dec_in, initial_state=[h_in, c_in])
    step = rnncore.Model([dec_in, h_in, c_in], [head(step_seq), h_out, c_out], name="step")
    return train, encoder, step


def forecast(encoder, step, x):
    """The next AHEAD values, each step fed the previous prediction."""
    h, c = encoder.predict(x, batch_size=256)
    value, out = x[:, -1:], []
    for _ in range(AHEAD):
        value, h, c = step.predict([value, h, c], batch_size=256)
        out.append(value[:, 0])
    return np.stack(out, axis=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1000 series and 2 epochs (a smoke run)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the data and the weights")
    ap.add_argument("--plot", metavar="PATH", help="write three validation forecasts to this PNG")
    args = ap.parse_args()
    n_series, epochs = (1000, 2) if args.quick else (10000, 20)
    rnncore.utils.set_random_seed(args.seed)
    (x, prev, y), (vx, vprev, vy) = make_data(n_series, 42 + args.seed)
    rows = [("naive (last value)", float(np.mean((vx[:, -1:] - vy) ** 2)), 0, 0.0)]
    linear = rnncore.Sequential([rnncore.Input((N_STEPS, 1)), Flatten(), Dense(AHEAD)])
    linear.compile("adam", "mse")
    start = time.perf_counter()
    linear.fit(x, y[..., 0], epochs=epochs, verbose=0)
    rows.append(("linear (Flatten -> Dense(10))", float(np.mean((linear.predict(vx) - vy[..., 0])
                 ** 2)), linear.count_params(), time.perf_counter() - start))  # fmt: skip
    train, encoder, step = build()
    train.compile(rnncore.optimizers.Adam(0.005), "mse")
    start = time.perf_counter()
    train.fit([x, prev], y, epochs=epochs, validation_data=([vx, vprev], vy), verbose=0)
    seconds = time.perf_counter() - start
    predicted = forecast(encoder, step, vx)
    rows.append(("encoder-decoder LSTM(32), step by step", float(np.mean((predicted - vy) ** 2)),
                 train.count_params(), seconds))  # fmt: skip
    print(f"{n_series} series, {epochs} epochs, seed {args.seed}: validation MSE over "
          f"{AHEAD} steps ahead")  # fmt: skip
    print(f"| {'model':<40} | {'val MSE':>8} | {'params':>6} | {'train s':>7} |")
    print(f"|{'-' * 42}|{'-' * 10}|{'-' * 8}|{'-' * 9}|")
    for name, value, params, secs in rows:
        print(f"| {name:<40} | {value:8.4f} | {params:6d} | {secs:7.1f} |")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 3, figsize=(12, 3.5), sharey=True)
        t_hist, t_next = np.arange(N_STEPS), np.arange(N_STEPS, N_STEPS + AHEAD)
        for i, ax in enumerate(axes):
            ax.plot(t_hist, vx[i, :, 0], ".-", color="0.6", label="history")
            ax.plot(t_next, vy[i, :, 0], "o-", color="k", label="actual")
            ax.plot(t_next, predicted[i, :, 0], "x-", color="C1", label="encoder-decoder")
            ax.set_title(f"validation series {i}")
            ax.set_xlabel("time step")
        axes[0].set_ylabel("value (unitless)")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=3)
        fig.suptitle("Ten steps ahead: the encoder-decoder's step-by-step forecasts")
        fig.tight_layout(rect=(0, 0.1, 1, 1))
        fig.savefig(args.plot, dpi=100)
        print(f"plot written to {args.plot}")


if __name__ == "__main__":
    main()
