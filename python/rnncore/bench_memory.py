"""The child process of the bench's memory reading: one training step's peak resident memory.

Run as ``python -m rnncore.bench_memory '[lib, cell, B, T, I, H, threads]'`` by
`bench.peak_memory_mb`, one fresh process per library, so that neither sees the other's
allocations or caches. It prints the rise of resident memory (MiB) above what the inputs and
weights already occupy: after a warm-up step, the high-water mark is reset through
/proc/self/clear_refs (Linux) and one more step is measured. The parent sets malloc to mmap
every block of 16 KiB or more and to trim the heap on every free, so a block counts while it
is touched and stops counting when freed (docs/design.md, "Memory", says why).
"""

from __future__ import annotations

import json
import sys

import numpy as np

from . import _cells


def _torch_step(cell: _cells.CellKind, x, dy, threads):
    import torch

    torch.set_num_threads(threads)
    module = getattr(torch.nn, str(cell.torch_module))(x.shape[2], dy.shape[2])
    xg, dyt = torch.tensor(x).requires_grad_(True), torch.tensor(dy)

    def step():
        module(xg)[0].backward(dyt)  # the gradients stay on the tensors: counted at the peak

    def release():
        module.zero_grad(set_to_none=True)
        xg.grad = None

    return step, release


def _rnncore_step(cell: _cells.CellKind, x, dy, threads, rng):
    import rnncore

    rnncore.set_num_threads(threads)
    I, H, G = x.shape[2], dy.shape[2], cell.gates
    p = [rng.uniform(-0.1, 0.1, s).astype(np.float32)
         for s in [(G * H, I), (G * H, H), (G * H,), (G * H,)]]  # fmt: skip
    fwd = getattr(rnncore, cell.family + "_forward")
    bwd = getattr(rnncore, cell.family + "_backward")

    def step():
        bwd(fwd(x, *p, training=True)[-1], dy)  # the gradients live until the step returns

    def release():  # the measured step allocates its workspace afresh, as a first step does
        rnncore._core.release_workspaces(thread_blocks=False)

    return step, release


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key))


def main(argv: list[str]) -> int:
    """Measures and prints one step's peak (MiB) for the case argv[0] describes as JSON."""
    lib, family, B, T, I, H, threads = json.loads(argv[0])
    cell = _cells.family_kinds(family)[0]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I), dtype=np.float32)
    dy = rng.standard_normal((T, B, H), dtype=np.float32)
    if lib == "torch":
        step, release = _torch_step(cell, x, dy, threads)
    else:
        step, release = _rnncore_step(cell, x, dy, threads, rng)
    step()
    release()  # start from no gradients held: freeing the last ones must not offset the peak
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    base = _status_kib("VmRSS:")
    step()
    print((_status_kib("VmHWM:") - base) / 1024)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
