"""`rnncore bench --contended`: speed when the machine is not ours alone.

Users run rnncore next to a second program, a notebook beside a build, or one process per
MPI rank or Dask worker. This harness times, on a quiet machine and again with one other
busy process (a Python spin loop, started and stopped here):

- a 1-epoch fit of the forecasting tutorial's deep RNN (SimpleRNN(20) -> SimpleRNN(20) ->
  Dense(1), 4000 x 50 x 1, batch 32): small work, many calls;
- LSTM medium inference (B=64, T=100, I=128, H=256): large work, one call;
each on 1 thread, on every CPU, and on four times more threads than CPUs, and torch's LSTM on
1 thread and every CPU for comparison. The configurations of a condition are interleaved
(bench.interleaved_medians), so a slow phase of the machine hits them alike.

The bounds the table is read against (printed with it): with a core busy, every CPU must cost
at most 1.25x the 1-thread time; the busy core must slow rnncore's LSTM no more than it
slows torch's; more threads than CPUs must cost at most 1.25x the best thread count.
"""

from __future__ import annotations

import subprocess
import sys
import time

import numpy as np

import rnncore

from .bench import interleaved_medians

FIT_SHAPE = (4000, 50, 1)  # samples, steps, features
LSTM_SHAPE = (64, 100, 128, 256)  # B, T, I, H


def _fit_fn(threads: int, samples: int):
    """One epoch of the tutorial's deep RNN on `threads`, from the same seed every call."""
    from .layers import Dense, SimpleRNN

    rng = np.random.default_rng(0)
    _, T, I = FIT_SHAPE
    x = rng.standard_normal((samples, T, I)).astype(np.float32)
    y = rng.standard_normal((samples, 1)).astype(np.float32)

    def run():
        rnncore.set_num_threads(threads)
        rnncore.utils.set_random_seed(42)
        model = rnncore.Sequential(
            [rnncore.Input((T, I)), SimpleRNN(20, return_sequences=True), SimpleRNN(20), Dense(1)]
        )
        model.compile(optimizer="adam", loss="mse")
        model.fit(x, y, epochs=1, batch_size=32, verbose=0)

    return run


def _lstm_fns(threads: int, torch=None) -> dict:
    """LSTM medium inference: ours on `threads`, and torch's on `threads` when given."""
    B, T, I, H = LSTM_SHAPE
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, I), dtype=np.float32)
    w_ih, w_hh = (rng.uniform(-0.1, 0.1, (4 * H, k)).astype(np.float32) for k in (I, H))

    def ours():
        rnncore.set_num_threads(threads)
        rnncore.lstm(x, w_ih, w_hh)

    fns = {f"rnncore lstm {threads}": ours}
    if torch is not None:
        module, xt = torch.nn.LSTM(I, H), torch.from_numpy(x)

        def theirs():
            torch.set_num_threads(threads)
            with torch.no_grad():
                module(xt)

        fns[f"torch lstm {threads}"] = theirs
    return fns


class BusyProcess:
    """A context in which one other process spins on a CPU (as a second program would)."""

    def __enter__(self):
        self.proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(0.2)  # let it start spinning
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


def run(quick: bool = False) -> dict:
    """Medians (ms) of every configuration, quiet and with one busy core, and the ratios."""
    cpus = rnncore._core.usable_cpus()
    before = rnncore.get_num_threads()
    try:
        import torch
    except ImportError:
        torch = None  # type: ignore[assignment]
    samples = FIT_SHAPE[0] // 4 if quick else FIT_SHAPE[0]
    counts = sorted({1, cpus, 4 * cpus})
    fns = {f"rnncore fit {n}": _fit_fn(n, samples) for n in counts}
    for n in counts:
        fns |= _lstm_fns(n, torch if n <= cpus else None)
    budget, reps = (0.05, 3) if quick else (2.0, 5)
    alone = {"quiet": dict.fromkeys(fns, 0), "busy": dict.fromkeys(fns, 0)}
    try:
        quiet = interleaved_medians(_counting(fns, alone["quiet"]), budget, reps)
        with BusyProcess():
            busy = interleaved_medians(_counting(fns, alone["busy"]), budget, reps)
    finally:
        rnncore.set_num_threads(before)
    return {"cpus": cpus, "quick": quick, "fit_samples": samples, "quiet": quiet, "busy": busy,
            "calls_alone": alone, "checks": _checks(quiet, busy, cpus, counts)}  # fmt: skip


def _counting(fns: dict, alone: dict) -> dict:
    """fns, each adding to alone[name] the kernel calls it ran on one thread because the
    pool judged its partners descheduled (rnncore._core.pool_calls_alone)."""

    def counted(name, fn):
        def run():
            before = rnncore._core.pool_calls_alone()
            fn()
            alone[name] += rnncore._core.pool_calls_alone() - before

        return run

    return {name: counted(name, fn) for name, fn in fns.items()}


def _checks(
    quiet: dict, busy: dict, cpus: int, counts: list[int]
) -> list[tuple[str, float, float]]:
    """(what, measured, bound) for each of the issue's bounds; measured <= bound passes."""
    many = counts[-1]
    checks = []
    for case in ("fit", "lstm"):
        one, all_ = busy[f"rnncore {case} 1"], busy[f"rnncore {case} {cpus}"]
        checks.append((f"{case}, busy core: {cpus} threads / 1 thread", all_ / one, 1.25))
        best = min(quiet[f"rnncore {case} {n}"] for n in counts if n <= cpus)
        too_many = quiet[f"rnncore {case} {many}"] / best
        checks.append((f"{case}, quiet: {many} threads / best", too_many, 1.25))
    if f"torch lstm {cpus}" in busy:
        ours = busy[f"rnncore lstm {cpus}"] / quiet[f"rnncore lstm {cpus}"]
        theirs = busy[f"torch lstm {cpus}"] / quiet[f"torch lstm {cpus}"]
        what = f"lstm, busy/quiet slowdown on {cpus} threads: rnncore / torch"
        checks.append((what, ours / theirs, 1.0))
    return checks


def print_table(result: dict) -> None:
    """The table of medians and the bounds, as RESULTS.md records them."""
    print(f"rnncore bench --contended: {result['cpus']} CPUs, isa="
          f"{rnncore._core.build_info()['isa']}, one busy process in the 'busy' column"
          f"{' (quick)' if result['quick'] else ''}")  # fmt: skip
    print(f"fit = 1 epoch of SimpleRNN(20)->SimpleRNN(20)->Dense(1), {result['fit_samples']} "
          f"x 50 x 1, batch 32; lstm = LSTM inference B=64 T=100 I=128 H=256")  # fmt: skip
    print("alone: kernel calls run on one thread because partners were descheduled, quiet/busy")
    print(f"{'case, threads':<22}{'quiet ms':>11}{'busy ms':>11}{'busy/quiet':>12}{'alone':>14}")
    alone = result["calls_alone"]
    for name, q in result["quiet"].items():
        b = result["busy"][name]
        calls = f"{alone['quiet'][name]}/{alone['busy'][name]}"
        print(f"{name:<22}{q:>11.2f}{b:>11.2f}{b / q:>11.2f}x{calls:>14}")
    for what, got, bound in result["checks"]:
        print(f"{what}: {got:.2f} (bound {bound:.2f}) {'ok' if got <= bound else 'OVER'}")
