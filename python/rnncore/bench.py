"""Benchmark harness: rnncore against the installed peers, same inputs and thread count.

Used by `rnncore bench` and benchmarks/compare.py. Times are medians of repeated runs after a
warm-up, the libraries of a case interleaved in blocks (interleaved_medians); ratios compare
peers measured in the same process, since absolute times drift.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import time

import numpy as np

import rnncore

from . import _cells
from ._cells import CellKind
from .bench_peers import PEERS, find_peers

SHAPES = {  # name: (B, T, I, H)
    "tiny": (32, 50, 1, 20),
    "medium": (64, 100, 128, 256),
    "large": (64, 100, 512, 512),
    "stream": (1, 100, 128, 256),
}
CELLS = {family: _cells.family_kinds(family)[0] for family in _cells.FAMILIES}  # default kinds
MODES = ("inference", "training")


BLOCK_S = 0.1  # seconds of one library's runs before the next library's turn
# Seconds of rest before each block: thread pools spin for milliseconds after their last
# call (libgomp, ORT's, XLA's) and would take the cores from whoever runs next (figures in
# docs/design.md, "Measurements").
PAUSE_S = 0.05


def interleaved_medians(fns: dict, budget_s: float, min_reps: int = 3) -> dict:
    """Median milliseconds per call of each fn, timed in alternating blocks of about BLOCK_S
    (each library in turn, until each has had budget_s and min_reps calls). This machine's
    speed drifts by up to 2x over seconds; interleaving makes such a phase hit every library
    alike, so the ratios hold. Each block follows a rest of PAUSE_S (when there are others),
    and a block of fast calls starts with an untimed one, which brings its library's weights
    back into the cache that the others' blocks used."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    spent = dict.fromkeys(fns, 0.0)
    per_call = {}
    for name, fn in fns.items():  # warm-up: first-call allocation, graph compilation
        t0 = time.perf_counter()
        fn()
        per_call[name] = time.perf_counter() - t0
    while True:
        due = [n for n in fns if spent[n] < budget_s or len(times[n]) < min_reps]
        if not due:
            return {n: statistics.median(t) * 1e3 for n, t in times.items()}
        for name in due:
            fn, calls = fns[name], times[name]
            if len(fns) > 1:
                time.sleep(PAUSE_S)
            if (statistics.median(calls) if calls else per_call[name]) < BLOCK_S / 4:
                fn()
            start = time.perf_counter()
            while True:
                t0 = time.perf_counter()
                fn()
                calls.append(time.perf_counter() - t0)
                if time.perf_counter() - start >= BLOCK_S:
                    break
            spent[name] += time.perf_counter() - start


def forward_flops(cell: str, B, T, I, H) -> float:
    """Multiply-add FLOPs of one forward pass of a `cell` family layer (2 per FMA)."""
    return 2.0 * T * B * CELLS[cell].gates * H * (I + H)


def case_flops(cell, mode, shape) -> float:
    """FLOPs of one timed call: forward, or forward + backward (3x) in training."""
    # Backward costs two GEMMs per forward GEMM (inputs and weights).
    return forward_flops(cell, *shape) * (1 if mode == "inference" else 3)


def _ours(cell, mode, x, params, dy):
    fn = getattr(rnncore, cell + ("_forward" if mode == "training" else ""))
    back = getattr(rnncore, cell + "_backward")
    if mode == "inference":
        return lambda: fn(x, *params)
    return lambda: back(fn(x, *params, training=True)[-1], dy)


def peak_memory_mb(lib: str, cell: str, shape, threads: int, samples: int = 1) -> float | None:
    """MiB that one training step of `lib` ("rnncore" or "torch") adds at its peak, from a
    state holding no gradients, its own gradients included, and (rnncore) no workspace block
    kept from the warm-up step: the median over `samples` fresh processes; None where it
    cannot be measured (no /proc, or a child failed). The child is rnncore/bench_memory.py."""
    if not os.path.exists("/proc/self/clear_refs"):
        return None
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "16384", "MALLOC_TRIM_THRESHOLD_": "0"}
    args = json.dumps([lib, cell, *shape, threads])
    readings = []
    for _ in range(samples):
        proc = subprocess.run([sys.executable, "-m", "rnncore.bench_memory", args],
                              capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
        if proc.returncode != 0:
            return None
        readings.append(float(proc.stdout))
    return statistics.median(readings)


# Processes per memory reading. Readings of 5 MiB or more agree within 2% between processes,
# smaller ones less closely (torch's LSTM tiny: 1.75 to 1.96 MiB); the median of three keeps
# one odd process from deciding a row.
MEMORY_SAMPLES = 3


def _add_memory(row, peers, threads):
    """Training rows: peak memory of one step, ours and torch's (MiB), and their ratio."""
    shape = STEP_SHAPE if row["shape"] == "step" else SHAPES[row["shape"]]
    row["mem_mb"] = peak_memory_mb("rnncore", row["cell"], shape, threads, MEMORY_SAMPLES)
    if any(peer.name == "torch" for peer in peers):
        row["torch_mem_mb"] = peak_memory_mb("torch", row["cell"], shape, threads, MEMORY_SAMPLES)
        if row["mem_mb"] is not None and row["torch_mem_mb"]:
            row["mem_vs_torch"] = row["mem_mb"] / row["torch_mem_mb"]


def _record_times(row: dict, medians: dict) -> None:
    """Ours and the peers' medians into the row, with the speed-up over the fastest peer."""
    row["rnncore"] = medians.pop("rnncore")
    row["peers"] = medians
    if medians:
        row["speedup"] = min(medians.values()) / row["rnncore"]


def _params(cell: CellKind, I: int, H: int, rng) -> list:
    """w_ih, w_hh, b_ih, b_hh of one layer (PyTorch layout), drawn as torch initialises them."""
    G, bound = cell.gates, 1.0 / math.sqrt(H)
    return [rng.uniform(-bound, bound, s).astype(np.float32)
            for s in [(G * H, I), (G * H, H), (G * H,), (G * H,)]]  # fmt: skip


def _timed_case(row, fns, peers, make_case, budget, reps=3):
    """Times rnncore's call beside every peer's call for the case (`make_case(peer)`, None
    where the peer does not run it) and records the medians into `row`."""
    for peer in peers:
        run_peer = make_case(peer)
        if run_peer is not None:
            fns[peer.name] = run_peer
    _record_times(row, interleaved_medians(fns, budget, reps))
    return row


def run(threads: int, quick: bool, memory: bool | None = None) -> dict:
    """Every case (SHAPES x cells x MODES, ragged, per-step) timed against every peer."""
    rnncore.set_num_threads(threads)
    peers, skipped = find_peers(threads)
    budget = 0.05 if quick else 0.5
    # Calls of the large shapes take ~0.25 s, so the budget alone would give three samples
    # each; five make their medians proof against a slow phase of a second or two.
    reps = 3 if quick else 5
    # The higher of a probe before the cases and one after, since one probe can meet a slow
    # phase of the machine (one read half the peak, and every %peak doubled).
    peak = rnncore._core.fma_peak_gflops(threads)
    rows = []
    rng = np.random.default_rng(0)
    for shape_name, (B, T, I, H) in SHAPES.items():
        for name, cell in CELLS.items():
            x = rng.standard_normal((T, B, I), dtype=np.float32)
            dy = rng.standard_normal((T, B, H), dtype=np.float32)
            params = _params(cell, I, H, rng)
            for mode in MODES:
                row: dict = {"cell": name, "shape": shape_name, "mode": mode}
                fns = {"rnncore": _ours(name, mode, x, params, dy)}
                _timed_case(row, fns, peers,
                            lambda p: p.layer_case(cell, mode, x, dy, params), budget, reps)  # noqa: B023  # fmt: skip
                row["gflops"] = case_flops(name, mode, (B, T, I, H)) / row["rnncore"] / 1e6
                rows.append(row)
    rows += [_step_case(peers, name, budget) for name in CELLS]
    rows += [_ragged_case(peers, mode, budget, reps) for mode in MODES]
    if any(p.name == "torch" for p in peers):  # a whole PyTorch step: rnncore.torch vs torch.nn
        from .bench_torch_loop import loop_cases

        # At the medium shape (the first shape when a run is trimmed to others).
        rows += loop_cases(threads, budget, reps, SHAPES.get("medium", next(iter(SHAPES.values()))))
    peak = max(peak, rnncore._core.fma_peak_gflops(threads))
    for row in rows:
        row["pct_peak"] = 100.0 * row["gflops"] / peak
        measured_memory = row["mode"] == "training" and row["shape"] in SHAPES  # not ragged
        if (not quick if memory is None else memory) and measured_memory:
            _add_memory(row, peers, threads)
    return {"threads": threads, "quick": quick, "peers": [p.label() for p in peers],
            "skipped": skipped, "rows": rows,
            "fma_peak_gflops": peak,
            "isa": rnncore._core.build_info()["isa"]}  # fmt: skip


RAGGED_SHAPE = SHAPES["medium"]
RAGGED_SEED = 3  # lengths 1..T drawn once: 46-52% of the steps are real


def _ragged_case(peers, mode, budget, reps):
    """LSTM medium with random lengths 1..T: ours with lengths=, each peer its own way
    (torch: a PackedSequence; ONNX Runtime: sequence_lens). `vs_full` is our time over our
    time for the same batch at full length: the cost of padded steps (1.0 = they cost as
    much as real ones)."""
    B, T, I, H = RAGGED_SHAPE
    cell = CELLS["lstm"]
    rng = np.random.default_rng(RAGGED_SEED)
    lengths = rng.integers(1, T + 1, B)
    x = rng.standard_normal((T, B, I), dtype=np.float32)
    real = (np.arange(T)[:, None] < lengths)[..., None]  # [T, B, 1]
    dy = rng.standard_normal((T, B, H), dtype=np.float32) * real
    params = _params(cell, I, H, rng)
    row: dict = {"cell": "lstm", "shape": "ragged", "mode": mode,
           "real_steps": float(lengths.sum() / (B * T))}  # fmt: skip
    if mode == "inference":
        fns = {"rnncore": lambda: rnncore.lstm(x, *params, lengths=lengths),
               "full": lambda: rnncore.lstm(x, *params)}  # fmt: skip
    else:
        fwd, back = rnncore.lstm_forward, rnncore.lstm_backward
        fns = {"rnncore": lambda: back(fwd(x, *params, lengths=lengths, training=True)[-1], dy),
               "full": lambda: back(fwd(x, *params, training=True)[-1], dy)}  # fmt: skip
    for peer in peers:
        run_peer = peer.ragged_case(cell, mode, x, dy, lengths, params)
        if run_peer is not None:
            fns[peer.name] = run_peer
    medians = interleaved_medians(fns, budget, reps)
    full = medians.pop("full")
    _record_times(row, medians)
    row["vs_full"] = row["rnncore"] / full
    flops = case_flops("lstm", mode, RAGGED_SHAPE) * row["real_steps"]
    row["gflops"] = flops / row["rnncore"] / 1e6
    return row


STEP_SHAPE = (1, 100, 128, 256)  # 100 .step calls from Python, B=1, I=128, H=256


def _step_case(peers, name, budget):
    """Per-step streaming: 100 Stream.step calls against each peer's single-step calls."""
    B, T, I, H = STEP_SHAPE
    cell = CELLS[name]
    rng = np.random.default_rng(1)
    params = _params(cell, I, H, rng)
    xs = rng.standard_normal((T, B, I), dtype=np.float32)
    stream = rnncore.Stream(name, *params)
    out = np.empty((B, H), np.float32)

    def ours():
        stream.reset()
        for x in xs:
            stream.step(x, out=out)

    row: dict = {"cell": name, "shape": "step", "mode": "inference"}
    _timed_case(row, {"rnncore": ours}, peers, lambda p: p.step_case(cell, xs, params), budget)
    row["gflops"] = forward_flops(name, B, T, I, H) / row["rnncore"] / 1e6
    return row


def print_table(result: dict) -> None:
    """Prints a `run` result as the table benchmarks/RESULTS.md records."""
    print(f"rnncore bench: threads={result['threads']} isa={result['isa']}"
          f"{' (quick)' if result['quick'] else ''}")  # fmt: skip
    print("peers timed: " + (", ".join(result["peers"]) or "none"))
    print("peers skipped: " + ("; ".join(result["skipped"]) or "none"))
    print(f"measured FMA peak: {result['fma_peak_gflops']:.0f} GFLOP/s (float32, "
          f"{result['threads']} threads)")  # fmt: skip
    print("shapes (B, T, I, H): " + ", ".join(f"{n} {s}" for n, s in SHAPES.items()))
    print(f"  stream: batch-1 sequences; step: {STEP_SHAPE[1]} Stream.step calls of "
          f"{STEP_SHAPE}; ragged: {RAGGED_SHAPE} with random lengths; -: not measured")  # fmt: skip
    print(
        "  loop: one PyTorch training step (Embedding, 2-layer bidirectional, Linear, Adam) at "
        "medium, rnncore.torch vs torch.nn; loop-pk: on a PackedSequence of random lengths"
    )
    peers = PEERS  # a column each, "-" where a peer is absent or does not run the case
    memory = any(r.get("mem_mb") is not None for r in result["rows"])

    def cell(value, width, fmt, suffix=""):  # "-" where a case has no such number
        return f"{'-' if value is None else format(value, fmt) + suffix:>{width}}"

    header = f"{'cell':<5}{'shape':<8}{'mode':<10}{'rnncore ms':>11}{'GFLOP/s':>9}{'%peak':>6}"
    header += "".join(f"{p.column + ' ms':>10}" for p in peers) + f"{'speed-up':>9}"
    print(header + (f"{'MiB':>8}{'torch MiB':>10}" if memory else ""))
    for r in result["rows"]:
        line = (f"{r['cell']:<5}{r['shape']:<8}{r['mode']:<10}{r['rnncore']:>11.3f}"
                f"{r['gflops']:>9.1f}{r['pct_peak']:>6.0f}")  # fmt: skip
        line += "".join(cell(r["peers"].get(p.name), 10, ".3f") for p in peers)
        line += cell(r.get("speedup"), 9, ".2f", "x")
        if memory:
            line += cell(r.get("mem_mb"), 8, ".1f") + cell(r.get("torch_mem_mb"), 10, ".1f")
        print(line)
    for r in result["rows"]:
        if "vs_full" in r:
            print(f"lstm ragged {r['mode']}: {100 * r['real_steps']:.0f}% of the steps real, "
                  f"{r['vs_full']:.2f}x the time of full lengths")  # fmt: skip
    speedups = [r["speedup"] for r in result["rows"] if "speedup" in r]
    if speedups:
        geo = math.exp(sum(math.log(s) for s in speedups) / len(speedups))
        wins = sum(s >= 1 for s in speedups)
        print(f"geometric mean speed-up vs fastest peer: {geo:.2f}x "
              f"({wins}/{len(speedups)} cases at least as fast)")  # fmt: skip
    # Under 1 MiB the ratio measures page-level noise, not the libraries.
    ratios = [r["mem_vs_torch"] for r in result["rows"]
              if "mem_vs_torch" in r and max(r["mem_mb"], r["torch_mem_mb"]) >= 1]  # fmt: skip
    if ratios:
        within = sum(q <= 1 for q in ratios)
        print(f"training peak memory vs torch: {min(ratios):.2f}x to {max(ratios):.2f}x "
              f"({within}/{len(ratios)} cases of 1 MiB or more at most torch's)")  # fmt: skip


def main(args) -> int:
    """`rnncore bench`: runs every case, prints the table, optionally writes JSON."""
    result = run(args.threads or rnncore.get_num_threads(), args.quick, args.memory)
    print_table(result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0
