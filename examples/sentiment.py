"""Sentiment classification: Tokenizer -> pad_sequences -> Embedding(mask_zero) -> Bidirectional
LSTM -> Bidirectional GRU -> Dense(softmax), on IMDB reviews when you have them.

Data, in order of preference:
  --data PATH   an aclImdb folder (raw reviews) or an imdb.npz file (Keras's encoded reviews)
  the cached or downloaded imdb.npz (rnncore.datasets.imdb.load_data; skipped with --offline)
  otherwise a SYNTHETIC review corpus (rnncore.datasets.imdb.synthetic_texts), clearly labelled,
  so the script also runs without files or network.
The training set is split 90/10 into train/validation, stratified by label.

    python examples/sentiment.py [--quick] [--data PATH] [--offline] [--epochs N] [--seed S]
"""

from __future__ import annotations

import argparse
import pathlib
import time

import rnncore
from rnncore.datasets import imdb
from rnncore.layers import GRU, LSTM, Bidirectional, Dense, Embedding
from rnncore.text import Tokenizer, pad_sequences

PUBLISHED = "~0.81 test accuracy after 4 epochs (Keras example imdb_bidirectional_lstm.py)"
PROBES = [
    "what a wonderful film . the acting was superb .",
    "the plot was not gripping . the ending was really dull .",
    "the story was not boring at all . what a charming cast .",
]


def load(args):
    """(train, test, tokenizer or None, description): sequences of token ids and labels."""
    if args.data and pathlib.Path(args.data).is_file():
        train, test = imdb.load_data(args.data, num_words=args.num_words)
        return train, test, None, f"IMDB from {args.data}"
    if args.data:
        train, test = imdb.load_texts(args.data)
        return *_tokenize(train, test, args.num_words), f"IMDB reviews from {args.data}"
    if not args.offline:
        try:
            train, test = imdb.load_data(num_words=args.num_words)
            return train, test, None, "IMDB (cached imdb.npz)"
        except OSError as e:
            print(f"IMDB unavailable: {e}")
    n = 800 if args.quick else 6000
    texts, labels = imdb.synthetic_texts(n + n // 4, seed=args.seed)
    train, test = (texts[:n], labels[:n]), (texts[n:], labels[n:])
    return *_tokenize(train, test, args.num_words), "SYNTHETIC reviews (not IMDB)"


def _tokenize(train, test, num_words):
    tok = Tokenizer(num_words=num_words, oov_token="<unk>").fit_on_texts(train[0])
    seqs = lambda texts: tok.texts_to_sequences(texts)  # noqa: E731
    return (seqs(train[0]), train[1]), (seqs(test[0]), test[1]), tok


def build_model(num_words, units):
    model = rnncore.Sequential(
        [
            Embedding(num_words, 32, mask_zero=True),
            Bidirectional(LSTM(units, return_sequences=True)),
            Bidirectional(GRU(units // 2)),
            Dense(2, activation="softmax"),
        ]
    )
    model.compile(rnncore.optimizers.Adam(0.003), "sparse_categorical_crossentropy", ["accuracy"])
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--quick", action="store_true", help="small corpus, short reviews, 2 epochs")
    ap.add_argument("--data", help="aclImdb folder or imdb.npz file")
    ap.add_argument("--offline", action="store_true", help="never try to download IMDB")
    ap.add_argument("--epochs", type=int, default=4, help="training epochs (default: 4)")
    ap.add_argument(
        "--num-words", type=int, default=10000, help="keep the most frequent words (default: 10000)"
    )
    ap.add_argument(
        "--maxlen", type=int, default=200, help="reviews cut to this many words (default: 200)"
    )
    ap.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the weights, dropout and shuffling (default: 0)",
    )
    args = ap.parse_args(argv)
    rnncore.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test), tok, source = load(args)
    maxlen = 60 if args.quick else args.maxlen
    # Keep each review's end (verdicts come last) and pad in front: "pre" truncating and padding.
    pad = lambda seqs: pad_sequences(seqs, maxlen=maxlen, padding="pre", truncating="pre")  # noqa: E731
    (x_tr, y_tr), (x_va, y_va) = rnncore.data.stratified_split(
        pad(x_train), y_train, 0.1, args.seed
    )
    x_te = pad(x_test)
    print(f"data: {source}; {len(x_tr)} train / {len(x_va)} valid / {len(x_te)} test reviews, "
          f"padded to {maxlen} tokens; positive share {y_tr.mean():.2f} / {y_va.mean():.2f}"
          )  # fmt: skip

    num_words = int(max(x_tr.max(), x_te.max(), args.num_words - 1)) + 1
    model = build_model(num_words, 16 if args.quick else 32)
    start = time.perf_counter()
    epochs = 2 if args.quick else args.epochs
    model.fit(x_tr, y_tr, batch_size=64, epochs=epochs, validation_data=(x_va, y_va), verbose=2)
    seconds = time.perf_counter() - start
    loss, acc = model.evaluate(x_te, y_test, verbose=0)
    print(f"test accuracy {acc:.4f} (loss {loss:.4f}) after {epochs} epochs, {seconds:.1f} s "
          f"training; published for IMDB: {PUBLISHED}")  # fmt: skip
    print(f"majority-class baseline: {max(y_test.mean(), 1 - y_test.mean()):.4f}")
    if tok is not None:
        p = model.predict(pad(tok.texts_to_sequences(PROBES)))
        for text, (_, pos) in zip(PROBES, p):
            print(f"  P(positive) = {pos:.2f}  {text!r}")


if __name__ == "__main__":
    main()
