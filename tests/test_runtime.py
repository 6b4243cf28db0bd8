"""Tier 4b: thread settings, GIL release, the command line."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import rnncore
from rnncore import _cells

from conftest import CELLS, import_torch, make_case


def test_thread_count_setting(threads):
    assert rnncore.get_num_threads() >= 1
    threads(3)
    assert rnncore.get_num_threads() == 3
    with pytest.raises(ValueError, match="n"):
        rnncore.set_num_threads(0)
    with pytest.raises(TypeError):
        rnncore.set_num_threads("two")


def test_kernels_release_the_gil():
    """While one thread is inside a long kernel call, Python code keeps running."""
    case = make_case(CELLS[2], 1500, 32, 128, 128, seed=0, lengths=None).astype(np.float32)
    window = {}

    def worker():
        window["start"] = time.perf_counter()
        case.cell.fn(rnncore)(**case.arrays, **case.options)
        window["end"] = time.perf_counter()

    ticks = []
    thread = threading.Thread(target=worker)
    thread.start()
    while thread.is_alive():
        ticks.append(time.perf_counter())
        time.sleep(0.0005)
    thread.join()
    inside = [t for t in ticks if window["start"] < t < window["end"]]
    assert window["end"] - window["start"] > 0.02, "the call was too short to tell"
    assert len(inside) >= 5, f"main thread ran only {len(inside)} times during the kernel"


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "rnncore.cli", *args], capture_output=True, text=True, timeout=300
    )


def test_cli_info():
    out = _cli("info")
    assert out.returncode == 0, out.stderr
    for word in ["rnncore", "compiler", "threading", "threads", "isa"]:
        assert word in out.stdout


def test_cli_demo_quick_trains_every_forecaster_and_plots(tmp_path):
    png = tmp_path / "demo.png"
    # Two threads, as on the machines it is run on: on one, a hang that only a team of two
    # could reach (units split unevenly) went unseen here.
    out = _cli("demo", "--quick", "--threads", "2", "--plot", str(png))
    assert out.returncode == 0, out.stdout + out.stderr
    table = out.stdout[out.stdout.index("valid MSE") :]
    for name in ["naive", "linear", "simple_rnn_1", "deep_rnn", "lstm", "gru"]:
        assert name in table
    assert "Epoch 3/3" in out.stdout and "val_loss" in out.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20000


def test_cli_demo_plot_without_matplotlib_says_how_to_get_it(tmp_path):
    code = (
        "import sys; sys.modules['matplotlib'] = None; from rnncore.cli import main; "
        f"sys.exit(main(['demo', '--quick', '--plot', {str(tmp_path / 'x.png')!r}]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "pip install 'rnncore[plot]'" in out.stdout
    assert not (tmp_path / "x.png").exists()


def test_cli_selfcheck_passes():
    out = _cli("selfcheck", "--threads", "1")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all cells match the reference" in out.stdout
    for cell in _cells.CELLS:
        assert cell.name in out.stdout


def _python_with_isa(isa, code):
    env = dict(os.environ, RNNCORE_ISA=isa)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          timeout=120)  # fmt: skip


def test_forced_instruction_set_is_used_or_refused_clearly():
    from rnncore import _core

    chosen = _core.build_info()["isa"]
    assert chosen in ("avx512", "avx2", "generic")
    out = _python_with_isa("generic", "import rnncore._core as c; print(c.build_info()['isa'])")
    assert out.returncode == 0 and out.stdout.strip() == "generic", out.stderr
    bad = _python_with_isa("sse9", "import rnncore")
    assert bad.returncode != 0
    assert "RNNCORE_ISA" in bad.stderr and "sse9" in bad.stderr


def test_supported_instruction_sets_are_the_ones_that_import():
    """supported_isas() is how tests and users ask what this CPU runs: each one listed
    imports and is used; each one not listed is refused at import."""
    from rnncore import _core

    supported = _core.supported_isas()
    assert supported[0] == _core.build_info()["isa"]  # the dispatcher picks the best
    assert supported[-1] == "generic"
    for isa in ("avx512", "avx2", "generic"):
        out = _python_with_isa(isa, "import rnncore._core as c; print(c.build_info()['isa'])")
        if isa in supported:
            assert out.returncode == 0 and out.stdout.strip() == isa, out.stderr
        else:
            assert out.returncode != 0 and f"RNNCORE_ISA={isa}" in out.stderr


def test_bench_harness_runs_every_cell_and_mode(monkeypatch, capsys, tmp_path, threads):
    """Smoke test of `rnncore bench` on the tiny shape only (no timing assertions)."""
    import json

    from rnncore import bench
    from rnncore.cli import main

    monkeypatch.setattr(bench, "SHAPES", {"tiny": bench.SHAPES["tiny"]})
    monkeypatch.setattr(bench, "RAGGED_SHAPE", bench.SHAPES["tiny"])
    probes = iter([100.0, 400.0])  # a slow phase at the start: the later probe counts
    monkeypatch.setattr(bench.rnncore._core, "fma_peak_gflops", lambda threads: next(probes))
    measured = []  # memory readings: a stub, the harness's bookkeeping is under test here
    monkeypatch.setattr(bench, "peak_memory_mb", lambda lib, *a: measured.append(lib) or 1.0)
    out_json = tmp_path / "bench.json"
    args = ["bench", "--quick", "--memory", "--threads", "1", "--json", str(out_json)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "rnncore bench" in printed and "peers skipped" in printed and "Keras ms" in printed
    result = json.loads(out_json.read_text())
    rows = result["rows"]
    assert {(r["cell"], r["shape"], r["mode"]) for r in rows} == {
        (c, "tiny", m) for c in ("rnn", "lstm", "gru") for m in ("inference", "training")
    } | {(c, "step", "inference") for c in ("rnn", "lstm", "gru")} | {
        ("lstm", "ragged", m) for m in ("inference", "training")
    } | (
        {(c, s, "training") for c in ("lstm", "gru") for s in ("loop", "loop-pk")}
        if any(p.startswith("torch ") for p in result["peers"])
        else set()
    )
    assert all(r["rnncore"] > 0 and r["gflops"] > 0 and r["pct_peak"] > 0 for r in rows)
    assert result["fma_peak_gflops"] == 400.0 and "measured FMA peak: 400" in printed
    ragged = [r for r in rows if r["shape"] == "ragged"]
    with_memory = [r for r in rows if "mem_mb" in r]
    assert {r["shape"] for r in with_memory} == {"tiny"} and len(with_memory) == 3
    assert measured.count("rnncore") == 3
    assert all(0.3 < r["real_steps"] < 0.7 and r["vs_full"] > 0 for r in ragged)
    assert "of the steps real" in printed
    assert all(r["pct_peak"] == pytest.approx(100.0 * r["gflops"] / 400.0) for r in rows)
    if os.environ.get("RNNCORE_REQUIRE_PEERS") == "1":  # every peer is measured, none skipped
        assert {"torch", "onnxruntime"} <= set(rows[0]["peers"]) | set(rows[-1]["peers"])
        assert all("onnxruntime" in r["peers"] for r in rows if r["mode"] == "inference")
        # Keras (on JAX or torch when TensorFlow is absent) times every layer case of full
        # length (the ragged case compares with torch's PackedSequence and ORT's lengths)
        layer_cases = [r for r in rows if r["shape"] not in ("step", "ragged", "loop", "loop-pk")]
        assert all("keras" in r["peers"] for r in layer_cases)
        assert {(r["cell"], r["shape"]) for r in rows if "torch" in r["peers"]} >= {
            (c, s) for c in ("lstm", "gru") for s in ("loop", "loop-pk")
        }  # the PyTorch training step, rnncore.torch vs torch.nn
        assert all({"torch", "onnxruntime"} <= set(r["peers"]) for r in ragged[:1])
        assert any(p.startswith("keras ") for p in result["peers"])


def test_bench_contended_times_every_configuration_quiet_and_busy(monkeypatch, capsys, tmp_path):
    """Smoke test of `rnncore bench --contended` on tiny shapes (no timing assertions): every
    configuration is timed in both conditions, the busy process is gone afterwards, and each
    bound of the issue is reported with its measured ratio."""
    import json

    from rnncore import bench_contended
    from rnncore.cli import main

    monkeypatch.setattr(bench_contended, "FIT_SHAPE", (64, 5, 1))
    monkeypatch.setattr(bench_contended, "LSTM_SHAPE", (4, 5, 3, 8))
    started = []
    real_enter = bench_contended.BusyProcess.__enter__

    def enter(self):
        started.append(real_enter(self))
        return started[-1]

    monkeypatch.setattr(bench_contended.BusyProcess, "__enter__", enter)
    before = rnncore.get_num_threads()
    out_json = tmp_path / "contended.json"
    assert main(["bench", "--contended", "--quick", "--json", str(out_json)]) == 0
    assert rnncore.get_num_threads() == before
    assert len(started) == 1 and started[0].proc.poll() is not None  # the spinner was killed
    result = json.loads(out_json.read_text())
    cpus = result["cpus"]
    counts = sorted({1, cpus, 4 * cpus})
    want = {f"rnncore {c} {n}" for c in ("fit", "lstm") for n in counts}
    if os.environ.get("RNNCORE_REQUIRE_PEERS") == "1":
        want |= {f"torch lstm {n}" for n in counts if n <= cpus}
    assert want <= set(result["quiet"]) and set(result["quiet"]) == set(result["busy"])
    assert all(v > 0 for v in list(result["quiet"].values()) + list(result["busy"].values()))
    printed = capsys.readouterr().out
    assert "busy core" in printed and "bound 1.25" in printed
    assert set(result["calls_alone"]["quiet"]) == set(result["quiet"])
    assert all(n >= 0 for c in result["calls_alone"].values() for n in c.values())
    assert len(result["checks"]) == (5 if f"torch lstm {cpus}" in result["busy"] else 4)


def test_bench_interleaves_the_libraries_it_times(monkeypatch):
    """Each library runs in blocks that alternate with the others' (no timing assertions:
    the order of calls and the shape of the result only)."""
    from rnncore import bench

    monkeypatch.setattr(bench, "BLOCK_S", 0.01)
    monkeypatch.setattr(bench, "PAUSE_S", 0.0)
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in ("a", "b")}
    medians = bench.interleaved_medians(fns, budget_s=0.05, min_reps=3)
    assert set(medians) == {"a", "b"} and all(m >= 0 for m in medians.values())
    switches = sum(x != y for x, y in zip(calls, calls[1:]))
    assert switches >= 4 and calls.count("a") > 3 and calls.count("b") > 3


def test_fma_peak_probe():
    peak = rnncore._core.fma_peak_gflops(1)
    assert 0.1 < peak < 1e5  # a measurement, not a constant: its plausibility only
    with pytest.raises(ValueError, match="threads"):
        rnncore._core.fma_peak_gflops(0)


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_bench_measures_training_peak_memory_in_a_child_process():
    from rnncore import bench

    small = bench.peak_memory_mb("rnncore", "lstm", (4, 10, 8, 16), 1)
    big = bench.peak_memory_mb("rnncore", "lstm", (64, 100, 64, 256), 1)
    assert small is not None and big is not None
    # one step keeps y, the gate slab and the state slots: at least 4*T*B*5H floats (~33 MiB)
    assert big > 25 > small >= 0


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_bench_memory_reading_is_the_median_of_its_processes(monkeypatch):
    from rnncore import bench

    outputs = iter(["5.0", "1.0", "3.0", "2.0", None])

    def child(*args, **kwargs):
        out = next(outputs)
        return subprocess.CompletedProcess(args, 1 if out is None else 0, out or "", "")

    monkeypatch.setattr(bench.subprocess, "run", child)
    assert bench.peak_memory_mb("torch", "lstm", (1, 2, 3, 4), 1, samples=3) == 3.0
    assert bench.peak_memory_mb("torch", "lstm", (1, 2, 3, 4), 1, samples=2) is None  # one failed


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_bench_memory_counts_the_gradients_torch_keeps():
    from rnncore import bench

    import_torch()
    # SimpleRNN I = H = 512 over two steps: dW_ih and dW_hh are 1 MiB each, nearly all of
    # the step. They must count, not be offset by freeing the previous step's gradients.
    for lib in ("torch", "rnncore"):
        assert bench.peak_memory_mb(lib, "rnn", (1, 2, 512, 512), 1) > 1.5, lib


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_bench_memory_reading_of_torch_repeats_between_processes():
    from rnncore import bench

    import_torch()
    # Torch's SimpleRNN keeps one 64 KiB tensor per step. Left in malloc's heap, pages the
    # warm-up step had freed stayed resident and counted in the base: 6.6 to 14.3 MiB
    # between processes at this shape. Counted where they are touched, it is one number.
    readings = [bench.peak_memory_mb("torch", "rnn", (64, 50, 32, 256), 1) for _ in range(3)]
    assert None not in readings
    assert max(readings) < 1.05 * min(readings), readings
