"""Benchmark harness: rnncore against the installed peers, same inputs and thread count.

Used by `rnncore bench` and benchmarks/compare.py. Times are medians of repeated runs after a
warm-up; ratios compare peers measured in the same process, since absolute times drift.
"""

from __future__ import annotations

import json
import math
import statistics
import time

import numpy as np

import rnncore

SHAPES = {  # name: (B, T, I, H)
    "tiny": (32, 50, 1, 20),
    "medium": (64, 100, 128, 256),
    "large": (64, 100, 512, 512),
    "stream": (1, 100, 128, 256),
}
CELLS = {"rnn": 1, "lstm": 4, "gru": 3}
MODES = ("inference", "training")


def median_ms(fn, budget_s: float, min_reps: int = 3) -> float:
    fn()  # warm-up
    times = []
    start = time.perf_counter()
    while len(times) < min_reps or time.perf_counter() - start < budget_s:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def forward_flops(cell: str, B, T, I, H) -> float:
    return 2.0 * T * B * CELLS[cell] * H * (I + H)


def case_flops(cell, mode, shape) -> float:
    # Backward costs two GEMMs per forward GEMM (inputs and weights).
    return forward_flops(cell, *shape) * (1 if mode == "inference" else 3)


def _ours(cell, mode, x, params, dy):
    fn = getattr(rnncore, cell + ("_forward" if mode == "training" else ""))
    back = getattr(rnncore, cell + "_backward")
    if mode == "inference":
        return lambda: fn(x, *params)
    return lambda: back(fn(x, *params, training=True)[-1], dy)


def _torch_case(torch, cell, mode, x, dy, I, H):
    module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](I, H)
    xt, dyt = torch.tensor(x), torch.tensor(dy)
    params = [p.detach().numpy() for p in module.parameters()]
    if mode == "inference":

        def run():
            with torch.no_grad():
                module(xt)

    else:
        xg = xt.clone().requires_grad_(True)

        def run():
            module.zero_grad(set_to_none=True)
            xg.grad = None
            module(xg)[0].backward(dyt)

    return run, params


def find_peers() -> tuple[dict, list[str]]:
    found, skipped = {}, []
    try:
        import torch

        found["torch"] = torch
    except ImportError:
        skipped.append("torch (pip install 'rnncore[compare]')")
    skipped.append("onnxruntime, keras (not yet measured by this harness)")
    return found, skipped


def run(threads: int, quick: bool) -> dict:
    rnncore.set_num_threads(threads)
    peers, skipped = find_peers()
    if "torch" in peers:
        peers["torch"].set_num_threads(threads)
    budget = 0.05 if quick else 0.5
    rows = []
    rng = np.random.default_rng(0)
    for shape_name, (B, T, I, H) in SHAPES.items():
        for cell in CELLS:
            x = rng.standard_normal((T, B, I), dtype=np.float32)
            dy = rng.standard_normal((T, B, H), dtype=np.float32)
            for mode in MODES:
                row = {"cell": cell, "shape": shape_name, "mode": mode, "peers": {}}
                params = None
                if "torch" in peers:
                    torch_fn, params = _torch_case(peers["torch"], cell, mode, x, dy, I, H)
                    row["peers"]["torch"] = median_ms(torch_fn, budget)
                if params is None:
                    G = CELLS[cell]
                    params = [rng.uniform(-0.1, 0.1, s).astype(np.float32)
                              for s in [(G * H, I), (G * H, H), (G * H,), (G * H,)]]  # fmt: skip
                row["rnncore"] = median_ms(_ours(cell, mode, x, params, dy), budget)
                row["gflops"] = case_flops(cell, mode, (B, T, I, H)) / row["rnncore"] / 1e6
                if row["peers"]:
                    row["speedup"] = min(row["peers"].values()) / row["rnncore"]
                rows.append(row)
    return {"threads": threads, "quick": quick, "skipped": skipped, "rows": rows,
            "isa": rnncore._core.build_info()["isa"]}  # fmt: skip


def print_table(result: dict) -> None:
    print(f"rnncore bench: threads={result['threads']} isa={result['isa']}"
          f"{' (quick)' if result['quick'] else ''}")  # fmt: skip
    print("peers skipped: " + ("; ".join(result["skipped"]) or "none"))
    print(f"{'cell':<5}{'shape':<8}{'mode':<10}{'rnncore ms':>11}{'GFLOP/s':>9}"
          f"{'torch ms':>10}{'speed-up':>9}")  # fmt: skip
    for r in result["rows"]:
        torch_ms = r["peers"].get("torch")
        print(f"{r['cell']:<5}{r['shape']:<8}{r['mode']:<10}{r['rnncore']:>11.3f}"
              f"{r['gflops']:>9.1f}{(torch_ms or float('nan')):>10.3f}"
              f"{r.get('speedup', float('nan')):>8.2f}x")  # fmt: skip
    speedups = [r["speedup"] for r in result["rows"] if "speedup" in r]
    if speedups:
        geo = math.exp(sum(math.log(s) for s in speedups) / len(speedups))
        wins = sum(s >= 1 for s in speedups)
        print(f"geometric mean speed-up vs fastest peer: {geo:.2f}x "
              f"({wins}/{len(speedups)} cases at least as fast)")  # fmt: skip


def main(args) -> int:
    result = run(args.threads or rnncore.get_num_threads(), args.quick)
    print_table(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0
