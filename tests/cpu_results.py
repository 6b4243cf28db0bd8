"""The kernels' results on a fixed set of cases, saved here and compared bit for bit elsewhere.

    python tests/cpu_results.py save PATH        # on this machine
    python tests/cpu_results.py check PATH ISA   # on another CPU: dispatches to ISA, same bits

.ci/run saves them with RNNCORE_ISA=avx2 on this AVX-512 machine (the kernel tier checks
that path against the NumPy reference), then checks them under qemu-user emulating a Haswell
(AVX2 + FMA, no AVX-512): the dispatcher must choose avx2 by itself there, an AVX-512
instruction anywhere in that path would stop the process, and every output and gradient
must match bit for bit. The reference itself cannot run under the emulation: NumPy's
OpenBLAS and torch's oneDNN compute wrong numbers there (an LSTM of H=1 off by 0.07 in
float64), while these results match the native ones exactly.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import rnncore  # noqa: E402

from conftest import CELLS, make_case  # noqa: E402

# (name, T, B, I, H, lengths, training): batch rows split over threads, rows in vector lanes
# (inference), and batch 1 (hidden units split, a barrier per step).
SHAPES = [
    ("rows", 7, 26, 6, 37, "ragged", True),
    ("lanes", 4, 16, 1, 3, None, False),
    ("batch1", 9, 1, 33, 70, None, True),
]


def results() -> dict:
    rnncore.set_num_threads(2)
    out = {}
    for cell in CELLS:
        for dtype in (np.float32, np.float64):
            tag = f"{cell.name}/{np.dtype(dtype).name}"
            for name, T, B, I, H, lengths, training in SHAPES:
                case = make_case(cell, T, B, I, H, seed=T + B + H, lengths=lengths)
                case = case.astype(dtype)
                if training:
                    outputs, grads = case.run(rnncore)
                    arrays = list(outputs) + [grads[k] for k in sorted(grads)]
                else:
                    arrays = list(case.forward(rnncore, training=False)[:-1])
                for i, a in enumerate(arrays):
                    if a is not None:
                        out[f"{tag}/{name}/{i}"] = a
            out[f"{tag}/stream"] = _stream_steps(cell, dtype)
    return out


def _stream_steps(cell, dtype) -> np.ndarray:
    case = make_case(cell, 5, 2, 8, 24, seed=7, lengths=None).astype(dtype)
    a = case.arrays
    kwargs = {"nonlinearity": cell.kwargs.get("nonlinearity", "tanh"),
              "reset_after": cell.kwargs.get("reset_after", True)}  # fmt: skip
    stream = rnncore.Stream(cell.family, a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"],
                            batch_size=2, **kwargs)  # fmt: skip
    return np.stack([stream.step(x_t) for x_t in a["x"]])


def main(argv) -> int:
    mode, path = argv[0], argv[1]
    got = results()
    if mode == "save":
        np.savez(path, **got)
        print(f"saved {len(got)} arrays ({rnncore._core.build_info()['isa']})")
        return 0
    isa = rnncore._core.build_info()["isa"]
    if isa != argv[2]:
        print(f"dispatched to {isa}, expected {argv[2]}")
        return 1
    saved = np.load(path)
    differ = [k for k in saved.files if k not in got or not np.array_equal(saved[k], got[k])]
    print(f"{isa}: {len(saved.files) - len(differ)} of {len(saved.files)} arrays bitwise equal")
    for k in differ[:10]:
        print("differs:", k)
    return 1 if differ or len(got) != len(saved.files) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
