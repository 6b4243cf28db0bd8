"""Data-parallel PyTorch training of a model holding rnncore.torch modules (DDP over gloo).

Run on one machine with two processes (or more; add --nnodes/--node-rank/--rdzv-endpoint for
several machines, as for any torchrun job):

    torchrun --standalone --nproc-per-node 2 examples/torch_ddp.py --steps 20

Each process takes its share of every global batch; DistributedDataParallel averages the
gradients, so the run trains the same model one process would on the whole batch. Without
torchrun (no RANK in the environment) the script trains in one process.
"""

from __future__ import annotations

import argparse
import os

import torch

import rnncore
import rnncore.torch


class Tagger(torch.nn.Module):
    """A 2-layer bidirectional LSTM followed by a per-step linear read-out."""

    def __init__(self, features: int, hidden: int, outputs: int):
        super().__init__()
        self.rnn = rnncore.torch.LSTM(features, hidden, num_layers=2, bidirectional=True,
                                      batch_first=True)  # fmt: skip
        self.head = torch.nn.Linear(2 * hidden, outputs)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.head(y)


def make_model(seed: int = 0, dtype=torch.float64) -> Tagger:
    """The model, initialised from `seed` (every process builds the same one)."""
    torch.manual_seed(seed)
    return Tagger(features=3, hidden=8, outputs=2).to(dtype)


def make_data(batch: int, steps: int = 12, seed: int = 1, dtype=torch.float64):
    """A synthetic regression set, x (batch, steps, 3) and y (batch, steps, 2), alike everywhere."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, 3, generator=g, dtype=dtype)
    y = torch.stack([x.cumsum(1)[..., 0], x[..., 1] * x[..., 2]], dim=-1)
    return x, y


def train(model: torch.nn.Module, x, y, steps: int, lr: float = 0.05) -> list[float]:
    """`steps` full-batch SGD steps on (x, y) with mean squared error; returns the losses."""
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def main(argv=None) -> None:
    """Trains data-parallel under torchrun (or in one process); rank 0 reports and saves."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="training steps (default 20)")
    parser.add_argument("--batch", type=int, default=64, help="global batch size (default 64)")
    parser.add_argument("--out", help="write the trained state_dict here (rank 0)")
    parser.add_argument("--quick", action="store_true", help="3 steps on a batch of 16")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.batch = 3, 16

    distributed = "RANK" in os.environ  # set by torchrun
    rank, world = 0, 1
    if distributed:
        torch.distributed.init_process_group("gloo")
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    if args.batch % world:
        raise SystemExit(f"--batch: expected a multiple of the {world} processes, got {args.batch}")
    # The machine's cores shared among the processes on it.
    threads = max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    torch.set_num_threads(threads)
    rnncore.set_num_threads(threads)

    model = make_model()
    x, y = make_data(args.batch)
    share = slice(rank * args.batch // world, (rank + 1) * args.batch // world)
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(model)
    losses = train(model, x[share], y[share], args.steps)
    if rank == 0:
        print(f"{world} process(es): loss {losses[0]:.4f} -> {losses[-1]:.4f} (rank 0's share)")
        if args.out:
            trained = model.module if distributed else model
            torch.save(trained.state_dict(), args.out)
    if distributed:
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
