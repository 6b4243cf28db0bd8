"""Char-level "hihell" -> "ihello": the smallest sequence-to-sequence RNN tutorial.

One-hot characters, LSTM(5, return_sequences) + TimeDistributed(Dense(5, softmax)), Adam
(lr 0.1); the predicted string is printed every epoch. Then the same task with a SimpleRNN
using tanh and relu, to show what the activation does.

    python examples/hihello.py [--quick] [--epochs N]
"""

from __future__ import annotations

import argparse

import numpy as np

import rnncore
from rnncore.layers import LSTM, Dense, SimpleRNN, TimeDistributed

CHARS = ["h", "i", "e", "l", "o"]
X_IDS = [[0, 1, 0, 2, 3, 3]]  # h i h e l l
Y_IDS = [[1, 0, 2, 3, 3, 4]]  # i h e l l o


def decode(probs) -> str:
    return "".join(CHARS[i] for i in probs.argmax(-1)[0])


def train(recurrent, epochs, show=True):
    x = np.eye(5, dtype=np.float32)[X_IDS]
    y = np.eye(5, dtype=np.float32)[Y_IDS]
    model = rnncore.Sequential(
        [rnncore.Input((6, 5)), recurrent, TimeDistributed(Dense(5, activation="softmax"))]
    )
    model.compile(
        rnncore.optimizers.Adam(learning_rate=0.1), "categorical_crossentropy", ["accuracy"]
    )
    for epoch in range(epochs):
        h = model.fit(x, y, epochs=1, verbose=0)
        if show:
            print(f"epoch {epoch + 1:3d}  loss {h.history['loss'][0]:.4f}  "
                  f"prediction: {decode(model.predict(x))}")  # fmt: skip
    return decode(model.predict(x)), model.evaluate(x, y)[0]


def main(argv=None):
    ap = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    ap.add_argument("--quick", action="store_true", help="fewer epochs")
    ap.add_argument("--epochs", type=int, default=50, help="training epochs (default: 50)")
    ap.add_argument(
        "--seed", type=int, default=0, help="seed of the weights and shuffling (default: 0)"
    )
    args = ap.parse_args(argv)
    epochs = 10 if args.quick else args.epochs
    rnncore.utils.set_random_seed(args.seed)
    print("LSTM(5) + TimeDistributed(Dense(softmax)), 'hihell' -> 'ihello'")
    final, loss = train(LSTM(5, return_sequences=True), epochs)
    print(f"LSTM: {final!r} (loss {loss:.4f})\n")
    losses = {}
    for activation in ("tanh", "relu"):
        rnncore.utils.set_random_seed(args.seed)
        layer = SimpleRNN(5, activation=activation, return_sequences=True)
        final, losses[activation] = train(layer, epochs, False)
        print(f"SimpleRNN activation={activation}: {final!r} after {epochs} epochs "
              f"(loss {losses[activation]:.4f})")  # fmt: skip
    better = min(losses, key=losses.get)
    print(f"{better} reached the lower loss here. tanh bounds the state to [-1, 1]; relu's state "
          "is unbounded, so on long sequences it can grow step after step or die at zero, which "
          "is why LSTM/GRU keep tanh for the state and sigmoid for the gates.")  # fmt: skip


if __name__ == "__main__":
    main()
