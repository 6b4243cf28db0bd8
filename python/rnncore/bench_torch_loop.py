"""The "torch loop" bench case: one whole PyTorch training step, rnncore.torch against torch.nn.

A model a PyTorch user writes (Embedding -> 2-layer bidirectional LSTM or GRU -> Linear on the
final states, cross-entropy, Adam) at the medium shape, once with equal lengths and once on a
PackedSequence of random lengths. The two models hold the same parameters and run in the same
process, interleaved (bench.interleaved_medians). Needs torch; imported only by the bench.
"""

from __future__ import annotations

from typing import Callable

import torch

import rnncore.torch as rnncore_torch

from .bench import case_flops, interleaved_medians

VOCAB, CLASSES, LAYERS = 1000, 10, 2
LENGTHS_SEED = 3


class _Classifier(torch.nn.Module):
    """Embedding -> bidirectional recurrent layers -> Linear on the last layer's final states."""

    def __init__(self, rnn: torch.nn.RNNBase):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, rnn.input_size)
        self.rnn = rnn
        self.head = torch.nn.Linear(2 * rnn.hidden_size, CLASSES)

    def forward(self, tokens, lengths=None):
        x = self.embed(tokens)
        if lengths is not None:
            x = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                        enforce_sorted=False)  # fmt: skip
        _, h_n = self.rnn(x)
        h_n = h_n[0] if isinstance(h_n, tuple) else h_n  # LSTM: (h_n, c_n)
        return self.head(torch.cat([h_n[-2], h_n[-1]], dim=-1))


def _step(model: _Classifier, tokens, labels, lengths) -> Callable[[], None]:
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(tokens, lengths), labels)
        loss.backward()
        optimizer.step()

    return step


def loop_cases(threads: int, budget: float, reps: int, shape: tuple) -> list[dict]:
    """Rows for LSTM and GRU, equal lengths ("loop") and packed ("loop-pk"), in training,
    at `shape` (B, T, I, H); I is the embedding width."""
    torch.set_num_threads(threads)
    B, T, I, H = shape
    g = torch.Generator().manual_seed(LENGTHS_SEED)
    tokens = torch.randint(0, VOCAB, (B, T), generator=g)
    labels = torch.randint(0, CLASSES, (B,), generator=g)
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    rows = []
    for family in ("lstm", "gru"):
        torch.manual_seed(0)
        models = [_Classifier(getattr(library, family.upper())(I, H, num_layers=LAYERS,
                              bidirectional=True, batch_first=True))
                  for library in (torch.nn, rnncore_torch)]  # fmt: skip
        reference, ours = models
        ours.load_state_dict(reference.state_dict())
        for case, lens in (("loop", None), ("loop-pk", lengths)):
            medians = interleaved_medians({
                "rnncore": _step(ours, tokens, labels, lens),
                "torch": _step(reference, tokens, labels, lens),
            }, budget, reps)  # fmt: skip
            real = 1.0 if lens is None else float(lens.sum()) / (B * T)
            flops = _recurrent_flops(family, shape) * real
            rnncore_ms = medians.pop("rnncore")
            rows.append({"cell": family, "shape": case, "mode": "training",
                         "rnncore": rnncore_ms, "peers": medians,
                         "speedup": medians["torch"] / rnncore_ms,
                         "gflops": flops / rnncore_ms / 1e6})  # fmt: skip
    return rows


def _recurrent_flops(family: str, shape: tuple) -> float:
    """Training FLOPs of the recurrent layers alone (both directions, every layer)."""
    B, T, I, H = shape
    first = case_flops(family, "training", (B, T, I, H))
    later = case_flops(family, "training", (B, T, 2 * H, H))
    return 2 * (first + (LAYERS - 1) * later)
