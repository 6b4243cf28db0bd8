"""A character-level LSTM language model on text that ships with Python, sampled with temperature.

The corpus is the documentation strings of a fixed list of standard-library modules (always
there, no download). Windows of 40 characters (stride 3) predict the next character:
Embedding -> LSTM(128) -> Dense(softmax). After training, text is sampled at a few temperatures.

    python examples/char_lm.py [--quick] [--epochs N] [--seed S]
"""

from __future__ import annotations

import argparse
import importlib
import time

import numpy as np

import rnncore
from rnncore.layers import LSTM, Dense, Embedding

MODULES = (
    "argparse collections csv dataclasses functools itertools json logging pathlib re shutil "
    "string subprocess textwrap typing"
).split()
MAXLEN, STRIDE = 40, 3


def corpus() -> str:
    docs = [importlib.import_module(m).__doc__ or "" for m in MODULES]
    return "\n".join(" ".join(d.split()) for d in docs)  # collapse layout whitespace


def windows(text, vocab):
    ids = np.array([vocab[c] for c in text], np.int64)
    starts = np.arange(0, len(ids) - MAXLEN, STRIDE)
    x = np.stack([ids[s : s + MAXLEN] for s in starts])
    return x, ids[starts + MAXLEN]


def sample(model, seed_text, vocab, chars, n, temperature, rng):
    out = seed_text
    for _ in range(n):
        x = np.array([[vocab[c] for c in out[-MAXLEN:]]])
        p = model.predict(x)[0].astype(np.float64)
        logits = np.log(np.maximum(p, 1e-12)) / temperature
        q = np.exp(logits - logits.max())
        out += chars[rng.choice(len(chars), p=q / q.sum())]
    return out[len(seed_text) :]


def main(argv=None):
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--quick", action="store_true", help="a slice of the text, one epoch")
    ap.add_argument("--epochs", type=int, default=10, help="training epochs (default: 10)")
    ap.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the weights, dropout and shuffling (default: 0)",
    )
    args = ap.parse_args(argv)
    rnncore.utils.set_random_seed(args.seed)
    text = corpus()
    if args.quick:
        text = text[:6000]
    chars = sorted(set(text))
    vocab = {c: i + 1 for i, c in enumerate(chars)}  # 0 stays free (padding)
    chars = ["?"] + chars
    x, y = windows(text, vocab)
    print(f"corpus: {len(text)} characters from {len(MODULES)} module docstrings, "
          f"{len(chars) - 1} distinct; {len(x)} windows of {MAXLEN}")  # fmt: skip
    model = rnncore.Sequential(
        [
            rnncore.Input((MAXLEN,)),
            Embedding(len(chars), 16),
            LSTM(128),
            Dense(len(chars), activation="softmax"),
        ]  # fmt: skip
    )
    model.compile(rnncore.optimizers.Adam(0.005), "sparse_categorical_crossentropy", ["accuracy"])
    start = time.perf_counter()
    h = model.fit(x, y, batch_size=128, epochs=1 if args.quick else args.epochs, verbose=2)
    print(f"trained in {time.perf_counter() - start:.1f} s; final loss {h.history['loss'][-1]:.3f} "
          f"(uniform guessing: {np.log(len(chars) - 1):.3f})")  # fmt: skip
    rng = np.random.default_rng(args.seed)
    seed_text = text[:MAXLEN]
    print(f"\nseed: {seed_text!r}")
    for temperature in (0.2, 0.5, 1.0):
        n = 60 if args.quick else 300
        generated = sample(model, seed_text, vocab, chars, n, temperature, rng)
        print(f"\n-- temperature {temperature}:\n{generated}")


if __name__ == "__main__":
    main()
